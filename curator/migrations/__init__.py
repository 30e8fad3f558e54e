"""Numbered schema migrations: ``mNNN_name.py`` files, applied once each in number order.

Each module defines ``SQL`` (one or more statements) or ``apply(con)``.  Add a new file for every
schema change; never edit one that has shipped.
"""

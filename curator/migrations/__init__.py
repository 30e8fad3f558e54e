"""Numbered schema migrations: ``mNNN_name.py`` files, applied once each in number order.

Each module defines ``SQL`` (one or more statements) or ``apply(con)``.  Add a new file with the
next number for every schema change (one contiguous sequence from ``m001``: no gaps, no two files
with one number, ``tests/test_migrations.py`` checks it); never edit one that has shipped.

A migration is recorded in the workspace's ``_migrations`` table by its module name.  When a
shipped migration has to be renamed, add ``old name -> new name`` to :data:`RENAMED`: opening a
workspace rewrites the old record to the new name (keeping its ``applied_at``) before anything
runs, so the renamed migration is not applied a second time.  Write renamed migrations with
``IF NOT EXISTS`` guards as well.
"""

#: Migration names that were recorded under another name by earlier versions: old -> new.
RENAMED: dict[str, str] = {
    "m006_evals": "m005_evals",  # m005 was missing and m006 existed twice
}

"""Feedback columns: the prompt key that pairs a liked and a disliked answer, and why a positive was not stored."""

SQL = """
ALTER TABLE feedback ADD COLUMN prompt_key VARCHAR;
ALTER TABLE feedback ADD COLUMN gate_reason VARCHAR;
"""

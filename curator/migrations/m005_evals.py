"""Evaluations: a status (so an interrupted evaluation resumes instead of starting over) and a finish time.

Shipped as ``m006_evals`` (beside ``m006_eval_results_meta``); renumbered to close the gap at 5.
A workspace that recorded the old name has it renamed in ``_migrations`` instead of applied again
(:data:`curator.migrations.RENAMED`); ``IF NOT EXISTS`` keeps the statements harmless either way.
"""

SQL = """
ALTER TABLE evals ADD COLUMN IF NOT EXISTS status VARCHAR DEFAULT 'complete';
ALTER TABLE evals ADD COLUMN IF NOT EXISTS finished_at TIMESTAMP;
"""

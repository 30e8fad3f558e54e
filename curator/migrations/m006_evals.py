"""Evaluations: a status (so an interrupted evaluation resumes instead of starting over) and a finish time."""

SQL = """
ALTER TABLE evals ADD COLUMN status VARCHAR DEFAULT 'complete';
ALTER TABLE evals ADD COLUMN finished_at TIMESTAMP;
"""

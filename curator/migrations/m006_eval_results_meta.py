"""Per-prediction generation facts (finish reason, token counts, judge rationale) beside the scores.

Runs after ``m005_evals`` (which shipped next to this one as ``m006_evals``; the two touch
different tables, both made in ``m002``). ``IF NOT EXISTS``: workspaces made while this column was still part of the evals
migration have it already.
"""

SQL = """
ALTER TABLE eval_results ADD COLUMN IF NOT EXISTS meta JSON;
"""

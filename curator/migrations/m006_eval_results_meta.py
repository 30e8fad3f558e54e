"""Per-prediction generation facts (finish reason, token counts, judge rationale) beside the scores.

``IF NOT EXISTS``: workspaces made while this column was still part of ``m006_evals`` have it already.
"""

SQL = """
ALTER TABLE eval_results ADD COLUMN IF NOT EXISTS meta JSON;
"""

"""Champion and challenger: each round records its dev-split evaluation, whether its run was promoted,
the champion after the round, and the evidence the decision was made on."""

SQL = """
ALTER TABLE rounds ADD COLUMN IF NOT EXISTS dev_eval_id VARCHAR;
ALTER TABLE rounds ADD COLUMN IF NOT EXISTS promoted BOOLEAN;
ALTER TABLE rounds ADD COLUMN IF NOT EXISTS champion VARCHAR;
ALTER TABLE rounds ADD COLUMN IF NOT EXISTS promotion JSON;
"""

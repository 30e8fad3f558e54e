"""Token counts per (example, tokenizer), so ``curator stats`` tokenizes each example once.

An example's id is the hash of its normalised messages, so a stored count never goes stale: an
edited example is a new id.  ``tokenizer`` is the model name or folder the counts were made with.
"""

SQL = """
CREATE TABLE IF NOT EXISTS token_counts (
    example_id VARCHAR NOT NULL,
    tokenizer VARCHAR NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY (example_id, tokenizer)
);
"""

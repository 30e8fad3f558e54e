"""Human review: ratings of evaluated answers, blind A/B choices, and who made a review decision.

- ``human_ratings``: one person's 1-5 rating of one answer (an ``eval_results`` row, named by
  ``eval_id`` and ``example_id``); a reviewer rating the same answer again replaces the old row.
- ``human_choices``: one person's blind choice between two evaluations' answers to one prompt
  (``left``, ``right`` or ``tie``, in the evaluations' order, not the order shown on screen); a
  non-tie choice also writes a ``preferences`` row (basis ``human``) whose id is ``preference_id``.
- ``decisions.reviewer``: the person behind a ``review_accept`` / ``review_reject`` / ``edited`` decision.
"""

SQL = """
CREATE TABLE IF NOT EXISTS human_ratings (
    eval_id VARCHAR NOT NULL,
    example_id VARCHAR NOT NULL,
    reviewer VARCHAR NOT NULL,
    rating INTEGER NOT NULL,
    note VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS human_choices (
    left_eval VARCHAR NOT NULL,
    right_eval VARCHAR NOT NULL,
    example_id VARCHAR NOT NULL,
    reviewer VARCHAR NOT NULL,
    choice VARCHAR NOT NULL,
    preference_id VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS reviewer VARCHAR;
"""

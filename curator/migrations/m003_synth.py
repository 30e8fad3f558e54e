"""Synthetic generation: one row per generation job, and every rejected candidate with its reason.

Generated responses themselves live in ``requests`` (m002); accepted candidates become ``examples``.
"""

SQL = """
CREATE TABLE synth_jobs (
    id VARCHAR NOT NULL,  -- hash of (mode, task, teacher, n, seed, template hash, params, inputs); one row per id
    mode VARCHAR NOT NULL,
    task VARCHAR,
    teacher VARCHAR NOT NULL,
    n INTEGER,
    seed INTEGER,
    template_hash VARCHAR,
    params JSON,
    status VARCHAR NOT NULL,  -- 'done' | 'stopped' (budget, failing provider)
    report JSON,
    spent_usd DOUBLE,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at TIMESTAMP
);
CREATE TABLE synth_rejections (
    job VARCHAR NOT NULL,
    request_key VARCHAR,
    candidate JSON,
    reason VARCHAR NOT NULL,  -- parse, length, refusal, truncated, duplicate-exact, duplicate-near, ...
    detail VARCHAR,
    other_id VARCHAR,
    score DOUBLE,
    weakness_id VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
"""

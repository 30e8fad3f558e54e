"""Served completions: ``traces`` (one row per answer of ``curator serve``, PII-scrubbed), ``trace_feedback``
(every rating posted to ``/v1/feedback``; the latest is copied onto its trace) and ``trace_logs`` (how far
each append-only trace log under ``traces/`` has been imported, so an import reads only what is new)."""

SQL = """
CREATE TABLE IF NOT EXISTS traces (
    id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,
    run_id VARCHAR,
    adapter VARCHAR,
    ab_name VARCHAR,
    ab_arm VARCHAR,
    user_id VARCHAR,
    messages JSON NOT NULL,
    params JSON,
    latency_ms DOUBLE,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    finish_reason VARCHAR,
    rating INTEGER,
    thumbs VARCHAR,
    comment VARCHAR,
    correction VARCHAR,
    feedback_at TIMESTAMP,
    ingested_at TIMESTAMP,
    source VARCHAR,
    meta JSON
);
CREATE TABLE IF NOT EXISTS trace_feedback (
    id VARCHAR PRIMARY KEY,
    trace_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    rating INTEGER,
    thumbs VARCHAR,
    comment VARCHAR,
    correction VARCHAR,
    source VARCHAR
);
CREATE TABLE IF NOT EXISTS trace_logs (
    file VARCHAR PRIMARY KEY,
    "offset" BIGINT NOT NULL,
    records BIGINT NOT NULL,
    imported_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
"""

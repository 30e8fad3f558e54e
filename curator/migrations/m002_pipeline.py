"""Tables of the rest of the loop: embeddings, generation requests, feedback, preference pairs,
training runs, evaluations and rounds."""

SQL = """
CREATE TABLE embeddings (
    example_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    vector FLOAT[] NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE requests (
    key VARCHAR NOT NULL,
    provider VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    request JSON,
    response JSON,
    text VARCHAR,
    finish_reason VARCHAR,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd DOUBLE,
    status VARCHAR NOT NULL,
    error VARCHAR,
    attempts INTEGER NOT NULL DEFAULT 1,
    job VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE feedback (
    trace_id VARCHAR NOT NULL,
    source VARCHAR,
    format VARCHAR,
    messages JSON,
    rating DOUBLE,
    label VARCHAR,
    model VARCHAR,
    event_time VARCHAR,
    pii_counts JSON,
    example_id VARCHAR,
    meta JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE preferences (
    id VARCHAR NOT NULL,
    prompt JSON NOT NULL,
    chosen VARCHAR NOT NULL,
    rejected VARCHAR NOT NULL,
    source VARCHAR,
    margin DOUBLE,
    group_key VARCHAR NOT NULL,
    meta JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE runs (
    id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    snapshot_id VARCHAR,
    base_model VARCHAR,
    config JSON,
    adapter_path VARCHAR,
    status VARCHAR NOT NULL,
    metrics JSON,
    meta JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at TIMESTAMP
);
CREATE TABLE evals (
    id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    snapshot_id VARCHAR NOT NULL,
    split VARCHAR NOT NULL,
    params JSON,
    summary JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE eval_results (
    eval_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    example_id VARCHAR NOT NULL,
    prediction VARCHAR,
    scores JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE rounds (
    round INTEGER NOT NULL,
    task VARCHAR,
    snapshot_id VARCHAR,
    run_id VARCHAR,
    eval_id VARCHAR,
    eval JSON,
    batch JSON,
    status VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at TIMESTAMP
);
"""

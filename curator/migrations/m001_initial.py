"""Examples, splits, decisions, snapshots and their members, ingest log, settings."""

SQL = """
CREATE TABLE examples (
    id VARCHAR NOT NULL,  -- unique by construction: every insert goes through an anti-join on id
    messages JSON NOT NULL,
    task VARCHAR NOT NULL,
    origin VARCHAR NOT NULL,
    source VARCHAR,
    parent_id VARCHAR,
    meta JSON,
    group_key VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    status VARCHAR NOT NULL DEFAULT 'active',
    excluded_reason VARCHAR
);
CREATE TABLE splits (
    example_id VARCHAR NOT NULL,
    split VARCHAR NOT NULL,
    pinned BOOLEAN NOT NULL DEFAULT false,
    assigned_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE decisions (
    example_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    other_id VARCHAR,
    score DOUBLE,
    reason VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    undone_at TIMESTAMP
);
CREATE TABLE snapshots (
    id VARCHAR PRIMARY KEY,
    name VARCHAR,
    parent_id VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    counts JSON,
    manifest_path VARCHAR NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE snapshot_members (
    snapshot_id VARCHAR NOT NULL,
    example_id VARCHAR NOT NULL,
    split VARCHAR NOT NULL
);
CREATE TABLE ingests (
    path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    rows_read INTEGER NOT NULL,
    rows_added INTEGER NOT NULL,
    rows_skipped INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE settings (key VARCHAR PRIMARY KEY, value JSON NOT NULL);
"""

"""Snapshot manifests anchored in the workspace, and more than one name per snapshot.

- ``snapshots.manifest_sha256``: the sha256 of the snapshot's ``manifest.json`` as it was written; every
  read checks it, so a rewritten data file whose new hash was put in the manifest is caught.  Snapshots
  made before this column existed have it null until their first verified read records it.
- ``snapshot_aliases``: further names of a snapshot (``snapshot create --name v2`` on content already
  snapshotted under another name); a name is unique across ``snapshots.name`` and the aliases.
"""

SQL = """
ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS manifest_sha256 VARCHAR;
CREATE TABLE IF NOT EXISTS snapshot_aliases (
    name VARCHAR PRIMARY KEY,
    snapshot_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
"""

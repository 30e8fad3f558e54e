"""Migrations: one contiguous sequence, and workspaces made by the old numbering upgrade cleanly."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import duckdb
import pytest

from curator.migrations import RENAMED
from curator.workspace import DB_NAME, MIGRATIONS, Workspace

OLD_TIME = "2001-02-03 04:05:06"

# The two migrations as the old sequence shipped them (m005 missing, m006 twice), verbatim.
OLD_SQL = {
    "m006_eval_results_meta": "ALTER TABLE eval_results ADD COLUMN IF NOT EXISTS meta JSON;",
    "m006_evals": """ALTER TABLE evals ADD COLUMN status VARCHAR DEFAULT 'complete';
ALTER TABLE evals ADD COLUMN finished_at TIMESTAMP;""",
}
# What old workspaces can hold: the first release (m001, m002, m006_evals), and the full old sequence.
FIRST_RELEASE = ["m001_initial", "m002_pipeline", "m006_evals"]
OLD_SEQUENCE = ["m001_initial", "m002_pipeline", "m003_synth", "m004_feedback", "m006_eval_results_meta", "m006_evals"]


def _old_sql(name: str) -> str:
    if name in OLD_SQL:
        return OLD_SQL[name]
    return importlib.import_module(f"curator.migrations.{name}").SQL  # m001..m004 did not change


def _old_workspace(path: Path, names: list[str]) -> None:
    """A workspace file as the old code left it: each migration's SQL applied, its old name recorded."""
    path.mkdir(parents=True)
    con = duckdb.connect(str(path / DB_NAME))
    try:
        con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
        for name in sorted(names):  # the old loader applied them in name order
            con.execute(_old_sql(name))
            con.execute("INSERT INTO _migrations VALUES (?, ?)", [name, OLD_TIME])
        if "m006_evals" in names:
            con.execute("INSERT INTO evals (id, run_id, snapshot_id, split, status) VALUES ('e1', 'r', 's', 'test', 'running')")
    finally:
        con.close()


def _schema(ws: Workspace) -> list[tuple]:
    with ws.connect(read_only=True) as con:
        return con.execute(
            """SELECT table_name, ordinal_position, column_name, data_type, column_default, is_nullable
               FROM information_schema.columns WHERE table_catalog = current_database()
               ORDER BY table_name, ordinal_position"""
        ).fetchall()


def _recorded(ws: Workspace) -> dict[str, str]:
    with ws.connect(read_only=True) as con:
        return {n: str(t) for n, t in con.execute("SELECT name, applied_at FROM _migrations").fetchall()}


def test_numbers_are_contiguous_from_one_without_duplicates() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert all(re.fullmatch(r"m\d{3}_\w+", n) for n in names)
    numbers = [int(n[1:4]) for n in names]
    assert numbers == list(range(1, len(names) + 1)), names
    assert set(RENAMED.values()) <= set(names) and not set(RENAMED) & set(names)


def test_sequence_starts_with_the_renumbered_evals_migrations() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert names[:6] == ["m001_initial", "m002_pipeline", "m003_synth", "m004_feedback", "m005_evals",
                         "m006_eval_results_meta"]


@pytest.mark.parametrize("old", [OLD_SEQUENCE, FIRST_RELEASE], ids=["old-sequence", "first-release"])
def test_old_workspace_upgrades_to_the_fresh_schema_and_applies_nothing_twice(tmp_path: Path, old) -> None:  # noqa: ANN001
    fresh = Workspace(tmp_path / "fresh")
    with fresh.connect():
        pass
    upgraded = Workspace(tmp_path / "old")
    _old_workspace(upgraded.path, old)

    with upgraded.connect() as con:  # the new code opens it (and migrates)
        assert con.execute("SELECT status FROM evals WHERE id = 'e1'").fetchall() == [("running",)]
    assert _schema(upgraded) == _schema(fresh)

    recorded = _recorded(upgraded)
    assert sorted(recorded) == sorted(name for name, _ in MIGRATIONS) == sorted(_recorded(fresh))
    renamed = {RENAMED.get(n, n) for n in old}
    # What the old code applied keeps its old record (renamed where the file was): nothing ran again.
    assert {n for n, t in recorded.items() if t == OLD_TIME} == renamed
    with upgraded.connect():  # a second open changes nothing
        pass
    assert _recorded(upgraded) == recorded


def test_renamed_migration_is_not_applied_again(tmp_path: Path) -> None:
    """Without the rename, ``m005_evals`` would run on a workspace that has its columns already."""
    ws = Workspace(tmp_path / "ws")
    _old_workspace(ws.path, OLD_SEQUENCE)
    with ws.connect() as con:
        rows = con.execute("SELECT name, applied_at FROM _migrations WHERE name LIKE 'm00%_eval%' ORDER BY name").fetchall()
    assert [(n, str(t)) for n, t in rows] == [("m005_evals", OLD_TIME), ("m006_eval_results_meta", OLD_TIME)]

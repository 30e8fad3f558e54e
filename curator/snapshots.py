"""Snapshots: immutable, content-addressed versions of the dataset.

A snapshot's id is a hash of its sorted (example id, split) members, so the same data always
gives the same id.  Each snapshot is a folder ``snapshots/<id>/`` with one Parquet file per
split and a ``manifest.json`` (file sha256s, counts by split and origin, parent, creation time,
tool version).

**Integrity.**  The sha256 of ``manifest.json`` is stored in the workspace (``snapshots.manifest_sha256``)
when the snapshot is written, and every read checks it before trusting the manifest, then checks
every data file against the manifest's hashes: rewriting a Parquet file *and* its hash in the manifest
is caught.  A manifest that is not valid JSON, lacks a field, or lists a path outside the snapshot folder
(``..``, absolute, a symlink out) is refused with a clear :class:`IntegrityError`.  Snapshots written
before the hash was stored (an older curator) are checked on their first verified read against the
workspace's record of their members (every ``(example id, split)`` in the files, no more, no less) and
their manifest hash is recorded then; from then on they are anchored like new ones.

**Names.**  ``create --name`` names a snapshot; the same content created again under another name adds
that name as an alias (``Snapshot.aliases``), and every name resolves.

**Exports** (:func:`export_snapshot`): OpenAI chat JSONL, a Hugging Face ``DatasetDict`` folder, Parquet
with typed columns (the layout of :mod:`curator.data.exchange`), and the preference pairs as TRL or OpenAI
DPO JSONL.  Empty splits are left out.  An export never writes through a link out of its folder, writes
into a temporary folder beside the files and moves them into place, and ``force`` replaces only the files
curator writes (listed in ``.curator-export.json``), never anything else in the folder.

The **review gate** (:func:`review_gate`, ``curator snapshot create --require-review ORIGIN
--review-sample F --min-acceptance A``) refuses a snapshot whose examples were not looked at by a
person in ``curator review``.  An example's review state is its latest live decision of kind
``review_accept`` (accepted, stays active), ``review_reject`` (rejected, excluded) or ``edited``
(excluded, replaced by a new example of origin ``edited`` whose parent it is); an example of origin
``edited`` that replaces an example with an ``edited`` decision was written by a reviewer and counts
as accepted.  Per origin, the examples counted are the active ones plus those a review excluded
(rejected or edited); examples excluded for other reasons (dedup, leakage) are not counted.

* ``--require-review ORIGIN`` (repeatable): every active example of ORIGIN is accepted.
* ``--review-sample F`` (0 < F <= 1): at least ``ceil(F * n)`` of an origin's ``n`` examples are
  reviewed (accepted, rejected or edited), for each origin given with ``--require-review``, or for
  every origin with active examples when none is given.
* ``--min-acceptance A`` (0 <= A <= 1): ``accepted / reviewed >= A`` on those same origins (an edit
  is reviewed but not accepted: the original needed a correction); an origin with nothing reviewed
  fails it.

The gate is checked on every ``create`` (also when the same content was snapshotted before); a new
snapshot records it, with the per-origin counts, under ``review_gate`` in its manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from curator import __version__
from curator.data.exchange import EXPORT_SPLIT_NAMES, export_schema, export_table, openai_record
from curator.data.splits import SPLITS
from curator.errors import IntegrityError, SnapshotError, WorkspaceError, require
from curator.quality.leakage import leakage_gate
from curator.workspace import Workspace, pid_alive

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_MARKER",
    "Snapshot",
    "create_snapshot",
    "diff_snapshots",
    "export_snapshot",
    "list_snapshots",
    "load_manifest",
    "read_split",
    "resolve_snapshot",
    "review_gate",
    "review_state",
]

log = logging.getLogger(__name__)

#: ``dpo`` is the older name of ``trl-dpo``.
EXPORT_FORMATS = ("openai", "hf", "parquet", "openai-dpo", "trl-dpo", "dpo")
_PAIR_STYLE = {"openai-dpo": "openai", "trl-dpo": "trl", "dpo": "trl"}
#: The file in an export folder that lists what curator wrote there (what ``force`` may replace).
EXPORT_MARKER = ".curator-export.json"
_EXPORT_TMP = re.compile(r"\.curator-export-tmp-(\d+)")
_COLUMNS = "e.id, e.messages::VARCHAR AS messages, e.task, e.origin, e.source, e.parent_id, e.meta::VARCHAR AS meta"
_SNAP_COLUMNS = "id, name, parent_id, created_at, counts, manifest_path, manifest_sha256"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Snapshot:
    id: str
    name: str | None
    parent_id: str | None
    created_at: str
    counts: dict[str, Any]
    path: Path
    created: bool = False
    review_gate: dict[str, Any] | None = None  # what the review gate of this ``create`` checked, when one was asked
    aliases: list[str] = field(default_factory=list)  # further names (``create --name`` on the same content)
    alias_added: str | None = None  # the name this ``create`` added as an alias
    manifest_sha256: str | None = None  # as recorded in the workspace (None: an older snapshot, not yet read)
    workspace: Workspace | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id, "name": self.name, "aliases": list(self.aliases), "parent_id": self.parent_id,
            "created_at": self.created_at, "counts": self.counts, "path": str(self.path), "created": self.created,
        }
        if self.alias_added is not None:
            d["alias_added"] = self.alias_added
        if self.review_gate is not None:
            d["review_gate"] = self.review_gate
        return d


def _first(rows: list[Any]) -> Any:
    return rows[0] if rows else None


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("-") or len(name) > 100:
        raise SnapshotError(f"invalid snapshot name {name!r}: use letters, digits, '-', '_' or '.' (no slashes)")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _aliases(con: duckdb.DuckDBPyConnection, ids: list[str] | None = None) -> dict[str, list[str]]:
    rows = con.execute("SELECT snapshot_id, name FROM snapshot_aliases ORDER BY created_at, name").fetchall()
    out: dict[str, list[str]] = {}
    for sid, name in rows:
        if ids is None or sid in ids:
            out.setdefault(sid, []).append(name)
    return out


def _snapshots(ws: Workspace, con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[Snapshot]:
    rows = con.execute(f"SELECT {_SNAP_COLUMNS} FROM snapshots {where}", params).fetchall()
    aliases = _aliases(con, [r[0] for r in rows]) if rows else {}
    out = []
    for sid, name, parent, created, counts, mpath, msha in rows:
        out.append(Snapshot(sid, name, parent, str(created), json.loads(counts) if counts else {}, ws.path / mpath,
                            aliases=aliases.get(sid, []), manifest_sha256=msha, workspace=ws))
    return out


def _name_owner(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """The snapshot that ``name`` names (as its name or an alias), if any."""
    row = _first(con.execute("SELECT id FROM snapshots WHERE name = ? UNION ALL "
                             "SELECT snapshot_id FROM snapshot_aliases WHERE name = ?", [name, name]).fetchall())
    return row[0] if row else None


#: The latest live review decision of each example: ``accepted`` / ``rejected`` / ``edited``; an example
#: of origin ``edited`` replacing one with an ``edited`` decision is ``accepted`` (a reviewer wrote it).
_REVIEW_SQL = """
WITH latest AS (
    SELECT example_id, kind FROM decisions
    WHERE undone_at IS NULL AND kind IN ('review_accept', 'review_reject', 'edited')
    QUALIFY row_number() OVER (PARTITION BY example_id ORDER BY created_at DESC) = 1
),
by_review AS (
    SELECT DISTINCT e.id FROM examples e JOIN decisions d ON d.example_id = e.parent_id AND d.kind = 'edited'
    WHERE e.origin = 'edited'
),
state AS (
    SELECT e.origin, e.status = 'active' AS active,
           CASE WHEN l.kind IS NOT NULL THEN l.kind WHEN b.id IS NOT NULL THEN 'review_accept' END AS kind
    FROM examples e LEFT JOIN latest l ON l.example_id = e.id LEFT JOIN by_review b ON b.id = e.id
    WHERE e.status = 'active' OR l.kind IN ('review_reject', 'edited')
)
SELECT origin, count(*), count(*) FILTER (WHERE active),
       count(*) FILTER (WHERE kind = 'review_accept'), count(*) FILTER (WHERE kind = 'review_reject'),
       count(*) FILTER (WHERE kind = 'edited'),
       count(*) FILTER (WHERE active AND coalesce(kind, '') <> 'review_accept')
FROM state GROUP BY origin ORDER BY origin
"""


def review_state(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Per origin: ``examples`` (active + excluded by a review), ``active``, ``reviewed``, ``accepted``,
    ``rejected``, ``edited`` and ``unaccepted_active`` (active examples without an accept)."""
    out = {}
    for origin, examples, active, accepted, rejected, edited, unaccepted in con.execute(_REVIEW_SQL).fetchall():
        out[str(origin)] = {"examples": int(examples), "active": int(active),
                            "reviewed": int(accepted + rejected + edited), "accepted": int(accepted),
                            "rejected": int(rejected), "edited": int(edited), "unaccepted_active": int(unaccepted)}
    return out


def review_gate(
    con: duckdb.DuckDBPyConnection, *, require_review: tuple[str, ...] | list[str] = (),
    review_sample: float | None = None, min_acceptance: float | None = None,
) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, refusal)``: what the gate checked (``None`` when no option is given) and the refusal message
    (``None`` when it passes).  See the module docstring for the rules."""
    if review_sample is not None and not 0 < review_sample <= 1:
        raise SnapshotError(f"--review-sample must be in (0, 1], got {review_sample}")
    if min_acceptance is not None and not 0 <= min_acceptance <= 1:
        raise SnapshotError(f"--min-acceptance must be in [0, 1], got {min_acceptance}")
    required = sorted(set(require_review))
    if not required and review_sample is None and min_acceptance is None:
        return None, None
    state = review_state(con)
    empty = {"examples": 0, "active": 0, "reviewed": 0, "accepted": 0, "rejected": 0, "edited": 0,
             "unaccepted_active": 0}
    scope = required or sorted(o for o, c in state.items() if c["active"])
    problems = []
    for origin in required:
        c = state.get(origin, empty)
        if c["unaccepted_active"]:
            problems.append(f"{origin}: {c['unaccepted_active']} of {c['active']} active example(s) not accepted by a "
                            f"reviewer (reviewed {c['reviewed']}, accepted {c['accepted']}, needed {c['active']} accepted)")
    for origin in scope:
        c = state.get(origin, empty)
        if review_sample is not None:
            needed = math.ceil(review_sample * c["examples"] - 1e-9)
            if c["reviewed"] < needed:
                problems.append(f"{origin}: reviewed {c['reviewed']} of {c['examples']} example(s), needed {needed} "
                                f"(--review-sample {review_sample:g}); accepted {c['accepted']}")
        if min_acceptance is not None and c["examples"]:
            rate = c["accepted"] / c["reviewed"] if c["reviewed"] else None
            if rate is None or rate < min_acceptance:
                shown = "none reviewed" if rate is None else f"acceptance {rate:.2f}"
                problems.append(f"{origin}: accepted {c['accepted']} of {c['reviewed']} reviewed ({shown}), needed "
                                f"acceptance >= {min_acceptance:g} (--min-acceptance)")
    record = {"require_review": required, "review_sample": review_sample, "min_acceptance": min_acceptance,
              "origins": {o: state.get(o, empty) for o in sorted(set(scope) | set(required))}}
    if not problems:
        return record, None
    return record, ("review gate: refusing the snapshot:\n  " + "\n  ".join(problems)
                    + "\nreview them with `curator review` (the examples queue, filtered by origin), "
                      "then run `curator snapshot create` again")




def create_snapshot(
    ws: Workspace, *, name: str | None = None, allow_leakage: bool = False,
    require_review: tuple[str, ...] | list[str] = (), review_sample: float | None = None,
    min_acceptance: float | None = None, log: Callable[[str], None] | None = None,
) -> Snapshot:
    """Freeze the active examples and their splits.  The same content twice returns the existing snapshot.

    ``name`` names the snapshot; when the same content was snapshotted before under another name, ``name``
    becomes an alias of it (``alias_added``), so both names resolve.  ``require_review``, ``review_sample``
    and ``min_acceptance`` are the review gate (:func:`review_gate`): it refuses with a
    :class:`SnapshotError` naming each origin's counts.  Temporary folders of snapshots a killed process
    was writing (``snapshots/.ID.tmp-PID``, the process gone) are removed when the workspace is opened.
    """
    if name is not None:
        _check_name(name)
    with ws.connect() as con:
        content = _members_sha256(con)
        if content is None:
            raise SnapshotError("no active examples to snapshot: run `curator ingest FILE` first")
        gate, refusal = review_gate(con, require_review=require_review, review_sample=review_sample,
                                    min_acceptance=min_acceptance)
        if refusal:
            raise SnapshotError(refusal)
        from curator.feedback.preferences import snapshot_digest  # "" when there are no preference pairs

        content.update(snapshot_digest(con).encode())
        digest = content.hexdigest()
        sid = digest[:16]
        existing = _first(_snapshots(ws, con, "WHERE id = ?", [sid]))
        if name is not None:
            owner = _name_owner(con, name)
            if owner is not None and owner != sid:
                raise SnapshotError(f"snapshot name {name!r} is already used by snapshot {owner}")
        if existing:
            added = None
            if name and name != existing.name and name not in existing.aliases:
                if existing.name:
                    con.execute("INSERT INTO snapshot_aliases (name, snapshot_id) VALUES (?, ?)", [name, sid])
                    added = name
                else:
                    con.execute("UPDATE snapshots SET name = ? WHERE id = ?", [name, sid])
                existing = _snapshots(ws, con, "WHERE id = ?", [sid])[0]
            existing.review_gate = gate
            existing.alias_added = added
            return existing
        if not allow_leakage:
            refusal = leakage_gate(con, ws)
            if refusal:
                raise SnapshotError(refusal)
        parent = _first(con.execute("SELECT id FROM snapshots ORDER BY seq DESC LIMIT 1").fetchall())
        parent_id = parent[0] if parent else None
        out = ws.snapshots_dir / sid
        tmp = ws.snapshots_dir / f".{sid}.tmp-{os.getpid()}"
        _remove(tmp)
        tmp.mkdir(parents=True)
        files: dict[str, Any] = {}
        for split in SPLITS:
            target = tmp / f"{split}.parquet"
            con.execute(
                f"""COPY (SELECT {_COLUMNS} FROM examples e JOIN splits s ON s.example_id = e.id
                          WHERE e.status = 'active' AND s.split = '{split}' ORDER BY e.id)
                    TO '{str(target).replace("'", "''")}' (FORMAT parquet)"""
            )
            files[split] = {"path": target.name, "sha256": _sha256(target), "rows": pq.read_metadata(target).num_rows}
        counts = _counts(con)
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        manifest = {
            "id": sid, "name": name, "parent_id": parent_id, "created_at": created_at, "content_sha256": digest,
            "tool": f"curator-loop {__version__}", "files": files, "counts": counts,
        }
        if gate is not None:
            manifest["review_gate"] = gate
        extra = _EXTRA_WRITERS and {k: w(con, tmp) for k, w in _EXTRA_WRITERS.items()}
        if extra:
            manifest["extra"] = extra
        body = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        (tmp / "manifest.json").write_bytes(body)
        _remove(out)
        tmp.rename(out)
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                """INSERT INTO snapshots (id, name, parent_id, created_at, counts, manifest_path, seq, manifest_sha256)
                   SELECT ?, ?, ?, ?, ?, ?, coalesce(max(seq), 0) + 1, ? FROM snapshots""",
                [sid, name, parent_id, created_at, json.dumps(counts), str(out.relative_to(ws.path) / "manifest.json"),
                 hashlib.sha256(body).hexdigest()],
            )
            con.execute(
                """INSERT INTO snapshot_members SELECT ?, e.id, s.split FROM examples e
                   JOIN splits s ON s.example_id = e.id WHERE e.status = 'active'""",
                [sid],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            shutil.rmtree(out, ignore_errors=True)
            raise
        if log:
            log(f"snapshot {sid} written to {out}")
        snap = _snapshots(ws, con, "WHERE id = ?", [sid])[0]
        snap.created = True
        snap.review_gate = gate
        return snap


#: Rows per Arrow batch where a snapshot's rows are streamed (its content hash, the exports).
BATCH_ROWS = 65_536


def _members_sha256(con: duckdb.DuckDBPyConnection) -> Any:
    """sha256 of ``id TAB split`` of the active examples, one per line in id order (no final newline),
    fed a batch at a time; ``None`` when there are none.  The snapshot id is the start of its digest."""
    reader = con.sql(
        """SELECT e.id || chr(9) || s.split FROM examples e JOIN splits s ON s.example_id = e.id
           WHERE e.status = 'active' ORDER BY e.id"""
    ).to_arrow_reader(BATCH_ROWS)
    h = hashlib.sha256()
    n = 0
    for batch in reader:
        lines = batch.column(0).to_pylist()
        if lines:
            h.update((("\n" if n else "") + "\n".join(lines)).encode())
            n += len(lines)
    return h if n else None


def _remove(path: Path) -> None:
    """Remove a file, link or folder (a link itself, never what it points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


_EXTRA_WRITERS: dict[str, Callable[[duckdb.DuckDBPyConnection, Path], Any]] = {}


def _write_preferences(con: duckdb.DuckDBPyConnection, folder: Path) -> Any:
    """The preference pairs of train (and eval) prompts, for DPO (see :mod:`curator.feedback.preferences`)."""
    from curator.feedback.preferences import write_snapshot_preferences

    return write_snapshot_preferences(con, folder)


_EXTRA_WRITERS["preferences"] = _write_preferences


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    rows = con.execute(
        """SELECT s.split, e.origin, e.task, count(*) FROM examples e JOIN splits s ON s.example_id = e.id
           WHERE e.status = 'active' GROUP BY ALL"""
    ).fetchall()
    out: dict[str, Any] = {"total": 0, "by_split": {}, "by_origin": {}, "by_task": {}, "by_split_origin": {}}
    for split, origin, task, n in rows:
        out["total"] += n
        out["by_split"][split] = out["by_split"].get(split, 0) + n
        out["by_origin"][origin] = out["by_origin"].get(origin, 0) + n
        out["by_task"][task] = out["by_task"].get(task, 0) + n
        key = f"{split}/{origin}"
        out["by_split_origin"][key] = out["by_split_origin"].get(key, 0) + n
    return out




def list_snapshots(ws: Workspace) -> list[Snapshot]:
    with ws.connect() as con:
        return _snapshots(ws, con, "ORDER BY seq", [])


def resolve_snapshot(ws: Workspace, ref: str) -> Snapshot:
    """A snapshot by id, unique id prefix, name (or alias), or ``latest``."""
    with ws.connect() as con:
        if ref == "latest":
            snaps = _snapshots(ws, con, "ORDER BY seq DESC LIMIT 1", [])
        else:
            snaps = _snapshots(ws, con, "WHERE name = ?", [ref])
            if not snaps:
                snaps = _snapshots(ws, con, "WHERE id IN (SELECT snapshot_id FROM snapshot_aliases WHERE name = ?)",
                                   [ref])
            if not snaps:
                snaps = _snapshots(ws, con, "WHERE starts_with(id, ?) ORDER BY seq", [ref])
    if not snaps:
        raise SnapshotError(f"no snapshot {ref!r} (see `curator snapshot list`)")
    if len(snaps) > 1:
        raise SnapshotError(f"snapshot id prefix {ref!r} is ambiguous: {', '.join(s.id for s in snaps)}")
    return snaps[0]


# -- reading: the manifest anchor, paths inside the folder, hashes -------------------------------------------------
def _corrupt(snap: Snapshot, problem: str) -> IntegrityError:
    return IntegrityError(f"snapshot {snap.id}: manifest {snap.path} is corrupt ({problem}); snapshots are immutable: "
                          "create a new one instead")


def _check_entry(snap: Snapshot, where: str, info: Any) -> None:
    if not isinstance(info, dict):
        raise _corrupt(snap, f"{where} is not an object")
    if not isinstance(info.get("path"), str):
        raise _corrupt(snap, f"{where} has no path")
    if not isinstance(info.get("sha256"), str) or not _SHA256.fullmatch(info["sha256"]):
        raise _corrupt(snap, f"{where} has no valid sha256")
    if not isinstance(info.get("rows"), int) or isinstance(info["rows"], bool) or info["rows"] < 0:
        raise _corrupt(snap, f"{where} has no valid row count")


def _parse_manifest(snap: Snapshot, body: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _corrupt(snap, f"not valid JSON: {e}") from None
    if not isinstance(manifest, dict):
        raise _corrupt(snap, "not a JSON object")
    if manifest.get("id") != snap.id:
        raise _corrupt(snap, f"it names snapshot {manifest.get('id')!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise _corrupt(snap, 'no "files"')
    for split, info in files.items():
        if split not in SPLITS:
            raise _corrupt(snap, f"unknown split {split!r} in files")
        _check_entry(snap, f"files.{split}", info)
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(counts.get(k), dict) for k in ("by_split", "by_origin",
                                                                                          "by_task")):
        raise _corrupt(snap, 'no valid "counts"')
    extra = manifest.get("extra")
    if extra is not None:
        if not isinstance(extra, dict):
            raise _corrupt(snap, '"extra" is not an object')
        prefs = extra.get("preferences")
        if prefs is not None:
            if not isinstance(prefs, dict):
                raise _corrupt(snap, "extra.preferences is not an object")
            for split, info in prefs.items():
                if split != "test_held_out":
                    _check_entry(snap, f"extra.preferences.{split}", info)
    return manifest


def _member(snap: Snapshot, rel: str) -> Path:
    """The file ``rel`` (as the manifest lists it) inside the snapshot folder; refuses any path that leaves it."""
    folder = snap.path.parent
    p = PurePosixPath(rel)
    if not rel or "\\" in rel or "\x00" in rel or p.is_absolute() or ".." in p.parts or rel.startswith("~"):
        raise IntegrityError(f"snapshot {snap.id}: manifest {snap.path} lists the path {rel!r}, which is not a "
                             "file inside the snapshot folder; refusing to read it")
    target = folder / rel
    root = folder.resolve()
    resolved = target.resolve()
    if root not in resolved.parents:
        raise IntegrityError(f"snapshot {snap.id}: {target} resolves to {resolved}, outside the snapshot folder "
                             f"{root}; refusing to read it")
    return resolved


def _listed(manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, entry) of every file the manifest lists: the splits, then the preference pairs."""
    for split, info in manifest["files"].items():
        yield f"files.{split}", info
    for split, info in ((manifest.get("extra") or {}).get("preferences") or {}).items():
        if split != "test_held_out":
            yield f"extra.preferences.{split}", info


def _writer(ws: Workspace) -> Workspace:
    """``ws``, or a writer on the same folder when ``ws`` is read-only (a read command)."""
    return Workspace(ws.path) if getattr(ws, "read_only", False) else ws


def _members_match(snap: Snapshot, manifest: dict[str, Any]) -> None:
    """A snapshot written before manifests were anchored: its files hold exactly its recorded members."""
    assert snap.workspace is not None
    with snap.workspace.connect() as con:
        recorded = set(con.execute("SELECT example_id, split FROM snapshot_members WHERE snapshot_id = ?",
                                   [snap.id]).fetchall())
    found: set[tuple[str, str]] = set()
    for split, info in manifest["files"].items():
        ids = pq.read_table(_member(snap, info["path"]), columns=["id"]).column("id").to_pylist()
        found.update((i, split) for i in ids)
    if found != recorded:
        extra, missing = len(found - recorded), len(recorded - found)
        raise IntegrityError(
            f"snapshot {snap.id}: its files do not hold the examples the workspace recorded for it ({extra} not "
            f"recorded, {missing} missing); it was modified after it was written: create a new snapshot instead")


def _anchor(snap: Snapshot, manifest: dict[str, Any], digest: str) -> None:
    """Record the manifest hash of a snapshot written before hashes were stored (after its files verified)."""
    if snap.workspace is None:
        return
    try:
        _members_match(snap, manifest)
        with _writer(snap.workspace).connect() as con:
            con.execute("UPDATE snapshots SET manifest_sha256 = ? WHERE id = ? AND manifest_sha256 IS NULL",
                        [digest, snap.id])
    except WorkspaceError as e:  # another process holds the file: recorded on a later read
        log.debug("snapshot %s: manifest hash not recorded yet: %s", snap.id, e)
        return
    snap.manifest_sha256 = digest


def load_manifest(snap: Snapshot, *, verify: bool = True) -> dict[str, Any]:
    """The manifest, checked against the hash the workspace recorded; with ``verify`` every file's sha256 too.

    Raises :class:`IntegrityError` for a missing, modified or corrupt manifest, a path outside the snapshot
    folder, or a missing or modified file.  A snapshot from before manifest hashes were recorded gets its
    hash recorded on its first verified read (after its files and members check out).
    """
    if snap.path.is_symlink() or not snap.path.is_file():
        raise IntegrityError(f"snapshot {snap.id}: manifest {snap.path} is missing")
    body = snap.path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    if snap.manifest_sha256 is not None and digest != snap.manifest_sha256:
        raise IntegrityError(
            f"snapshot {snap.id}: manifest {snap.path} was modified after the snapshot was written (its sha256 "
            "differs from the one recorded in the workspace); snapshots are immutable: create a new one instead")
    manifest = _parse_manifest(snap, body)
    for _, info in _listed(manifest):
        _member(snap, info["path"])
    if verify:
        for _, info in _listed(manifest):
            f = _member(snap, info["path"])
            if not f.is_file():
                raise IntegrityError(f"snapshot {snap.id}: {f} is missing")
            if _sha256(f) != info["sha256"]:
                raise IntegrityError(
                    f"snapshot {snap.id}: {f} was modified after the snapshot was written (sha256 mismatch); "
                    "snapshots are immutable: create a new one instead"
                )
        if snap.manifest_sha256 is None:
            _anchor(snap, manifest, digest)
    return manifest


def _decode(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        r["messages"] = json.loads(r["messages"])
        r["meta"] = json.loads(r["meta"]) if r["meta"] else {}
    return rows


def _split_file(snap: Snapshot, manifest: dict[str, Any], split: str) -> Path:
    if split not in manifest["files"]:
        raise SnapshotError(f"snapshot {snap.id} has no split {split!r}")
    return _member(snap, manifest["files"][split]["path"])


def read_split(ws: Workspace, ref: str | Snapshot, split: str, *, verify: bool = True) -> list[dict[str, Any]]:
    """The rows of one split as dicts, with ``messages`` and ``meta`` decoded."""
    snap = ref if isinstance(ref, Snapshot) else resolve_snapshot(ws, ref)
    manifest = load_manifest(snap, verify=verify)
    return _decode(pq.read_table(_split_file(snap, manifest, split)).to_pylist())


def diff_snapshots(ws: Workspace, a: str, b: str) -> dict[str, Any]:
    """What changed from snapshot ``a`` to ``b``: added, removed and moved examples, by origin, with reasons."""
    sa, sb = resolve_snapshot(ws, a), resolve_snapshot(ws, b)
    with ws.connect() as con:
        rows = con.execute(
            """
            WITH a AS (SELECT example_id, split FROM snapshot_members WHERE snapshot_id = ?),
                 b AS (SELECT example_id, split FROM snapshot_members WHERE snapshot_id = ?)
            SELECT coalesce(a.example_id, b.example_id) AS id, a.split, b.split, e.origin, e.excluded_reason,
                   (SELECT d.kind || ': ' || coalesce(d.reason, '')
                           -- the other example's id, unless the reason already names it
                           || CASE WHEN d.other_id IS NULL OR contains(coalesce(d.reason, ''), left(d.other_id, 12))
                                   THEN '' ELSE ' (of ' || d.other_id || ')' END
                      FROM decisions d WHERE d.example_id = coalesce(a.example_id, b.example_id)
                      AND d.undone_at IS NULL ORDER BY d.created_at DESC LIMIT 1) AS decision
            FROM a FULL OUTER JOIN b ON a.example_id = b.example_id
            LEFT JOIN examples e ON e.id = coalesce(a.example_id, b.example_id)
            WHERE a.split IS DISTINCT FROM b.split
            ORDER BY id
            """,
            [sa.id, sb.id],
        ).fetchall()
    out: dict[str, Any] = {"from": sa.id, "to": sb.id, "added": {}, "removed": {}, "moved": {}, "removed_examples": [],
                           "moved_examples": []}
    for eid, split_a, split_b, origin, excluded, decision in rows:
        if split_a is None:
            out["added"][origin] = out["added"].get(origin, 0) + 1
        elif split_b is None:
            out["removed"][origin] = out["removed"].get(origin, 0) + 1
            out["removed_examples"].append({"id": eid, "origin": origin, "split": split_a,
                                            "reason": decision or excluded or "not in the newer snapshot"})
        else:
            out["moved"][origin] = out["moved"].get(origin, 0) + 1
            out["moved_examples"].append({"id": eid, "origin": origin, "from": split_a, "to": split_b})
    return out




# -- export ---------------------------------------------------------------------------------------------------------
def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def _read_marker(out: Path) -> dict[str, dict[str, Any]]:
    """What earlier exports wrote into ``out`` (entry name -> format, snapshot, split); never read through a link."""
    marker = out / EXPORT_MARKER
    if marker.is_symlink() or not marker.is_file():
        return {}
    try:
        entries = json.loads(marker.read_text(encoding="utf-8")).get("entries", {})
    except (ValueError, AttributeError, OSError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {n: e for n, e in entries.items()
            if isinstance(n, str) and isinstance(e, dict) and n not in ("", ".", "..", EXPORT_MARKER)
            and "/" not in n and "\\" not in n}


def _sweep_export_tmp(out: Path) -> None:
    """Remove the staging folders that killed exports left in ``out`` (their process gone)."""
    for p in out.iterdir():
        m = _EXPORT_TMP.fullmatch(p.name)
        if m and not pid_alive(int(m.group(1))):
            _remove(p)


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A fresh folder inside ``out`` (same file system, so its entries move into place by rename)."""
    tmp = out / f".curator-export-tmp-{os.getpid()}"
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_openai(path: Path, dst: Path, messages_only: bool) -> None:
    with dst.open("w", encoding="utf-8") as f:
        for rows in _row_batches(path):
            f.write("".join(json.dumps(openai_record(r["messages"], json.loads(r["meta"]) if r["meta"] else {},
                                                     task=r["task"], messages_only=messages_only),
                                       ensure_ascii=False) + "\n" for r in rows))


def _row_batches(path: Path) -> Iterator[list[dict[str, Any]]]:
    """A snapshot split file's rows, :data:`BATCH_ROWS` at a time, with ``messages`` decoded and ``meta`` kept
    as its stored JSON text: an export holds one batch, not the split."""
    for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS):
        rows = batch.to_pylist()
        for r in rows:
            r["messages"] = json.loads(r["messages"])
        yield rows


def _export_rows(path: Path) -> list[dict[str, Any]]:
    """A snapshot split file's rows with ``messages`` decoded and ``meta`` kept as its stored JSON text."""
    return [r for rows in _row_batches(path) for r in rows]


def _write_parquet(path: Path, dst: Path, split: str, snapshot_id: str) -> None:
    """The export layout of one split, written a batch at a time."""
    schema = export_schema(with_split=True)
    schema = schema.with_metadata({**(schema.metadata or {}), b"curator.snapshot": snapshot_id.encode()})
    with pq.ParquetWriter(dst, schema) as writer:
        for rows in _row_batches(path):
            writer.write_table(export_table(rows, split=split).replace_schema_metadata(schema.metadata))


def _export_plan(snap: Snapshot, manifest: dict[str, Any], fmt: str, split: str | None
                 ) -> tuple[list[str], list[str]]:
    """(splits to write, splits left out because they are empty).

    The pair formats write train and eval even when one is empty (a DPO trainer asks for both).
    """
    if fmt in _PAIR_STYLE:
        from curator.feedback.preferences import dpo_export_splits

        return dpo_export_splits(snap.id, manifest, split), []
    splits = [split] if split else [s for s in SPLITS if s in manifest["files"]]
    if split is not None and split not in manifest["files"]:
        raise SnapshotError(f"snapshot {snap.id} has no split {split!r}")
    rows = {s: manifest["files"][s]["rows"] for s in splits}
    if split is not None and not rows[split]:
        raise SnapshotError(f"snapshot {snap.id} has no {split} examples: nothing to export")
    return [s for s in splits if rows[s]], [s for s in splits if not rows[s]]


def _entry(fmt: str, split: str) -> str:
    if fmt == "parquet":
        return f"{EXPORT_SPLIT_NAMES[split]}.parquet"
    if fmt == "hf":
        return EXPORT_SPLIT_NAMES[split]
    return f"{split}.jsonl"


def export_snapshot(
    ws: Workspace, ref: str, fmt: str, out: str | Path, *, split: str | None = None, force: bool = False,
    messages_only: bool = False,
) -> dict[str, Any]:
    """Write a verified snapshot in one of :data:`EXPORT_FORMATS` into the folder ``out``.

    * ``openai``: ``train.jsonl``, ``eval.jsonl``, ``test.jsonl``: ``{"messages": [...], "task": ..., <meta keys>}``
      (``messages_only``: just ``messages``, with their ``name``, ``weight`` and tool calls, and the ``tools``
      list of an example that has one);
    * ``parquet``: ``train.parquet``, ``validation.parquet``, ``test.parquet`` in the typed layout of
      :mod:`curator.data.exchange`;
    * ``hf``: a ``datasets.DatasetDict`` folder (``load_from_disk``) with ``train``, ``validation``, ``test`` in
      the same layout;
    * ``openai-dpo`` and ``trl-dpo`` (or ``dpo``): the preference pairs, ``train.jsonl`` and ``eval.jsonl``.

    Empty splits are left out (``left_out``).  ``split`` (``train``, ``eval`` or ``validation``, ``test``)
    exports one.  Entries already in ``out`` are refused unless ``force``, which replaces only what this
    export writes (and, exporting the whole snapshot, what an earlier export of the same format wrote there,
    as ``.curator-export.json`` lists it); anything else in ``out`` is left alone, and a link out of ``out``
    is never written through.
    """
    if fmt not in EXPORT_FORMATS:
        raise SnapshotError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
    fmt = "trl-dpo" if fmt == "dpo" else fmt
    split = "eval" if split == "validation" else split
    if split is not None and split not in SPLITS:
        raise SnapshotError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    if messages_only and fmt != "openai":
        raise SnapshotError("messages_only (--messages-only) applies to --format openai only")
    if fmt == "hf":
        require("datasets", "hf", "export --format hf")
    snap = resolve_snapshot(ws, ref)
    manifest = load_manifest(snap, verify=True)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SnapshotError(f"{out} exists and is not a folder")
    splits, left_out = _export_plan(snap, manifest, fmt, split)
    entries = {s: _entry(fmt, s) for s in splits}
    names = list(entries.values()) + (["dataset_dict.json"] if fmt == "hf" else [])
    earlier = _read_marker(out) if out.is_dir() else {}
    possible = {_entry(fmt, s) for s in SPLITS} | ({"dataset_dict.json"} if fmt == "hf" else set())
    stale = [] if split else [n for n, e in earlier.items()
                              if e.get("format") == fmt and n in possible and n not in names]
    root = out.resolve()
    for n in names + stale:
        t = out / n
        if t.is_symlink() and not _inside(root, t.resolve()):
            raise SnapshotError(f"refusing to replace {t}: it is a link to {t.resolve()}, outside {root}; an export "
                                "never writes through a link out of its folder (remove the link first)")
    present = [n for n in names + stale if os.path.lexists(out / n)]
    if present and not force:
        raise SnapshotError(f"{out} already holds {', '.join(present)}; pass --force to replace "
                            f"{'it' if len(present) == 1 else 'them'} (nothing else in the folder is touched)")
    out.mkdir(parents=True, exist_ok=True)
    _sweep_export_tmp(out)
    written: dict[str, Any] = {}
    with _staging(out) as stage:
        if fmt == "hf":
            _stage_hf(snap, manifest, entries, stage)
        for s, n in entries.items():
            if fmt == "openai":
                _write_openai(_split_file(snap, manifest, s), stage / n, messages_only)
            elif fmt == "parquet":
                _write_parquet(_split_file(snap, manifest, s), stage / n, s, snap.id)
            elif fmt in _PAIR_STYLE:
                from curator.feedback.preferences import write_pairs_jsonl

                src = _member(snap, manifest["extra"]["preferences"][s]["path"])
                write_pairs_jsonl(src, stage / n, _PAIR_STYLE[fmt])
            rows = manifest["extra"]["preferences"][s]["rows"] if fmt in _PAIR_STYLE else manifest["files"][s]["rows"]
            written[s] = {"path": str(out / n), "rows": rows}
        # Everything is written: now replace, entry by entry (a rename replaces a link itself, never its target).
        for n in stale:
            _remove(out / n)
        for n in names:
            _remove(out / n)
            os.replace(stage / n, out / n)
        record = {n: e for n, e in earlier.items() if n not in stale}
        record.update({n: {"format": fmt, "snapshot": snap.id,
                           "split": next((s for s, e in entries.items() if e == n), None)} for n in names})
        (stage / EXPORT_MARKER).write_text(json.dumps({"tool": f"curator-loop {__version__}", "entries": record},
                                                      indent=2) + "\n", encoding="utf-8")
        os.replace(stage / EXPORT_MARKER, out / EXPORT_MARKER)
    return {"snapshot": snap.id, "format": fmt, "out": str(out), "files": written, "left_out": left_out,
            "replaced": [n for n in present if n in names], "removed": stale}


def _stage_hf(snap: Snapshot, manifest: dict[str, Any], entries: dict[str, str], stage: Path) -> None:
    """The ``datasets.DatasetDict`` of the non-empty splits, saved into ``stage``."""
    import datasets
    from datasets import Dataset, DatasetDict, DatasetInfo
    from datasets.table import InMemoryTable

    datasets.disable_progress_bars()
    parts = {}
    for s, n in entries.items():
        table = export_table(_export_rows(_split_file(snap, manifest, s)))
        info = DatasetInfo(description=f"curator snapshot {snap.id}, split {s} (curator-loop {__version__})")
        parts[n] = Dataset(InMemoryTable(table), info=info, split=n)
    DatasetDict(parts).save_to_disk(str(stage))


def snapshot_stats(ws: Workspace, ref: str | None = None) -> dict[str, Any]:
    """Counts by split, origin and task (of a snapshot, or of the live workspace)."""
    if ref is not None:
        return dict(resolve_snapshot(ws, ref).counts)
    with ws.connect() as con:
        counts = _counts(con)
        excluded = con.execute("SELECT count(*) FROM examples WHERE status <> 'active'").fetchall()[0][0]
    counts["excluded"] = int(excluded)
    return counts


def split_table(ws: Workspace, snap: Snapshot, split: str) -> pa.Table:
    """One split as an Arrow table (verified)."""
    manifest = load_manifest(snap, verify=True)
    return pq.read_table(_split_file(snap, manifest, split))

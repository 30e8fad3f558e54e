"""Snapshots: immutable, content-addressed versions of the dataset.

A snapshot's id is a hash of its sorted (example id, split) members, so the same data always
gives the same id.  Each snapshot is a folder ``snapshots/<id>/`` with one Parquet file per
split and a ``manifest.json`` (file sha256s, counts by split and origin, parent, creation time,
tool version).  Reading a snapshot checks every file against its manifest hash.

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
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from curator import __version__
from curator.data.splits import SPLITS
from curator.errors import IntegrityError, SnapshotError, require
from curator.quality.leakage import leakage_gate
from curator.workspace import Workspace

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "EXPORT_FORMATS",
    "Snapshot",
    "create_snapshot",
    "diff_snapshots",
    "export_snapshot",
    "list_snapshots",
    "read_split",
    "resolve_snapshot",
    "review_gate",
    "review_state",
]

EXPORT_FORMATS = ("openai", "hf", "parquet", "dpo")
_COLUMNS = "e.id, e.messages::VARCHAR AS messages, e.task, e.origin, e.source, e.parent_id, e.meta::VARCHAR AS meta"



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

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id, "name": self.name, "parent_id": self.parent_id, "created_at": self.created_at,
            "counts": self.counts, "path": str(self.path), "created": self.created,
        }
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


def _row_to_snapshot(ws: Workspace, row: tuple[Any, ...]) -> Snapshot:
    sid, name, parent, created, counts, mpath = row
    return Snapshot(sid, name, parent, str(created), json.loads(counts) if counts else {}, ws.path / mpath)


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

    ``require_review``, ``review_sample`` and ``min_acceptance`` are the review gate (:func:`review_gate`):
    it refuses with a :class:`SnapshotError` naming each origin's counts.
    """
    if name is not None:
        _check_name(name)
    with ws.connect() as con:
        members = con.execute(
            """SELECT e.id, s.split FROM examples e JOIN splits s ON s.example_id = e.id
               WHERE e.status = 'active' ORDER BY e.id"""
        ).fetchall()
        if not members:
            raise SnapshotError("no active examples to snapshot: run `curator ingest FILE` first")
        gate, refusal = review_gate(con, require_review=require_review, review_sample=review_sample,
                                    min_acceptance=min_acceptance)
        if refusal:
            raise SnapshotError(refusal)
        from curator.feedback.preferences import snapshot_digest  # "" when there are no preference pairs

        digest = hashlib.sha256(
            ("\n".join(f"{i}\t{s}" for i, s in members) + snapshot_digest(con)).encode()
        ).hexdigest()
        sid = digest[:16]
        existing = _first(con.execute("SELECT id, name, parent_id, created_at, counts, manifest_path FROM snapshots WHERE id = ?", [sid]).fetchall())
        if name is not None:
            clash = _first(con.execute("SELECT id FROM snapshots WHERE name = ? AND id <> ?", [name, sid]).fetchall())
            if clash:
                raise SnapshotError(f"snapshot name {name!r} is already used by snapshot {clash[0]}")
        if existing:
            if name and not existing[1]:
                con.execute("UPDATE snapshots SET name = ? WHERE id = ?", [name, sid])
                existing = _first(con.execute("SELECT id, name, parent_id, created_at, counts, manifest_path FROM snapshots WHERE id = ?", [sid]).fetchall())
            snap = _row_to_snapshot(ws, existing)
            snap.review_gate = gate
            return snap
        if not allow_leakage:
            refusal = leakage_gate(con, ws)
            if refusal:
                raise SnapshotError(refusal)
        parent = _first(con.execute("SELECT id FROM snapshots ORDER BY seq DESC LIMIT 1").fetchall())
        parent_id = parent[0] if parent else None
        out = ws.snapshots_dir / sid
        tmp = ws.snapshots_dir / f".{sid}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
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
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                """INSERT INTO snapshots (id, name, parent_id, created_at, counts, manifest_path, seq)
                   SELECT ?, ?, ?, ?, ?, ?, coalesce(max(seq), 0) + 1 FROM snapshots""",
                [sid, name, parent_id, created_at, json.dumps(counts), str(out.relative_to(ws.path) / "manifest.json")],
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
        snap = _row_to_snapshot(ws, con.execute("SELECT id, name, parent_id, created_at, counts, manifest_path FROM snapshots WHERE id = ?", [sid]).fetchall()[0])
        snap.created = True
        snap.review_gate = gate
        return snap


#: Extra files written into a new snapshot folder: name -> writer(con, folder) returning manifest info.
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
        rows = con.execute("SELECT id, name, parent_id, created_at, counts, manifest_path FROM snapshots ORDER BY seq").fetchall()
    return [_row_to_snapshot(ws, r) for r in rows]


def resolve_snapshot(ws: Workspace, ref: str) -> Snapshot:
    """A snapshot by id, unique id prefix, name, or ``latest``."""
    with ws.connect() as con:
        if ref == "latest":
            rows = con.execute("SELECT id, name, parent_id, created_at, counts, manifest_path FROM snapshots ORDER BY seq DESC LIMIT 1").fetchall()
        else:
            rows = con.execute("SELECT id, name, parent_id, created_at, counts, manifest_path FROM snapshots WHERE name = ?", [ref]).fetchall()
            if not rows:
                rows = con.execute("SELECT id, name, parent_id, created_at, counts, manifest_path FROM snapshots WHERE starts_with(id, ?)", [ref]).fetchall()
    if not rows:
        raise SnapshotError(f"no snapshot {ref!r} (see `curator snapshot list`)")
    if len(rows) > 1:
        raise SnapshotError(f"snapshot id prefix {ref!r} is ambiguous: {', '.join(r[0] for r in rows)}")
    return _row_to_snapshot(ws, rows[0])


def load_manifest(snap: Snapshot, *, verify: bool = True) -> dict[str, Any]:
    """The manifest; with ``verify`` every data file's sha256 is checked against it."""
    if not snap.path.exists():
        raise IntegrityError(f"snapshot {snap.id}: manifest {snap.path} is missing")
    manifest = json.loads(snap.path.read_text())
    if verify:
        for info in manifest["files"].values():
            f = snap.path.parent / info["path"]
            if not f.exists():
                raise IntegrityError(f"snapshot {snap.id}: {f} is missing")
            if _sha256(f) != info["sha256"]:
                raise IntegrityError(
                    f"snapshot {snap.id}: {f} was modified after the snapshot was written (sha256 mismatch); "
                    "snapshots are immutable: create a new one instead"
                )
    return manifest


def read_split(ws: Workspace, ref: str | Snapshot, split: str, *, verify: bool = True) -> list[dict[str, Any]]:
    """The rows of one split as dicts, with ``messages`` and ``meta`` decoded."""
    snap = ref if isinstance(ref, Snapshot) else resolve_snapshot(ws, ref)
    manifest = load_manifest(snap, verify=verify)
    if split not in manifest["files"]:
        raise SnapshotError(f"snapshot {snap.id} has no split {split!r}")
    rows = pq.read_table(snap.path.parent / manifest["files"][split]["path"]).to_pylist()
    for r in rows:
        r["messages"] = json.loads(r["messages"])
        r["meta"] = json.loads(r["meta"]) if r["meta"] else {}
    return rows


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


def _safe_target(out: Path, name: str) -> Path:
    """``out/name``, refusing any path (``..``, absolute, symlink) that ends up outside ``out``."""
    root = out.resolve()
    target = (out / name).resolve()
    if target != root and root not in target.parents:
        raise SnapshotError(f"refusing to write {out / name}: it resolves to {target}, outside {root}")
    return out / name


def export_snapshot(
    ws: Workspace, ref: str, fmt: str, out: str | Path, *, split: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Write a snapshot as OpenAI chat JSONL, a ``datasets`` folder, or Parquet, after verifying it."""
    if fmt not in EXPORT_FORMATS:
        raise SnapshotError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
    if split is not None and split not in SPLITS:
        raise SnapshotError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    if fmt == "hf":
        require("datasets", "hf", "export --format hf")
    snap = resolve_snapshot(ws, ref)
    manifest = load_manifest(snap, verify=True)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SnapshotError(f"{out} exists and is not a folder")
    splits = [split] if split else list(SPLITS)
    if fmt == "dpo":
        from curator.feedback.preferences import dpo_export_splits, write_dpo_jsonl

        splits = dpo_export_splits(snap.id, manifest, split)
    names = {"openai": [f"{s}.jsonl" for s in splits], "parquet": [f"{s}.parquet" for s in splits], "hf": ["."],
             "dpo": [f"{s}.jsonl" for s in splits]}[fmt]
    if out.exists() and any(out.iterdir()):
        clashes = [n for n in names if n == "." or (out / n).exists() or (out / n).is_symlink()]
        if clashes and not force:
            raise SnapshotError(f"{out} already holds an export ({', '.join(clashes)}); pass --force to overwrite")
    targets = {n: _safe_target(out, n) for n in names if n != "."}
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {}
    if fmt == "parquet":
        for s in splits:
            src = snap.path.parent / manifest["files"][s]["path"]
            dst = targets[f"{s}.parquet"]
            if dst.is_symlink():
                dst.unlink()
            shutil.copyfile(src, dst)
            written[s] = {"path": str(dst), "rows": manifest["files"][s]["rows"]}
    elif fmt == "openai":
        for s in splits:
            rows = read_split(ws, snap, s, verify=False)
            dst = targets[f"{s}.jsonl"]
            if dst.is_symlink():
                dst.unlink()
            with dst.open("w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps({"messages": r["messages"]}, ensure_ascii=False) + "\n")
            written[s] = {"path": str(dst), "rows": len(rows)}
    elif fmt == "dpo":
        for s in splits:
            written[s] = write_dpo_jsonl(snap.path, snap.id, manifest, s, targets[f"{s}.jsonl"])
    else:
        import datasets
        from datasets import Dataset, DatasetDict

        datasets.disable_progress_bars()

        parts = {}
        for s in splits:
            rows = read_split(ws, snap, s, verify=False)
            parts[s] = Dataset.from_list(
                [
                    {"id": r["id"], "task": r["task"], "origin": r["origin"],
                     "messages": [{"role": m["role"], "content": m["content"]} for m in r["messages"]]}
                    for r in rows
                ]
            ) if rows else Dataset.from_dict({"id": [], "task": [], "origin": [], "messages": []})
            written[s] = {"path": str(out / s), "rows": len(rows)}
        if force and (out / "dataset_dict.json").exists():
            shutil.rmtree(out)
        DatasetDict(parts).save_to_disk(str(out))
    return {"snapshot": snap.id, "format": fmt, "out": str(out), "files": written}


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
    return pq.read_table(snap.path.parent / manifest["files"][split]["path"])

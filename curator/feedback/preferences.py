"""Preference pairs: storing them, freezing them into snapshots, exporting them for DPO.

A pair is (prompt messages, chosen answer, rejected answer), identified by the sha256 of the three
(so the same pair from two files is stored once), with its ``source`` file, ``margin`` and the
``group_key`` of its prompt (the first user turn, as for examples).

Snapshots: a pair belongs to the split of its prompt group: the split of a stored example of that
group (test beats eval beats train, as in :func:`curator.data.ingest.store_examples`), else the hash rule
of :func:`curator.data.splits.hash_split` with the workspace ratios, where -- as for examples of feedback
origin -- a group that would hash into test goes to train (no test item has that prompt).  Each snapshot holds
``preferences/train.parquet`` and ``preferences/eval.parquet``; pairs of test prompts are left out
(only counted), so no test prompt is ever trained on.

Export (:func:`write_pairs_jsonl`), ``train.jsonl`` and ``eval.jsonl`` in one of two styles:

* ``snapshot export --format trl-dpo`` (or ``dpo``): TRL's conversational preference format,
  ``{"prompt": [messages], "chosen": [{"role": "assistant", ...}], "rejected": [{"role": "assistant", ...}]}``,
  which ``trl.DPOTrainer`` reads as it is;
* ``snapshot export --format openai-dpo``: OpenAI's preference fine-tuning format,
  ``{"input": {"messages": [messages]}, "preferred_output": [{"role": "assistant", ...}],
  "non_preferred_output": [{"role": "assistant", ...}]}``.

``curator feedback ingest`` reads both back (the ``hh-rlhf`` reader) as the same pairs (same ids).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from curator.data.splits import DEFAULT_RATIOS, hash_split
from curator.errors import SnapshotError
from curator.records import group_key, messages_json

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "DPO_SPLITS",
    "PAIR_STYLES",
    "Pair",
    "dpo_export_splits",
    "pair_id",
    "pair_splits",
    "snapshot_digest",
    "pair_record",
    "store_pairs",
    "write_pairs_jsonl",
    "write_snapshot_preferences",
]

#: The splits a snapshot holds pairs for (test prompts are held out).
DPO_SPLITS = ("train", "eval")
#: The JSONL styles pairs export to (:func:`pair_record`).
PAIR_STYLES = ("trl", "openai")


def pair_id(prompt: list[dict[str, Any]], chosen: str, rejected: str) -> str:
    """sha256 of the prompt JSON, the chosen and the rejected answer (length-prefixed, so unambiguous)."""
    p = messages_json(prompt)
    key = f"{len(p)}\x1f{p}\x1e{len(chosen)}\x1f{chosen}\x1e{rejected}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass
class Pair:
    """One preference pair ready to store (prompt and answers already scrubbed and normalised)."""

    prompt: list[dict[str, Any]]
    chosen: str
    rejected: str
    source: str | None
    margin: float | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return pair_id(self.prompt, self.chosen, self.rejected)


def store_pairs(con: duckdb.DuckDBPyConnection, pairs: list[Pair]) -> int:
    """Insert the pairs not stored yet (by id; the first of repeats wins).  Call inside a transaction."""
    seen: set[str] = set()
    rows: dict[str, list[Any]] = {k: [] for k in ("id", "prompt", "chosen", "rejected", "source", "margin",
                                                 "group_key", "meta")}
    for p in pairs:
        pid = p.id
        if pid in seen:
            continue
        seen.add(pid)
        rows["id"].append(pid)
        rows["prompt"].append(messages_json(p.prompt))
        rows["chosen"].append(p.chosen)
        rows["rejected"].append(p.rejected)
        rows["source"].append(p.source)
        rows["margin"].append(p.margin)
        rows["group_key"].append(group_key(p.prompt))
        rows["meta"].append(orjson.dumps(p.meta).decode("utf-8"))
    if not seen:
        return 0
    table = pa.table({**rows, "source": pa.array(rows["source"], pa.string()),
                      "margin": pa.array(rows["margin"], pa.float64())})
    con.register("_incoming_pairs", table)
    try:
        before = con.execute("SELECT count(*) FROM preferences").fetchall()[0][0]
        con.execute(
            """INSERT INTO preferences (id, prompt, chosen, rejected, source, margin, group_key, meta)
               SELECT i.id, i.prompt, i.chosen, i.rejected, i.source, i.margin, i.group_key, i.meta
               FROM _incoming_pairs i ANTI JOIN preferences p ON p.id = i.id"""
        )
        after = con.execute("SELECT count(*) FROM preferences").fetchall()[0][0]
    finally:
        con.unregister("_incoming_pairs")
    return int(after - before)


def pair_splits(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """group_key -> split for every prompt group of the stored pairs."""
    rows = con.execute("SELECT value FROM settings WHERE key = 'split_ratios'").fetchall()
    ratios = tuple(json.loads(rows[0][0])) if rows else DEFAULT_RATIOS
    groups = [r[0] for r in con.execute("SELECT DISTINCT group_key FROM preferences").fetchall()]
    known = dict(con.execute(
        """SELECT e.group_key,
                  arg_max(s.split, CASE s.split WHEN 'test' THEN 3 WHEN 'eval' THEN 2 ELSE 1 END)
           FROM examples e JOIN splits s ON s.example_id = e.id
           WHERE e.group_key IN (SELECT group_key FROM preferences)
           GROUP BY e.group_key"""
    ).fetchall())
    out = {}
    for g in groups:
        # Like examples of feedback origin, a new group never hashes into test (the test split is what users
        # bring); a group that already has a test example stays test and its pairs are held out.
        hashed = hash_split(g, ratios)
        out[g] = known.get(g) or ("train" if hashed == "test" else hashed)
    return out


def snapshot_digest(con: duckdb.DuckDBPyConnection) -> str:
    """What the snapshot id should also cover: ``""`` without pairs, else a line hashing the pairs by split.

    Empty when there are no pairs, so the ids of example-only snapshots stay as they were.
    """
    splits = pair_splits(con)
    if not splits:
        return ""
    rows = con.execute("SELECT id, group_key FROM preferences ORDER BY id").fetchall()
    body = "\n".join(f"{pid}\t{splits[g]}" for pid, g in rows if splits[g] in DPO_SPLITS)
    return "\npreferences\t" + hashlib.sha256(body.encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_snapshot_preferences(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, Any]:
    """Snapshot writer: ``preferences/{train,eval}.parquet`` in ``folder``; returns the manifest entry."""
    splits = pair_splits(con)
    con.register("_pair_splits", pa.table({"group_key": list(splits), "split": list(splits.values())}))
    out_dir = folder / "preferences"
    out_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {}
    try:
        for split in DPO_SPLITS:
            target = out_dir / f"{split}.parquet"
            con.execute(
                f"""COPY (SELECT p.id, p.prompt::VARCHAR AS prompt, p.chosen, p.rejected, p.source, p.margin,
                                 p.group_key, p.meta::VARCHAR AS meta
                          FROM preferences p JOIN _pair_splits s ON s.group_key = p.group_key
                          WHERE s.split = '{split}' ORDER BY p.id)
                    TO '{str(target).replace("'", "''")}' (FORMAT parquet)"""
            )
            info[split] = {"path": f"preferences/{split}.parquet", "sha256": _sha256(target),
                           "rows": pq.read_metadata(target).num_rows}
        held = con.execute(
            "SELECT count(*) FROM preferences p JOIN _pair_splits s ON s.group_key = p.group_key WHERE s.split = 'test'"
        ).fetchall()[0][0]
    finally:
        con.unregister("_pair_splits")
    info["test_held_out"] = int(held)
    return info


def _manifest_pairs(snap_id: str, manifest: dict[str, Any]) -> dict[str, Any]:
    info = (manifest.get("extra") or {}).get("preferences")
    if not info:
        raise SnapshotError(f"snapshot {snap_id} has no preference pairs (it was made before feedback ingestion "
                            "was available); create a new snapshot")
    return info


def dpo_export_splits(snap_id: str, manifest: dict[str, Any], split: str | None) -> list[str]:
    """The splits ``snapshot export --format dpo`` writes (train and eval, or the one asked for).

    Refuses ``test`` (never held), snapshots made before pairs existed, and, without ``split``, a
    snapshot with no pairs at all.
    """
    info = _manifest_pairs(snap_id, manifest)
    if split == "test":
        raise SnapshotError(f"snapshot {snap_id} holds no test preference pairs: pairs whose prompts fall in the "
                            f"test split are held out ({info.get('test_held_out', 0)} left out)")
    if split is not None:
        return [split]  # one split: written even when empty (a trainer asks for train and eval)
    if not sum(info[s]["rows"] for s in DPO_SPLITS):
        raise SnapshotError(f"snapshot {snap_id} has no preference pairs (add some with `curator feedback ingest`, "
                            "then create a snapshot)")
    return list(DPO_SPLITS)


def pair_record(style: str, prompt: list[dict[str, Any]], chosen: str, rejected: str) -> dict[str, Any]:
    """One pair as a JSONL record of ``style`` (``trl`` or ``openai``, see the module docstring)."""
    prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
    good, bad = [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]
    if style == "trl":
        return {"prompt": prompt, "chosen": good, "rejected": bad}
    if style == "openai":
        return {"input": {"messages": prompt}, "preferred_output": good, "non_preferred_output": bad}
    raise ValueError(f"unknown pair style {style!r} (choose from {', '.join(PAIR_STYLES)})")


def write_pairs_jsonl(src: Path, dst: Path, style: str) -> int:
    """Write the pairs of one snapshot file (``preferences/<split>.parquet``, already verified) as JSONL of
    ``style``; returns the number of rows."""
    rows = pq.read_table(src, columns=["prompt", "chosen", "rejected"]).to_pylist()
    with dst.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(pair_record(style, json.loads(r["prompt"]), r["chosen"], r["rejected"]),
                               ensure_ascii=False) + "\n")
    return len(rows)

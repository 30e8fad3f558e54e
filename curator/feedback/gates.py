"""The gates a liked answer passes before it becomes an SFT example.

The same gates as any new data: it must not overlap the eval or test split (a logged conversation
that equals a test item must not enter train), and it must not duplicate a stored active example
or an earlier candidate of the same batch.

First, a candidate whose prompt group (first user turn, :func:`curator.records.group_key`) already
has an eval or test example is rejected: by the group rule it would join that split.  Then the
dataset-quality functions decide: :func:`curator.quality.leakage.find_leaks_of` (``exact`` and
``ngram`` overlap, plus ``semantic`` when asked) and :func:`curator.quality.dedup.find_duplicates_of`
(``exact``, ``near``, ``semantic``), with the one text fold of :mod:`curator.quality.fold`.

:func:`gate` returns, for each rejected candidate id, the reason, plus the names of the gates that ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from curator.errors import CuratorError
from curator.quality.dedup import find_duplicates_of
from curator.quality.leakage import find_leaks_of
from curator.records import Example
from curator.workspace import Workspace

__all__ = ["GATE_METHODS", "GateResult", "gate", "gate_methods"]

#: Duplicate methods a positive is checked with; ``semantic`` also adds the semantic leakage check.
GATE_METHODS = ("exact", "near", "semantic")


@dataclass
class GateResult:
    """Why each rejected candidate was rejected (candidate id -> reason), and which gates ran."""

    rejected: dict[str, str] = field(default_factory=dict)
    gates: list[str] = field(default_factory=list)


def gate_methods(gates: bool | Sequence[str] | str) -> tuple[str, ...]:
    """``True`` -> all of :data:`GATE_METHODS`; ``False`` -> none; names (or ``"exact,near"``) -> those."""
    if gates is True:
        return GATE_METHODS
    if gates is False:
        return ()
    names = [g.strip() for g in (gates.split(",") if isinstance(gates, str) else gates) if g.strip()]
    unknown = [g for g in names if g not in GATE_METHODS]
    if unknown:
        raise CuratorError(f"unknown gate {unknown[0]!r} (choose from {', '.join(GATE_METHODS)})")
    return tuple(g for g in GATE_METHODS if g in names)


def gate(ws: Workspace, con: duckdb.DuckDBPyConnection, candidates: Sequence[Example], methods: Sequence[str] = GATE_METHODS) -> GateResult:
    """Leakage first, then duplicates, over ``candidates`` in order (of two candidates the first wins)."""
    result = GateResult()
    if not candidates or not methods:
        return result
    leak_methods = ("exact", "ngram", "semantic") if "semantic" in methods else ("exact", "ngram")
    result.rejected.update(_group_leaks(con, candidates))
    result.gates.append("prompt group vs eval/test")
    rest = [c for c in candidates if c.id not in result.rejected]
    for m in find_leaks_of(ws, rest, splits=("eval", "test"), methods=leak_methods):
        c = rest[m.candidate]
        score = "" if m.kind == "exact" else f" {m.score:.2f}"
        result.rejected.setdefault(c.id, f"leakage ({m.kind}{score}) into {m.split} example {m.other_id}")
    result.gates.append(f"leakage {'+'.join(leak_methods)} vs eval/test")
    rest = [c for c in candidates if c.id not in result.rejected]
    for m in find_duplicates_of(ws, rest, methods=tuple(methods)):
        c = rest[m.candidate]
        other = m.other_id
        if other.startswith("candidate:"):
            other = f"{rest[int(other.split(':', 1)[1])].id} (same file)"
        score = "" if m.kind == "exact" else f" {m.score:.2f}"
        result.rejected.setdefault(c.id, f"duplicate ({m.kind}{score}) of {other}")
    result.gates.append(f"duplicates {'+'.join(methods)}")
    return result


def _group_leaks(con: duckdb.DuckDBPyConnection, candidates: Sequence[Example]) -> dict[str, str]:
    """Candidates whose prompt group (first user turn) already has an eval/test example.

    Such an example would join that split by the group rule: logged data must not grow the held-out splits.
    """
    groups = {c.group: c.id for c in candidates}
    con.register("_groups", pa.table({"g": list(groups)}))
    try:
        rows = con.execute(
            """SELECT e.group_key, arg_max(s.split, CASE s.split WHEN 'test' THEN 2 ELSE 1 END), min(e.id)
               FROM examples e JOIN splits s ON s.example_id = e.id
               WHERE s.split IN ('eval', 'test') AND e.group_key IN (SELECT g FROM _groups)
               GROUP BY e.group_key"""
        ).fetchall()
    finally:
        con.unregister("_groups")
    found = {g: (split, eid) for g, split, eid in rows}
    return {c.id: f"leakage (prompt) into {found[c.group][0]} example {found[c.group][1]}: same first user turn"
            for c in candidates if c.group in found}

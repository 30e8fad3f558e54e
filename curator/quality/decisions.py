"""Undo quality decisions: every dedup, leakage and review exclusion is a ``decisions`` row that can be undone.

Review decisions (``curator review``): ``review_reject`` and ``edited`` exclude an example and can be
restored like the others; ``review_accept`` (and ``split_moved``) exclude nothing, so a live one never
keeps another kind's restored example excluded.
"""

from __future__ import annotations

from datetime import datetime

from curator.errors import CuratorError
from curator.quality.dedup.run import DEDUP_KINDS
from curator.quality.leakage import LEAK_KINDS
from curator.workspace import Workspace

__all__ = ["NON_EXCLUDING_KINDS", "REVIEW_KINDS", "restorable_kinds", "restore"]

#: Decision kinds of the review app: an accept (the example stays active), a reject and an edit (both exclude it).
REVIEW_KINDS = ("review_accept", "review_reject", "edited")
#: Decision kinds that record something without excluding the example.
NON_EXCLUDING_KINDS = ("review_accept", "split_moved")


def restorable_kinds() -> list[str]:
    """Kinds :func:`restore` accepts: ``dedup``, ``leakage`` (all of their methods), one exact kind, or a
    review exclusion (``review_reject``, ``edited``)."""
    return ["dedup", *DEDUP_KINDS.values(), "leakage", *LEAK_KINDS.values(), "review_reject", "edited"]


def restore(ws: Workspace, kind: str) -> int:
    """Undo every live decision of ``kind``: those examples become active again and the decisions get ``undone_at``.

    ``kind`` is a decision kind (``dedup_near``), or a family (``dedup``, ``leakage``: all their
    kinds). Returns how many examples were restored.
    """
    families = {"dedup": list(DEDUP_KINDS.values()), "leakage": list(LEAK_KINDS.values())}
    kinds = families.get(kind, [kind])
    if kind not in families and kind not in restorable_kinds():
        with ws.connect() as con:
            known = {r[0] for r in con.execute("SELECT DISTINCT kind FROM decisions").fetchall()}
        if kind not in known:
            raise CuratorError(f"unknown decision kind {kind!r} (choose from {', '.join(restorable_kinds())})")
    now = datetime.now()
    with ws.transaction() as con:
        quoted = ", ".join("'" + k.replace("'", "''") + "'" for k in kinds)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _undo AS SELECT DISTINCT example_id FROM decisions
                WHERE undone_at IS NULL AND kind IN ({quoted})"""
        )
        n = con.execute(
            "SELECT count(*) FROM examples WHERE status = 'excluded' AND id IN (SELECT example_id FROM _undo)"
        ).fetchall()[0][0]
        con.execute(f"UPDATE decisions SET undone_at = ? WHERE undone_at IS NULL AND kind IN ({quoted})", [now])
        con.execute(
            """UPDATE examples SET status = 'active', excluded_reason = NULL
               WHERE status = 'excluded' AND id IN (SELECT example_id FROM _undo)
               AND id NOT IN (SELECT example_id FROM decisions WHERE undone_at IS NULL
                              AND kind NOT IN (SELECT unnest(?::VARCHAR[])))""",
            [list(NON_EXCLUDING_KINDS)],
        )
        con.execute("DROP TABLE _undo")
    return int(n)

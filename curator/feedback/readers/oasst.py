"""Open-Assistant message trees (``oasst1``/``oasst2`` ``*_tree.jsonl``): one tree per line.

``{"message_tree_id", "prompt": {"message_id", "text", "role": "prompter", "replies": [...]}}``; each
message may carry ``emojis`` (``{"+1": 3, "-1": 1, "red_flag": 0, ...}``), a ``rank`` among its
siblings (0 best) and ``deleted`` / ``review_result``.

Decisions (documented in ``docs/feedback.md``):

* Messages that are ``deleted`` or failed review (``review_result`` false) are skipped, with their
  whole subtree.
* Every assistant reply is one event: the conversation path from the root to it; trace id = its
  ``message_id``; rating = net votes (``+1`` minus ``-1``).
* Label: ``negative`` when net votes < 0 or it has a ``red_flag``; else ``positive`` when net votes
  > 0, or it is ranked first (rank 0) among at least two ranked siblings; else ``neutral``.
* A positive becomes an SFT example only when no earlier assistant turn on its path is negative.
* Pairs: among siblings with ranks, the best-ranked one is chosen over each worse-ranked one
  (margin = rank difference), whatever the votes say (ranking is a direct comparison).  Among
  unranked siblings, the one with the highest net votes (> 0, no tie) is chosen over each sibling
  whose net votes are <= 0 (margin = vote difference).
"""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import RowError
from curator.feedback.events import Event, PairSpec, Parsed, RatingRules

NAME = "oasst"
__all__ = ["NAME", "convert", "detect"]

_ROLES = {"prompter": "user", "assistant": "assistant"}


def detect(obj: dict[str, Any]) -> bool:
    return "message_tree_id" in obj or (isinstance(obj.get("prompt"), dict) and "replies" in obj["prompt"])


def _kept(msg: Any, where: str) -> bool:
    if not isinstance(msg, dict):
        raise RowError(f"{where} is not an object")
    return not msg.get("deleted") and msg.get("review_result") is not False


def _check(msg: dict[str, Any], where: str) -> tuple[str, str, str]:
    role = _ROLES.get(msg.get("role", ""))
    if role is None:
        raise RowError(f"{where} has role {msg.get('role')!r} (expected prompter or assistant)")
    text = msg.get("text")
    if not isinstance(text, str):
        raise RowError(f'{where} has no "text"')
    mid = msg.get("message_id")
    if not isinstance(mid, str) or not mid:
        raise RowError(f'{where} has no "message_id"')
    return role, text, mid


def _votes(msg: dict[str, Any]) -> tuple[int, int, int]:
    emojis = msg.get("emojis") or {}
    if not isinstance(emojis, dict):
        raise RowError(f"message {msg.get('message_id')}: \"emojis\" must be an object")

    def count(key: str) -> int:
        v = emojis.get(key, 0)
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    return count("+1"), count("-1"), count("red_flag")


def _replies(msg: dict[str, Any]) -> list[Any]:
    replies = msg.get("replies") or []
    if not isinstance(replies, list):
        raise RowError(f'message {msg.get("message_id")}: "replies" must be a list')
    return replies


def convert(obj: dict[str, Any], rules: RatingRules) -> Parsed:
    root = obj.get("prompt")
    if not isinstance(root, dict):
        raise RowError('missing "prompt" (the root message of the tree)')
    tree_id = obj.get("message_tree_id") or root.get("message_id")
    out = Parsed()
    if not _kept(root, "the root message"):
        out.unpaired.append("the root prompt is deleted or failed review")
        return out
    role, _, _ = _check(root, "the root message")
    if role != "user":
        raise RowError("the root message must be a prompter message")

    def walk(msg: dict[str, Any], path: list[dict[str, Any]], disliked_before: bool) -> None:
        """Events and pairs for the assistant replies to the prompter message ``msg``, then deeper."""
        _, text, mid = _check(msg, f"message {msg.get('message_id')}")
        here = [*path, {"role": "user", "content": text}]
        answers = [r for r in _replies(msg) if _kept(r, f"a reply of {mid}")]
        for r in answers:
            if _check(r, f"message {r.get('message_id')}")[0] != "assistant":
                raise RowError(f"message {r.get('message_id')}: a prompter message replies to a prompter message")
        ranks = {i: r["rank"] for i, r in enumerate(answers) if isinstance(r.get("rank"), int)
                 and not isinstance(r.get("rank"), bool)}
        best_rank = min(ranks.values()) if len(ranks) >= 2 else None
        first = len(out.events)
        nets: list[int] = []
        for i, r in enumerate(answers):
            _, r_text, r_id = _check(r, f"message {r.get('message_id')}")
            up, down, flags = _votes(r)
            net = up - down
            nets.append(net)
            if net < 0 or flags:
                label = "negative"
            elif net > 0 or (best_rank is not None and ranks.get(i) == best_rank):
                label = "positive"
            else:
                label = "neutral"
            event = Event(
                messages=[*here, {"role": "assistant", "content": r_text}], label=label, rating=float(net),
                rating_kind="votes", trace_id=r_id, model=r.get("model_name"),
                meta={"tree_id": tree_id, "parent_id": mid, "rank": r.get("rank"),
                      "votes": {"+1": up, "-1": down, "red_flag": flags}, "siblings": len(answers),
                      "review_count": r.get("review_count"), "lang": r.get("lang"), "synthetic": r.get("synthetic")},
            )
            if label == "positive" and disliked_before:
                event.sft, event.sft_reason = False, "an earlier assistant turn on this path was voted down"
            out.events.append(event)
        if best_rank is not None:
            b = next(i for i, rank in ranks.items() if rank == best_rank)
            for i, rank in ranks.items():
                if rank > best_rank:
                    out.pairs.append(PairSpec(first + b, first + i, float(rank - best_rank), "rank"))
        elif len(answers) >= 2:
            top = max(nets)
            if top > 0 and nets.count(top) == 1:
                b = nets.index(top)
                out.pairs.extend(PairSpec(first + b, first + i, float(top - n), "votes")
                                 for i, n in enumerate(nets) if n <= 0)
            else:
                out.unpaired.append(f"message {mid}: {len(answers)} unranked replies without a single most-liked one")
        for i, r in enumerate(answers):
            event = out.events[first + i]
            for child in _replies(r):
                if not _kept(child, f"a reply of {r.get('message_id')}"):
                    continue
                if _check(child, f"message {child.get('message_id')}")[0] != "user":
                    raise RowError(f"message {child.get('message_id')}: an assistant message replies to an assistant message")
                walk(child, event.messages, disliked_before or event.label == "negative")

    walk(root, [], False)
    return out

"""What the feedback readers produce, and the rules that turn ratings into labels.

A reader turns one input record into a :class:`Parsed`: rated :class:`Event` objects (one
conversation each, the last message being the model's answer) and, for formats that compare
answers directly (OASST sibling ranks, HH-RLHF pairs), :class:`PairSpec` objects that point at two
of those events.  Nothing here is scrubbed yet: :mod:`curator.feedback.ingest` scrubs every string
before anything is stored.

Labels
------
Every event gets one label: ``positive``, ``negative`` or ``neutral``.

=========  ===================================  ==========================================
kind       values                               default rule
=========  ===================================  ==========================================
rating     numbers, 1-5 stars                   ``>= 4`` positive, ``<= 2`` negative
score      numbers in [0, 1] (or [-1, 1])       ``>= 0.7`` positive, ``<= 0.3`` negative
thumbs     up/down, true/false, 1/0/-1, emoji   up positive, down negative
=========  ===================================  ==========================================

``positive_threshold`` / ``negative_threshold`` replace the defaults of both numeric kinds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from curator.data.readers.shapes import RowError
from curator.errors import CuratorError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "LABELS",
    "Event",
    "PairSpec",
    "Parsed",
    "RatingRules",
    "answer_text",
    "as_messages",
    "get_path",
    "pick",
]

LABELS = ("positive", "negative", "neutral")
#: (positive at or above, negative at or below) for each numeric rating kind.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {"rating": (4.0, 2.0), "score": (0.7, 0.3)}

_UP = frozenset({"up", "thumbs_up", "thumbs-up", "thumbsup", "+1", "👍", "like", "liked", "good", "positive",
                 "yes", "true", "helpful"})
_DOWN = frozenset({"down", "thumbs_down", "thumbs-down", "thumbsdown", "-1", "👎", "dislike", "disliked", "bad",
                   "negative", "no", "false", "unhelpful"})
_ROLE_ALIASES = {"system": "system", "developer": "system", "user": "user", "human": "user", "prompter": "user",
                 "assistant": "assistant", "ai": "assistant", "bot": "assistant", "model": "assistant",
                 "gpt": "assistant"}


@dataclass
class Event:
    """One rated answer: the conversation up to and including it, and how it was rated."""

    messages: list[dict[str, Any]]
    label: str
    rating: float | None = None
    rating_kind: str | None = None
    trace_id: str | None = None
    trace_suffix: str | None = None  # e.g. "chosen" for one of two events made from one record
    model: str | None = None
    event_time: str | None = None
    task: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    sft: bool = True  # may a positive become an SFT example?
    sft_reason: str | None = None  # why not, when ``sft`` is False
    pair_by_prompt: bool = False  # pair with other events that share its prompt (rated logs)


@dataclass
class PairSpec:
    """A preference between two events of the same record: ``chosen`` beats ``rejected``."""

    chosen: int
    rejected: int
    margin: float | None
    basis: str


@dataclass
class Parsed:
    """What one record gave: events, the pairs among them, and why a pair could not be made."""

    events: list[Event] = field(default_factory=list)
    pairs: list[PairSpec] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RatingRules:
    """How ratings become labels and where the fields are (the ``--...`` options of ``feedback ingest``)."""

    positive_threshold: float | None = None
    negative_threshold: float | None = None
    rating_field: str | None = None
    messages_field: str | None = None
    trace_field: str | None = None
    sft_chosen: bool = False

    def __post_init__(self) -> None:
        p, n = self.positive_threshold, self.negative_threshold
        for name, v in (("positive", p), ("negative", n)):
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v)):
                raise CuratorError(f"--{name}-threshold must be a number, got {v!r}")
        if p is not None and n is not None and not p > n:
            raise CuratorError(f"--positive-threshold ({p:g}) must be above --negative-threshold ({n:g})")

    def thresholds(self, kind: str) -> tuple[float, float]:
        """(positive at or above, negative at or below) for a numeric kind; explicit options win."""
        pos, neg = DEFAULT_THRESHOLDS[kind]
        if self.positive_threshold is not None:
            pos = self.positive_threshold
        if self.negative_threshold is not None:
            neg = self.negative_threshold
        if pos <= neg:  # one option was given and it crosses the other default: that side is off
            if self.positive_threshold is None:
                pos = math.inf
            else:
                neg = -math.inf
        return pos, neg

    def label(self, value: Any, kind: str, what: str) -> tuple[float, str, str]:
        """(numeric rating, label, kind) of one raw rating value; ``what`` names it in errors.

        ``kind`` is ``rating``, ``score``, ``thumbs`` or ``auto`` (numbers in [-1, 1] are scores,
        larger numbers ratings, words and booleans thumbs).
        """
        if isinstance(value, bool) or (isinstance(value, str) and _number(value) is None):
            return _thumbs(value, what)
        number = _number(value)
        if number is None:
            raise RowError(f'{what} must be a number or up/down, got {type(value).__name__}')
        if kind == "thumbs":
            if number > 0:
                return 1.0, "positive", "thumbs"
            return 0.0, "negative", "thumbs"
        if kind == "auto":
            kind = "score" if -1 <= number <= 1 else "rating"
        pos, neg = self.thresholds(kind)
        label = "positive" if number >= pos else "negative" if number <= neg else "neutral"
        return number, label, kind


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _thumbs(value: Any, what: str) -> tuple[float, str, str]:
    if isinstance(value, bool):
        return (1.0, "positive", "thumbs") if value else (0.0, "negative", "thumbs")
    word = str(value).strip().casefold()
    if word in _UP:
        return 1.0, "positive", "thumbs"
    if word in _DOWN:
        return 0.0, "negative", "thumbs"
    raise RowError(f"{what} {value!r} is not a rating (expected a number, up/down or true/false)")


def get_path(obj: Any, path: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; None when a part is missing (a key with a dot is tried whole first)."""
    if isinstance(obj, dict) and path in obj:
        return obj[path]
    cur = obj
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def pick(obj: dict[str, Any], names: Sequence[str]) -> tuple[str | None, Any]:
    """The first of ``names`` (dotted paths) present and not null in ``obj``: (name, value)."""
    for name in names:
        value = get_path(obj, name)
        if value is not None:
            return name, value
    return None, None


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI / Anthropic content parts
        texts: list[Any] = [p.get("text") if isinstance(p, dict) else p for p in value]
        if all(isinstance(t, str) for t in texts):
            return "\n".join(texts)
    if value is None:
        raise RowError(f"{where} has no text content")
    raise RowError(f"{where} content must be a string or a list of text parts, got {type(value).__name__}")


def as_messages(value: Any, what: str = '"messages"') -> list[dict[str, Any]]:
    """A list of chat messages with roles mapped (human -> user, ai -> assistant, ...) and text content."""
    if not isinstance(value, list):
        raise RowError(f"{what} must be a list of messages, got {type(value).__name__}")
    if not value:
        raise RowError(f"{what} is empty")
    out = []
    for i, m in enumerate(value, 1):
        if not isinstance(m, dict):
            raise RowError(f"{what}: message {i} is not an object")
        role = m.get("role", m.get("type", m.get("from")))
        if role is None:
            raise RowError(f'{what}: message {i} has no "role"')
        mapped = _ROLE_ALIASES.get(str(role).casefold())
        if mapped is None:
            raise RowError(f"{what}: message {i} has unknown role {role!r} (expected system, user or assistant)")
        key = "content" if "content" in m else "text" if "text" in m else "value" if "value" in m else "content"
        out.append({"role": mapped, "content": _content(m.get(key), f"{what}: message {i} ({mapped})")})
    return out


def answer_text(messages: list[dict[str, Any]], what: str = "the conversation") -> str:
    """The final assistant answer; a :class:`RowError` when the conversation does not end with one."""
    if messages[-1]["role"] != "assistant":
        raise RowError(f"{what} must end with the assistant's answer (the last message is {messages[-1]['role']!r})")
    if not any(m["role"] == "user" for m in messages[:-1]):
        raise RowError(f"{what} has no user message before the answer")
    if not messages[-1]["content"].strip():
        raise RowError(f"{what}: the assistant's answer is empty")
    return messages[-1]["content"]

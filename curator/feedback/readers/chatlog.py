"""Chat logs: one rated conversation per line.

``{"trace_id": "tr-1", "timestamp": "...", "model": "m", "messages": [..., {"role": "assistant", ...}],
"rating": 5}``; the last assistant turn is the model's answer (turns after it are dropped).  The rating is the first present of
``rating`` (1-5), ``score`` (0-1), ``thumbs`` (up/down), or the same names under ``feedback``;
``--rating-field`` names another one.
"""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import RowError
from curator.feedback.events import Event, Parsed, RatingRules, answer_text, as_messages, get_path, pick

NAME = "chat"
__all__ = ["NAME", "RATING_FIELDS", "convert", "detect", "rating_of"]

#: Where a rating is looked for, in order, and the kind of each.
RATING_FIELDS: tuple[tuple[str, str], ...] = (
    ("rating", "rating"), ("score", "score"), ("thumbs", "thumbs"),
    ("feedback.rating", "rating"), ("feedback.score", "score"), ("feedback.thumbs", "thumbs"),
)
TRACE_FIELDS = ("trace_id", "traceId", "id", "request_id")
TIME_FIELDS = ("timestamp", "event_time", "created_at", "time")


def detect(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("messages"), list)


def _kind_of(field: str) -> str:
    """The rating kind of a field named by ``--rating-field``: by its name, else 1-5 stars."""
    last = field.rsplit(".", 1)[-1].casefold()
    if "thumb" in last or "vote" in last or "like" in last:
        return "thumbs"
    if last.endswith("score"):
        return "score"
    return "rating"


def rating_of(obj: dict[str, Any], rules: RatingRules) -> tuple[float, str, str, str]:
    """(rating, label, kind, field) of a record; a :class:`RowError` when it has none."""
    if rules.rating_field:
        value = get_path(obj, rules.rating_field)
        if value is None:
            raise RowError(f'no rating: field "{rules.rating_field}" (--rating-field) is missing or null')
        return (*rules.label(value, _kind_of(rules.rating_field), f'"{rules.rating_field}"'), rules.rating_field)
    for name, kind in RATING_FIELDS:
        value = get_path(obj, name)
        if value is not None:
            return (*rules.label(value, kind, f'"{name}"'), name)
    raise RowError("no rating: expected one of rating (1-5), score (0-1) or thumbs (up/down); "
                   "name another field with --rating-field")


def convert(obj: dict[str, Any], rules: RatingRules) -> Parsed:
    field = rules.messages_field or "messages"
    raw = get_path(obj, field)
    if raw is None:
        raise RowError(f'missing "{field}"' + ("" if rules.messages_field else " (name the field with --messages-field)"))
    messages = as_messages(raw, f'"{field}"')
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last < 0:
        raise RowError(f'"{field}" has no assistant message (the model\'s answer)')
    dropped = len(messages) - 1 - last  # turns after the answer (a follow-up the log caught) are not part of it
    messages = messages[: last + 1]
    answer_text(messages)
    rating, label, kind, rating_field = rating_of(obj, rules)
    trace_name, trace = pick(obj, (rules.trace_field,) if rules.trace_field else TRACE_FIELDS)
    if rules.trace_field and trace is None:
        raise RowError(f'missing "{rules.trace_field}" (--trace-field)')
    time_name, when = pick(obj, TIME_FIELDS)
    model = obj.get("model")
    task = obj.get("task")
    skip = {field.split(".")[0], "model", "task", trace_name, time_name}
    meta = {k: v for k, v in obj.items() if k not in skip and isinstance(v, str | int | float | bool)}
    meta["rating_field"] = rating_field
    if dropped:
        meta["turns_after_answer_dropped"] = dropped
    return Parsed(events=[Event(
        messages=messages, label=label, rating=rating, rating_kind=kind,
        trace_id=None if trace is None else str(trace), model=None if model is None else str(model),
        event_time=None if when is None else str(when), task=task if isinstance(task, str) else None,
        meta=meta, pair_by_prompt=True,
    )])

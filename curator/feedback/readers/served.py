"""Rated traces of ``curator serve`` (the batch files :func:`curator.feedback.tracelog.ingest_traces` writes).

``{"object": "curator.trace", "id": "chatcmpl-...", "created_at": "...", "model": "triage", "run_id": "r-...",
"messages": [..., {"role": "assistant", "content": "the served answer"}], "rating": 1-5 | null,
"thumbs": "up" | "down" | null, "comment": null, "correction": "the answer the user wanted" | null}``

One event for the served answer, labelled by its rating (1-5 stars) or else its thumbs.  A correction
adds a positive event (the same prompt answered with the correction, trace id ``<id>:correction``) and
the preference pair correction > served answer.  Served answers also pair by prompt, like a rated chat log.
"""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import RowError
from curator.feedback.events import Event, PairSpec, Parsed, RatingRules, answer_text, as_messages

NAME = "serve"
__all__ = ["NAME", "convert", "detect"]


def detect(obj: dict[str, Any]) -> bool:
    return obj.get("object") == "curator.trace"


def convert(obj: dict[str, Any], rules: RatingRules) -> Parsed:
    messages = as_messages(obj.get("messages"), '"messages"')
    if messages[-1]["role"] != "assistant":
        raise RowError('"messages" must end with the served answer (an assistant message)')
    answer_text(messages)
    if obj.get("rating") is not None:
        rating, label, kind = rules.label(obj["rating"], "rating", '"rating"')
    elif obj.get("thumbs") is not None:
        rating, label, kind = rules.label(obj["thumbs"], "thumbs", '"thumbs"')
    else:
        raise RowError('no rating: expected "rating" (1-5) or "thumbs" (up/down)')
    trace = str(obj["id"]) if obj.get("id") is not None else None
    meta = {k: obj[k] for k in ("run_id", "adapter", "ab_arm", "comment") if obj.get(k) is not None}
    when = None if obj.get("created_at") is None else str(obj["created_at"])
    model = None if obj.get("model") is None else str(obj["model"])
    served = Event(messages=messages, label=label, rating=rating, rating_kind=kind, trace_id=trace, model=model,
                   event_time=when, meta=meta, pair_by_prompt=True)
    parsed = Parsed(events=[served])
    correction = obj.get("correction")
    if isinstance(correction, str) and correction.strip():
        fixed = [*messages[:-1], {"role": "assistant", "content": correction}]
        parsed.events.append(Event(
            messages=fixed, label="positive", rating=None, rating_kind="correction", trace_id=trace,
            trace_suffix="correction", model=model, event_time=when, meta={**meta, "corrects": trace},
        ))
        if correction.strip() != messages[-1]["content"].strip():
            parsed.pairs.append(PairSpec(chosen=1, rejected=0, margin=None, basis="correction"))
        else:
            parsed.unpaired.append("the correction is the served answer")
    return parsed

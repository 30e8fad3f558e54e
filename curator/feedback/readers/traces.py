"""Trace exports shaped like Langfuse or LangSmith: an ``input``, an ``output`` and scores.

* Langfuse trace: ``{"id", "timestamp", "input", "output", "scores": [{"name", "value"}], "metadata"}``
* LangSmith run: ``{"id", "start_time", "inputs": {"messages": [...]}, "outputs": {...},
  "feedback": [{"key", "score"}]}`` or ``"feedback_stats": {key: {"avg": x}}``

``input`` may be a string, a list of messages or an object holding ``messages`` (or ``input``,
``question``, ``prompt``, ``query``); ``output`` a string, a message, an OpenAI completion
(``choices``), LangChain ``generations``, or an object holding ``output``/``answer``/``content``.
The score used is the one named by ``--rating-field``, else the only one, else the first whose name
says it is user feedback (``user-feedback``, ``thumbs``, ``rating``, ``score``, ...).
"""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import RowError
from curator.feedback.events import Event, Parsed, RatingRules, answer_text, as_messages, get_path, pick

NAME = "trace"
__all__ = ["NAME", "convert", "detect"]

PREFERRED_SCORES = ("user-feedback", "user_feedback", "feedback", "thumbs", "user_score", "user-score",
                    "rating", "score", "helpfulness", "quality")
TRACE_FIELDS = ("id", "trace_id", "traceId", "run_id")
TIME_FIELDS = ("timestamp", "start_time", "startTime", "created_at")
MODEL_FIELDS = ("model", "metadata.model", "metadata.ls_model_name", "extra.metadata.ls_model_name",
                "extra.invocation_params.model", "extra.invocation_params.model_name")
_PROMPT_KEYS = ("input", "question", "prompt", "query", "text")
_ANSWER_KEYS = ("output", "answer", "content", "text", "completion", "response", "result")


def detect(obj: dict[str, Any]) -> bool:
    return ("input" in obj or "inputs" in obj) and ("output" in obj or "outputs" in obj)


def _prompt(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        if not value.strip():
            raise RowError('"input" is empty')
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return as_messages(value, '"input"')
    if isinstance(value, dict):
        if "messages" in value:
            msgs = value["messages"]
            if isinstance(msgs, list) and msgs and isinstance(msgs[0], list):  # LangChain batches: [[...]]
                msgs = msgs[0]
            return as_messages(msgs, '"input.messages"')
        for key in _PROMPT_KEYS:
            if isinstance(value.get(key), str | list | dict):
                return _prompt(value[key])
    raise RowError('cannot find the prompt in "input": expected a string, a list of messages, '
                   'or an object with "messages" or "input"')


def _answer(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        last = value[-1]
        if isinstance(last, list):  # generations: [[{...}]]
            return _answer(last[0] if last else None)
        return _answer(last)
    if isinstance(value, dict):
        if ("role" in value or "type" in value) and "content" in value:
            return as_messages([value], '"output"')[0]["content"]
        if isinstance(value.get("choices"), list) and value["choices"]:
            choice = value["choices"][0]
            if isinstance(choice, dict):
                return _answer(choice.get("message") or choice.get("text"))
        if isinstance(value.get("generations"), list):
            return _answer(value["generations"])
        if isinstance(value.get("message"), dict):
            return _answer(value["message"])
        if isinstance(value.get("messages"), list):
            return _answer(value["messages"])
        for key in _ANSWER_KEYS:
            if key in value and value[key] is not None:
                return _answer(value[key])
    raise RowError('cannot find the answer in "output": expected a string, a message, "choices", '
                   '"generations" or an object with "output"')


def _scores(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, value) of every score / feedback entry of a trace."""
    out: list[tuple[str, Any]] = []
    for key in ("scores", "feedback"):
        entries = obj.get(key)
        if isinstance(entries, dict):
            entries = [{"name": k, "value": v} for k, v in entries.items()]
        if not isinstance(entries, list):
            continue
        for e in entries:
            if not isinstance(e, dict):
                continue
            name = str(e.get("name", e.get("key", key)))
            _, value = pick(e, ("value", "score", "stringValue", "string_value"))
            if isinstance(value, dict):
                continue
            if value is not None:
                out.append((name, value))
    stats = obj.get("feedback_stats")
    if isinstance(stats, dict):
        for name, s in stats.items():
            value = s.get("avg") if isinstance(s, dict) else s
            if value is not None:
                out.append((str(name), value))
    return out


def _kind(name: str) -> str:
    n = name.casefold()
    if "thumb" in n or "vote" in n or "like" in n:
        return "thumbs"
    if "rating" in n or "star" in n:
        return "rating"
    return "auto"


def _rating(obj: dict[str, Any], rules: RatingRules) -> tuple[float, str, str, str]:
    scores = _scores(obj)
    if rules.rating_field:
        for name, value in scores:
            if name == rules.rating_field:
                return (*rules.label(value, _kind(name), f'score "{name}"'), name)
        value = get_path(obj, rules.rating_field)
        if value is None:
            raise RowError(f'no score named "{rules.rating_field}" (--rating-field)')
        return (*rules.label(value, _kind(rules.rating_field), f'"{rules.rating_field}"'), rules.rating_field)
    if not scores:
        raise RowError('no rating: the trace has no "scores" or "feedback"')
    chosen = scores[0]
    if len(scores) > 1:
        by_name = {n.casefold(): (n, v) for n, v in reversed(scores)}
        chosen = next((by_name[p] for p in PREFERRED_SCORES if p in by_name), scores[0])
    name, value = chosen
    return (*rules.label(value, _kind(name), f'score "{name}"'), name)


def convert(obj: dict[str, Any], rules: RatingRules) -> Parsed:
    prompt = _prompt(obj.get("input", obj.get("inputs")))
    if prompt[-1]["role"] == "assistant":
        raise RowError('"input" ends with an assistant turn; the answer belongs in "output"')
    messages = [*prompt, {"role": "assistant", "content": _answer(obj.get("output", obj.get("outputs")))}]
    answer_text(messages, "the trace")
    rating, label, kind, score_name = _rating(obj, rules)
    _, trace = pick(obj, (rules.trace_field,) if rules.trace_field else TRACE_FIELDS)
    if rules.trace_field and trace is None:
        raise RowError(f'missing "{rules.trace_field}" (--trace-field)')
    _, when = pick(obj, TIME_FIELDS)
    _, model = pick(obj, MODEL_FIELDS)
    meta: dict[str, Any] = {"rating_field": score_name}
    for key in ("name", "userId", "sessionId", "session_id", "run_type", "tags"):
        if obj.get(key) is not None:
            meta[key] = obj[key]
    comments = [e.get("comment") for k in ("scores", "feedback") if isinstance(obj.get(k), list)
                for e in obj[k] if isinstance(e, dict) and isinstance(e.get("comment"), str)]
    if comments:
        meta["comments"] = comments
    return Parsed(events=[Event(
        messages=messages, label=label, rating=rating, rating_kind=kind,
        trace_id=None if trace is None else str(trace), model=None if model is None else str(model),
        event_time=None if when is None else str(when), meta=meta, pair_by_prompt=True,
    )])

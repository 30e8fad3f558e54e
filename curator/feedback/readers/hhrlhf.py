"""Preference pairs: Anthropic HH-RLHF transcripts, or explicit ``prompt``/``chosen``/``rejected`` records.

* HH-RLHF: ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": "..."}``; the transcripts
  are split on ``\\n\\nHuman:`` / ``\\n\\nAssistant:``; the prompt is every turn before the final
  assistant reply, and must be the same on both sides.
* Explicit pairs (UltraFeedback / TRL style): ``prompt`` a string or a list of messages, ``chosen``
  and ``rejected`` a string answer or a list of messages (the full conversation, or the answer alone).
* OpenAI preference fine-tuning records: ``{"input": {"messages": [...]}, "preferred_output": [...],
  "non_preferred_output": [...]}``, read as ``prompt`` / ``chosen`` / ``rejected``.

Each record gives two events (the chosen answer ``positive``, the rejected one ``negative``) and one
pair.  The chosen side is *not* an SFT example unless ``--sft-chosen``: harmlessness data is not
in-domain for a fine-tune.  A record that parses but cannot be a usable pair (the two prompts
differ, an answer is empty, both answers are the same) keeps its events and is reported as unpaired.
"""

from __future__ import annotations

import re
from typing import Any

from curator.data.readers.shapes import RowError
from curator.feedback.events import Event, PairSpec, Parsed, RatingRules, as_messages

NAME = "hh-rlhf"
__all__ = ["NAME", "convert", "detect", "parse_transcript"]

_TURN = re.compile(r"\n\n(Human|Assistant):[ \t]?")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def detect(obj: dict[str, Any]) -> bool:
    return ("chosen" in obj and "rejected" in obj) or ("preferred_output" in obj and "non_preferred_output" in obj)


def _from_openai(obj: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI preference record as an explicit pair record (other keys kept)."""
    inp = obj.get("input")
    if not isinstance(inp, dict) or "messages" not in inp:
        raise RowError('"input" must be an object with "messages"')
    if "non_preferred_output" not in obj:
        raise RowError('missing "non_preferred_output"')
    rest = {k: v for k, v in obj.items() if k not in ("input", "preferred_output", "non_preferred_output")}
    return {**rest, "prompt": inp["messages"], "chosen": obj["preferred_output"],
            "rejected": obj["non_preferred_output"]}


def parse_transcript(text: str, what: str) -> list[dict[str, Any]]:
    """``"\\n\\nHuman: a\\n\\nAssistant: b"`` -> [user a, assistant b] (contents stripped)."""
    if not text.startswith("\n\n"):
        text = "\n\n" + text.lstrip("\n")
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise RowError(f'{what} is not a "Human: ... Assistant: ..." transcript')
    return [{"role": _ROLE[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]


def _side(obj: dict[str, Any], key: str, prompt: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    value = obj[key]
    if isinstance(value, str):
        if prompt is not None:
            return [*prompt, {"role": "assistant", "content": value}]
        return parse_transcript(value, f'"{key}"')
    if isinstance(value, list):
        msgs = as_messages(value, f'"{key}"')
        if prompt is not None and msgs[: len(prompt)] != prompt:
            msgs = [*prompt, *msgs]
        return msgs
    if isinstance(value, dict):
        return _side({key: [value]}, key, prompt)
    raise RowError(f'"{key}" must be a transcript string or a list of messages, got {type(value).__name__}')


def convert(obj: dict[str, Any], rules: RatingRules) -> Parsed:
    if "preferred_output" in obj and "chosen" not in obj:
        obj = _from_openai(obj)
    prompt = None
    if obj.get("prompt") is not None:
        raw = obj["prompt"]
        prompt = [{"role": "user", "content": raw}] if isinstance(raw, str) else as_messages(raw, '"prompt"')
    chosen, rejected = _side(obj, "chosen", prompt), _side(obj, "rejected", prompt)
    for msgs, key in ((chosen, "chosen"), (rejected, "rejected")):
        if msgs[-1]["role"] != "assistant":
            raise RowError(f'"{key}" must end with an assistant reply')
        if not any(m["role"] == "user" for m in msgs[:-1]):
            raise RowError(f'"{key}" has no user turn before the final reply')
    meta = {k: v for k, v in obj.items() if k not in ("chosen", "rejected", "prompt") and isinstance(v, str | int | float | bool)}
    out = Parsed(events=[
        Event(messages=chosen, label="positive", rating=1.0, rating_kind="preference", trace_suffix="chosen",
              meta={**meta, "side": "chosen"}, sft=rules.sft_chosen,
              sft_reason=None if rules.sft_chosen else "chosen side of a preference pair (pass --sft-chosen to keep it)"),
        Event(messages=rejected, label="negative", rating=0.0, rating_kind="preference", trace_suffix="rejected",
              meta={**meta, "side": "rejected"}),
    ])
    if chosen[:-1] != rejected[:-1]:
        out.unpaired.append("chosen and rejected do not share the same prompt turns")
    elif not chosen[-1]["content"].strip() or not rejected[-1]["content"].strip():
        out.unpaired.append(f"the {'chosen' if not chosen[-1]['content'].strip() else 'rejected'} reply is empty")
    elif chosen[-1]["content"].strip() == rejected[-1]["content"].strip():
        out.unpaired.append("chosen and rejected replies are the same")
    else:
        out.pairs.append(PairSpec(0, 1, 1.0, "preference"))
    return out

"""Training data from a snapshot: completion-only SFT sequences and DPO preference records.

SFT: every example becomes one sequence, rendered with :func:`curator.models.render_chat` (the
template generation and evaluation use).  The prompt is every message before the *last*
assistant turn, rendered with ``add_generation_prompt=True``; the completion is that last answer.
Labels are ``-100`` on the prompt, and the loss covers exactly the answer tokens plus the one
end-of-turn token after them (``<|im_end|>`` for SmolLM2); whatever the template puts after it
(ChatML's newline) is cut off.  Earlier assistant turns of a multi-turn example are context, not
targets.  We tokenize ourselves instead of TRL's ``assistant_only_loss`` because the SmolLM2
template has no ``{% generation %}`` markers.

Tool calling: an example that calls tools (or holds a tool's answer) is rendered with its
``tools`` list (``meta["tools"]``) when the base model's chat template supports tools
(:func:`curator.models.supports_tools`); a last answer that calls tools is learnt as the template
writes the calls.  A template without tool support cannot render them, so those examples are left
out of training and counted (``excluded_tool_calls`` in the data stats, one log line in the run).

DPO: ``{"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message]}``
(TRL's conversational preference format; TRL renders it with the same tokenizer template).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, SnapshotError
from curator.models import prompt_messages, render_chat, supports_tools
from curator.records import uses_tools

__all__ = [
    "SFTSequence",
    "dpo_record",
    "load_preference_pairs",
    "pairs_digest",
    "sft_dataset",
    "tokenize_sft",
]

SFTSequence = dict[str, list[int]]


def tokenize_sft(tokenizer: Any, messages: list[dict[str, Any]], max_length: int | None = None,
                 tools: list[Any] | None = None) -> SFTSequence | None:
    """``{"input_ids", "labels"}`` for one conversation; None when nothing of the answer fits ``max_length``.

    Truncation keeps the start (the prompt and the beginning of the answer), as TRL does.  ``tools``
    (function schemas) go to the chat template.
    """
    prompt = prompt_messages(messages)
    if len(prompt) == len(messages) or not prompt:
        return None  # no assistant answer to learn, or nothing to answer
    answer = messages[len(prompt)]
    convo = [*prompt, answer]  # anything after the last assistant turn cannot exist; keep exactly this
    prompt_text = render_chat(tokenizer, prompt, add_generation_prompt=True, tools=tools)
    full_text = render_chat(tokenizer, convo, tools=tools)
    if not full_text.startswith(prompt_text):
        raise CuratorError(
            "the chat template renders the prompt differently alone and before its answer; "
            "completion-only training needs a template where the prompt is a prefix"
        )
    enc = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in enc["offset_mapping"]]
    p_end = len(prompt_text)
    content = answer["content"]
    if answer.get("tool_calls"):
        # The calls are written by the template after any content: the answer ends where its end of turn starts.
        tail = full_text.rstrip()
        eos = tokenizer.eos_token or ""
        c_end = len(tail) - len(eos) if eos and tail.endswith(eos) else len(tail)
    else:
        c_pos = full_text.find(content, p_end) if content else -1
        c_end = c_pos + len(content) if c_pos >= 0 else len(full_text)
    n_prompt = sum(1 for _, end in offsets if end <= p_end)
    n_answer = sum(1 for start, _ in offsets[n_prompt:] if start < c_end)
    keep = min(len(ids), n_prompt + n_answer + 1)  # the answer plus its end-of-turn token
    ids = ids[:keep]
    labels = [-100] * n_prompt + ids[n_prompt:]
    if max_length is not None and len(ids) > max_length:
        ids, labels = ids[:max_length], labels[:max_length]
    if all(x == -100 for x in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def sft_dataset(tokenizer: Any, rows: Iterable[dict[str, Any]], max_length: int) -> tuple[Any, dict[str, int]]:
    """A ``datasets.Dataset`` of tokenized sequences, and counts (examples, truncated, dropped, tokens,
    ``excluded_tool_calls``: examples with tool calls left out because the chat template cannot render them)."""
    from datasets import Dataset

    seqs: list[SFTSequence] = []
    stats = {"examples": 0, "truncated": 0, "dropped": 0, "tokens": 0, "target_tokens": 0, "excluded_tool_calls": 0}
    tool_ok = supports_tools(tokenizer)
    for r in rows:
        stats["examples"] += 1
        meta = r.get("meta")
        tools = meta.get("tools") if isinstance(meta, dict) else None
        if uses_tools(r["messages"]) and not tool_ok:
            stats["excluded_tool_calls"] += 1
            continue
        seq = tokenize_sft(tokenizer, r["messages"], None, tools=tools if tool_ok else None)
        if seq is None:
            stats["dropped"] += 1
            continue
        if len(seq["input_ids"]) > max_length:
            stats["truncated"] += 1
            seq = {"input_ids": seq["input_ids"][:max_length], "labels": seq["labels"][:max_length]}
            if all(x == -100 for x in seq["labels"]):
                stats["dropped"] += 1
                continue
        stats["tokens"] += len(seq["input_ids"])
        stats["target_tokens"] += sum(1 for x in seq["labels"] if x != -100)
        seqs.append(seq)
    ds = Dataset.from_list(seqs) if seqs else Dataset.from_dict({"input_ids": [], "labels": []})
    return ds, stats


def _as_messages(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, dict):
        return [{"role": value.get("role", role), "content": value["content"]}]
    if isinstance(value, list):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise CuratorError(f"preference pair: cannot read {role} value {value!r}")


def dpo_record(pair: dict[str, Any]) -> dict[str, Any]:
    """One pair as TRL's conversational preference record.

    ``prompt`` may be a message list or a string (a user turn); ``chosen`` / ``rejected`` may be strings
    or assistant message lists.
    """
    prompt = _as_messages(pair["prompt"], "user")
    if prompt and prompt[-1]["role"] == "assistant":
        raise CuratorError("preference pair: the prompt ends with an assistant turn")
    chosen = _as_messages(pair["chosen"], "assistant")[-1:]
    rejected = _as_messages(pair["rejected"], "assistant")[-1:]
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def pairs_digest(pairs: Sequence[Any]) -> str:
    """A content hash of preference pairs (part of a DPO run's fingerprint when pairs are passed in)."""
    return hashlib.sha256(json.dumps(pairs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_preference_pairs(ws: Any, snapshot_id: str, split: str) -> list[dict[str, Any]]:
    """The snapshot's preference pairs of one split, through ``export_snapshot(ws, id, "dpo", out)``."""
    from curator import snapshots

    if "dpo" not in getattr(snapshots, "EXPORT_FORMATS", ()):
        raise SnapshotError(
            "this snapshot format has no preference pairs yet (export_snapshot(..., 'dpo') is not available); "
            "pass pairs= to trainer.train() or build pairs with `curator feedback ingest` and a new snapshot"
        )
    with tempfile.TemporaryDirectory(prefix="curator-dpo-") as tmp:
        try:
            snapshots.export_snapshot(ws, snapshot_id, "dpo", tmp, split=split)
        except SnapshotError:
            raise
        path = Path(tmp) / f"{split}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

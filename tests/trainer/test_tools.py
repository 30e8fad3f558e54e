"""Tool-calling examples in training: rendered by a template that supports tools, left out (and said so) otherwise.

SmolLM2's ChatML template (also the tiny test model's) has no tool support; a tool-capable template is
built here by setting ``chat_template`` to a small Jinja template that renders ``tools`` and ``tool_calls``.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import TOOLS, tool_chat, write_jsonl
from trainer_helpers import qa, tiny_overrides

from curator.models import load_tokenizer, render_chat, supports_tools
from curator.records import normalize_messages
from trainer import get_run, train
from trainer.data import sft_dataset, tokenize_sft

#: ChatML with a tools line in front and each call as ``<tool_call>{"name", "arguments"}</tool_call>``.
TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nTools: {% for t in tools %}{{ t.function.name }}"
    "{{ ', ' if not loop.last }}{% endfor %}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content %}{{ m.content }}{% endif %}"
    "{%- if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ {'name': c.function.name, "
    "'arguments': c.function.arguments} | tojson }}</tool_call>{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tok() -> Any:
    return load_tokenizer("local:smollm2-135m-instruct")


@pytest.fixture(scope="module")
def tool_tok(tok: Any) -> Any:
    t = copy.deepcopy(tok)
    t.chat_template = TOOL_TEMPLATE
    return t


def _row(i: int, final: bool) -> dict[str, Any]:
    rec = tool_chat(i, final=final)
    return {"id": str(i), "messages": normalize_messages(rec["messages"]), "meta": {"tools": rec["tools"]}}


def _trained(tok: Any, seq: dict[str, list[int]]) -> str:
    return str(tok.decode([t for t, lab in zip(seq["input_ids"], seq["labels"], strict=True) if lab != -100]))


def test_smollm2_has_no_tool_support_and_the_examples_are_counted_out(tok: Any) -> None:
    assert not supports_tools(tok)
    plain = {"id": "p", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
    ds, stats = sft_dataset(tok, [_row(0, True), _row(1, False), plain], 128)
    assert len(ds) == 1 and stats["examples"] == 3 and stats["excluded_tool_calls"] == 2 and stats["dropped"] == 0


def test_a_tool_template_renders_tools_and_learns_the_call(tool_tok: Any) -> None:
    assert supports_tools(tool_tok)
    call = _row(1, final=False)
    seq = tokenize_sft(tool_tok, call["messages"], tools=TOOLS)
    assert seq is not None
    # the target is the call as the template writes it (arguments decoded to an object), and the end of turn
    assert _trained(tool_tok, seq) == '<tool_call>{"name": "get_order", "arguments": {"order_id": "A101"}}</tool_call><|im_end|>'
    text = tool_tok.decode(seq["input_ids"])
    assert text.startswith("<|im_start|>system\nTools: get_order, refund<|im_end|>")
    assert "Where is my order A101?\nTicket 1." in text  # text parts joined with a newline
    # a final answer after the tool's reply: the call and the tool message are context, the answer the target
    full = _row(2, final=True)
    seq = tokenize_sft(tool_tok, full["messages"], tools=TOOLS)
    assert seq is not None and _trained(tool_tok, seq) == "Order A102 has shipped.<|im_end|>"
    prompt = render_chat(tool_tok, full["messages"][:-1], add_generation_prompt=True, tools=TOOLS)
    assert '<tool_call>{"name": "get_order"' in prompt and "<|im_start|>tool\n" in prompt
    ds, stats = sft_dataset(tool_tok, [_row(0, True), _row(1, False)], 256)
    assert len(ds) == 2 and stats["excluded_tool_calls"] == 0


def _snapshot(ws: Any, tmp: Path) -> str:
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot

    train = [tool_chat(i, final=i % 2 == 0) for i in range(4)] + [qa(i, "disk") for i in range(4)]
    ingest_file(ws, write_jsonl(tmp / "train.jsonl", train), split="train", task="t")
    ingest_file(ws, write_jsonl(tmp / "eval.jsonl", [qa(100 + i, "dns") for i in range(2)] + [tool_chat(50)]),
                split="eval", task="t")
    return create_snapshot(ws).id


@pytest.mark.parametrize("template", ["chatml", "tools"])
def test_training_on_tool_calls_says_what_it_left_out(ws: Any, tmp_path: Path, tiny_model_dir: Path,
                                                      template: str) -> None:
    model_dir = tiny_model_dir
    if template == "tools":  # the tiny model with a tool-capable template saved beside it
        model_dir = tmp_path / "tiny-tools"
        shutil.copytree(tiny_model_dir, model_dir)
        t = load_tokenizer(str(model_dir))
        t.chat_template = TOOL_TEMPLATE
        t.save_pretrained(str(model_dir))
    sid = _snapshot(ws, tmp_path)
    logs: list[str] = []
    run = train(ws, sid, overrides=tiny_overrides(model_dir, max_seq_length=256), progress=False, log=logs.append)
    data = get_run(ws, run.id).metrics["data"]
    said = [m for m in logs if "with tool calls" in m]
    if template == "chatml":
        assert (data["train"]["excluded_tool_calls"], data["eval"]["excluded_tool_calls"]) == (4, 1)
        assert data["train"]["examples"] - data["train"]["excluded_tool_calls"] == 4
        assert said == [f"left out 4 train and 1 eval examples with tool calls: the chat template of {model_dir} "
                        "cannot render tool calls (it never mentions tool_calls); train on a base model whose "
                        "template supports tools to learn them"]
    else:
        assert (data["train"]["excluded_tool_calls"], data["eval"]["excluded_tool_calls"]) == (0, 0)
        assert data["train"]["examples"] == 8 and not said
    assert run.status == "succeeded"
    print(f"\n{template}: {data['train']}; " + (said[0] if said else "no example left out"))

"""trainer.data: completion-only labels, and the training template is the generation template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curator.models import load_tokenizer, prompt_messages, render_chat
from trainer.data import dpo_record, sft_dataset, tokenize_sft

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = [json.loads(line) for line in (ROOT / "seeds/support/seeds.jsonl").read_text().splitlines()[:3]]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("local:smollm2-135m-instruct")


def _trained(tok, seq) -> list[int]:
    return [i for i, lab in zip(seq["input_ids"], seq["labels"], strict=True) if lab != -100]


def test_labels_cover_exactly_the_answer_and_its_end_of_turn_token(tok) -> None:
    for ex in SUPPORT:
        msgs = ex["messages"]
        seq = tokenize_sft(tok, msgs)
        answer_ids = tok(msgs[-1]["content"], add_special_tokens=False)["input_ids"]
        end = tok.convert_tokens_to_ids("<|im_end|>")
        assert _trained(tok, seq) == answer_ids + [end]
        # every label is either -100 or the token itself, and the masked part is a prefix
        n_masked = seq["labels"].index(next(x for x in seq["labels"] if x != -100))
        assert all(x == -100 for x in seq["labels"][:n_masked])
        assert seq["labels"][n_masked:] == seq["input_ids"][n_masked:]
        assert seq["input_ids"][-1] == end  # nothing after the end-of-turn token


def test_training_and_generation_render_the_same_text(tok) -> None:
    msgs = SUPPORT[0]["messages"]
    seq = tokenize_sft(tok, msgs)
    # the whole sequence is the template's rendering of the conversation (minus ChatML's trailing newline)
    assert tok.decode(seq["input_ids"]) == render_chat(tok, msgs).removesuffix("\n")
    # the masked prompt is token for token what generate() feeds the model
    prompt = render_chat(tok, prompt_messages(msgs), add_generation_prompt=True)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    n_prompt = sum(1 for x in seq["labels"] if x == -100)
    assert seq["input_ids"][:n_prompt] == prompt_ids


def test_without_a_system_prompt_the_default_one_is_used_in_both(tok) -> None:
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]
    seq = tokenize_sft(tok, msgs)
    prompt = render_chat(tok, msgs[:1], add_generation_prompt=True)
    assert "You are a helpful AI assistant named SmolLM" in prompt
    assert tok.decode(seq["input_ids"]).startswith(prompt)


def test_multi_turn_trains_the_last_answer_only(tok) -> None:
    msgs = [
        {"role": "user", "content": "First question?"}, {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question?"}, {"role": "assistant", "content": "Second answer."},
    ]
    seq = tokenize_sft(tok, msgs)
    assert tok.decode(_trained(tok, seq)) == "Second answer.<|im_end|>"
    assert "First answer." in tok.decode(seq["input_ids"])  # earlier turns are context


def test_examples_without_an_answer_are_dropped_and_long_ones_truncated(tok) -> None:
    assert tokenize_sft(tok, [{"role": "user", "content": "no answer"}]) is None
    long = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "answer " * 50}]
    ds, stats = sft_dataset(tok, [{"messages": long}, {"messages": SUPPORT[0]["messages"]},
                                  {"messages": [{"role": "user", "content": "x " * 400},
                                                {"role": "assistant", "content": "y"}]}], max_length=100)
    assert stats["examples"] == 3 and stats["truncated"] == 3 and stats["dropped"] == 2 and len(ds) == 1
    assert all(len(r["input_ids"]) <= 100 for r in ds)


def test_dpo_records_are_conversational_and_render_like_generation(tok) -> None:
    rec = dpo_record({"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"})
    assert rec == {"prompt": [{"role": "user", "content": "What is 2+2?"}],
                   "chosen": [{"role": "assistant", "content": "4"}],
                   "rejected": [{"role": "assistant", "content": "5"}]}
    from trl.data_utils import apply_chat_template

    out = apply_chat_template(rec, tok)  # what DPOTrainer renders
    assert out["prompt"] == render_chat(tok, rec["prompt"], add_generation_prompt=True)
    assert out["prompt"] + out["chosen"] == render_chat(tok, rec["prompt"] + rec["chosen"])

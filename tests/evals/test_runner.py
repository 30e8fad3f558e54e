"""The evaluation runner on the tiny random model: storage, summary, caching, resuming, adapters."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers import count_rows

from curator.errors import CuratorError, ModelError
from evals import runner
from evals.runner import assistant_losses, eval_rows, evaluate, list_evals, resolve_eval

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _eval(ws: Any, tiny: Path, run: str = "base", **kw: Any) -> runner.EvalResult:
    return evaluate(ws, run, base_model=str(tiny), max_new_tokens=kw.pop("max_new_tokens", 6),
                    batch_size=kw.pop("batch_size", 4), progress=False, **kw)


def test_evaluate_stores_predictions_scores_and_summary(snap_ws: Any, tiny_model_dir: Path, test_ids: list[str]) -> None:
    before = count_rows(snap_ws)
    res = _eval(snap_ws, tiny_model_dir)
    assert not res.cached and res.generated == 6 and res.status == "complete"
    assert res.run_id == "base" and res.split == "test"
    rows = eval_rows(snap_ws, res.id)
    assert [r.example_id for r in rows] == test_ids
    for r in rows:
        assert set(r.scores) == {"exact_match", "bleu", "rouge1", "rouge2", "rougeL", "key_phrase_rate",
                                 "length_ratio", "loss"}
        assert r.meta["finish_reason"] in ("stop", "length") and r.meta["loss_tokens"] > 0
        assert r.scores["loss"] > 0
    overall = res.summary["overall"]
    assert overall["n"] == 6
    assert set(res.summary["by_task"]) == {"support", "billing"}
    assert res.summary["by_task"]["billing"]["n"] == 2
    assert math.isclose(overall["perplexity"], math.exp(overall["eval_loss"]), rel_tol=1e-9)
    # token-weighted mean of the per-example losses
    tok = sum(r.meta["loss_tokens"] for r in rows)
    assert math.isclose(overall["eval_loss"], sum(r.scores["loss"] * r.meta["loss_tokens"] for r in rows) / tok)
    mean_rouge = sum(r.scores["rougeL"] for r in rows) / 6
    assert math.isclose(overall["rougeL"], mean_rouge)
    p = res.params
    assert (p["temperature"], p["do_sample"], p["seed"], p["max_new_tokens"]) == (0.0, False, 0, 6)
    assert count_rows(snap_ws) == before  # never writes examples or splits


def test_second_evaluation_is_cached_without_loading_the_model(
    snap_ws: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _eval(snap_ws, tiny_model_dir)

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("the model must not be loaded for a cached evaluation")

    monkeypatch.setattr(runner, "load_model", refuse)
    again = _eval(snap_ws, tiny_model_dir, batch_size=2)  # batch size is not part of the key
    assert again.cached and again.id == first.id and again.summary == first.summary
    assert len(list_evals(snap_ws)) == 1
    with pytest.raises(AssertionError):
        _eval(snap_ws, tiny_model_dir, max_new_tokens=7)  # other generation params: a new evaluation


def test_interrupted_evaluation_resumes_and_matches(
    snap_ws: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _eval(snap_ws, tiny_model_dir, limit=5)
    ref_preds = {r.example_id: r.prediction for r in eval_rows(snap_ws, reference.id)}
    with snap_ws.connect() as con:  # forget it, then evaluate again with a crash after the first chunk
        con.execute("DELETE FROM eval_results")
        con.execute("DELETE FROM evals")
    real = runner.TransformersEngine.generate
    calls = {"n": 0}

    def flaky(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner.TransformersEngine, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        _eval(snap_ws, tiny_model_dir, limit=5, batch_size=1)  # chunks of 4
    assert len(eval_rows(snap_ws, reference.id)) == 4
    assert resolve_eval(snap_ws, reference.id).status == "running"
    monkeypatch.setattr(runner.TransformersEngine, "generate", real)
    res = _eval(snap_ws, tiny_model_dir, limit=5, batch_size=1)
    assert res.id == reference.id and res.generated == 1 and not res.cached
    assert {r.example_id: r.prediction for r in eval_rows(snap_ws, res.id)} == ref_preds  # greedy: reproducible


def test_a_later_snapshot_reuses_predictions_of_the_same_examples(
    snap_ws: Any, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import write_jsonl

    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot

    first = _eval(snap_ws, tiny_model_dir)
    new_test = write_jsonl(tmp_path / "more-test.jsonl", [{"messages": [
        {"role": "user", "content": "How do I rotate an API key?"},
        {"role": "assistant", "content": "Open Settings, then Keys, then Rotate."}]}])
    ingest_file(snap_ws, new_test, task="support", split="test")
    s2 = create_snapshot(snap_ws, name="s2")
    real, asked = runner.TransformersEngine.generate, []

    def counting(engine: Any, prompts: list[Any], *a: Any, **k: Any) -> Any:
        asked.append(len(prompts))
        return real(engine, prompts, *a, **k)

    monkeypatch.setattr(runner.TransformersEngine, "generate", counting)
    logged: list[str] = []
    again = _eval(snap_ws, tiny_model_dir, snapshot=s2.id, batch_size=2, log=logged.append)
    assert f"base on test of snapshot {s2.id}: 6 of 7 predictions reused" in logged[0]
    assert again.id != first.id and again.generated == 1 and asked == [1]  # only the new test example
    rows = {r.example_id: r for r in eval_rows(snap_ws, again.id)}
    assert len(rows) == 7
    for r in eval_rows(snap_ws, first.id):
        assert rows[r.example_id].prediction == r.prediction and rows[r.example_id].scores == r.scores
        assert rows[r.example_id].meta["reused_from"] == first.id
    assert again.summary["overall"]["n"] == 7
    # Other generation settings never reuse.
    asked.clear()
    other = _eval(snap_ws, tiny_model_dir, snapshot=s2.id, max_new_tokens=7)
    assert other.generated == 7 and sum(asked) == 7


def _adapter(ws: Any, tiny: Path, run_id: str, seed: int = 0) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny)),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    out = ws.path / "runs" / run_id / "adapter"
    model.save_pretrained(out)
    with ws.connect() as con:
        con.execute("INSERT INTO runs (id, kind, snapshot_id, base_model, adapter_path, status) "
                    "VALUES (?, 'sft', NULL, ?, ?, 'succeeded')", [run_id, str(tiny), str(out.relative_to(ws.path))])
    return out


def test_adapter_run_uses_its_base_model_and_adapter_hash(snap_ws: Any, tiny_model_dir: Path) -> None:
    folder = _adapter(snap_ws, tiny_model_dir, "run-one")
    base = _eval(snap_ws, tiny_model_dir)
    res = evaluate(snap_ws, "run-o", max_new_tokens=6, progress=False)  # unique prefix; base model from the row
    assert res.run_id == "run-one" and res.id != base.id
    assert res.params["base_model"] == str(tiny_model_dir) and len(res.params["adapter_sha256"]) == 64
    assert res.summary["overall"]["eval_loss"] != base.summary["overall"]["eval_loss"]  # the adapter is applied
    assert evaluate(snap_ws, "run-one", max_new_tokens=6, progress=False).cached
    (folder / "adapter_config.json").write_text(  # a changed adapter is a new evaluation
        json.dumps({**json.loads((folder / "adapter_config.json").read_text()), "lora_alpha": 16}))
    changed = evaluate(snap_ws, "run-one", max_new_tokens=6, progress=False)
    assert changed.id != res.id and not changed.cached


def test_run_errors(snap_ws: Any, tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="no run 'nope'"):
        evaluate(snap_ws, "nope", progress=False)
    with snap_ws.connect() as con:
        con.execute("INSERT INTO runs (id, kind, status) VALUES ('r-fail', 'sft', 'failed')")
        con.execute("INSERT INTO runs (id, kind, status, adapter_path) VALUES ('r-gone', 'sft', 'succeeded', 'runs/x')")
    with pytest.raises(ModelError, match="status 'failed'"):
        evaluate(snap_ws, "r-fail", progress=False)
    with pytest.raises(ModelError, match="adapter folder"):
        evaluate(snap_ws, "r-gone", progress=False)
    with pytest.raises(CuratorError, match="no evaluation of 'base'"):
        resolve_eval(snap_ws, "base")
    with pytest.raises(CuratorError, match="no 'eval' examples"):
        _eval(snap_ws, tiny_model_dir, split="eval")


def test_key_phrases_come_from_meta_when_present() -> None:
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Run nimbus fix now."}]
    items = runner._items([{"id": "b", "task": "t", "messages": msgs, "meta": {"key_phrases": ["nimbus fix"]}},
                           {"id": "a", "task": "t", "messages": msgs, "meta": {}},
                           {"id": "c", "task": "t", "messages": msgs[:1], "meta": {}}])
    assert [i.id for i in items] == ["a", "b"]  # sorted; no assistant turn: not evaluable
    assert items[1].key_phrases == ["nimbus fix"] and items[0].key_phrases is None
    assert items[0].prompt == msgs[:1] and items[0].reference == "Run nimbus fix now."


def test_assistant_losses_match_the_model_loss(tiny_model_dir: Path) -> None:
    import torch

    from curator.models import load_model, render_chat

    model, tok = load_model(str(tiny_model_dir))
    conv = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi there, friend."}]
    conv2 = [{"role": "user", "content": "A longer question to pad the batch with"},
             {"role": "assistant", "content": "Ok."}]
    (loss, n), (loss2, _) = assistant_losses(model, tok, [conv, conv2], batch_size=2)
    prompt = render_chat(tok, conv[:1], add_generation_prompt=True)
    full = render_chat(tok, conv)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    ids = p + tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
    labels = [-100] * len(p) + ids[len(p):]
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
    assert n == len(ids) - len(p)
    assert math.isclose(loss, ref, rel_tol=1e-4)
    ((alone, _),) = assistant_losses(model, tok, [conv2], batch_size=1)
    assert math.isclose(loss2, alone, rel_tol=1e-4)  # right padding does not change the loss
    # batches are length-sorted inside: the answers still come back in input order
    (b2, _), (b1, n1) = assistant_losses(model, tok, [conv2, conv], batch_size=2)
    assert math.isclose(b1, loss, rel_tol=1e-4) and math.isclose(b2, loss2, rel_tol=1e-4) and n1 == n
    # a prompt cut by max_length leaves no answer token to score (and the batch still runs)
    ((cut, n_cut),) = assistant_losses(model, tok, [conv], batch_size=1, max_length=len(p) - 3)
    assert math.isnan(cut) and n_cut == 0


@pytest.mark.slow
def test_real_smollm2_on_two_bundled_test_examples(ws: Any) -> None:
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot

    root = Path(__file__).resolve().parents[2] / "seeds" / "support"
    ingest_file(ws, root / "seeds.jsonl", task="support", origin="seed")
    ingest_file(ws, root / "test.jsonl", task="support", split="test")
    create_snapshot(ws)
    res = evaluate(ws, "base", limit=2, max_new_tokens=24, batch_size=2, progress=False)
    assert res.summary["overall"]["n"] == 2 and 0 < res.summary["overall"]["eval_loss"] < 10
    assert all(r.prediction for r in eval_rows(ws, res.id))
    assert evaluate(ws, "base", limit=2, max_new_tokens=24, progress=False).cached


def test_prompting_baselines_put_train_shots_before_the_prompt(snap_ws: Any, tiny_model_dir: Path) -> None:
    from curator.snapshots import read_split, resolve_snapshot
    from evals.runner import _items, add_shots, resolve_eval

    plain = _eval(snap_ws, tiny_model_dir)
    few = _eval(snap_ws, tiny_model_dir, prompting="few_shot", shots=3)
    near = _eval(snap_ws, tiny_model_dir, prompting="retrieval_few_shot", shots=2)
    assert (few.run_id, near.run_id) == ("base+few_shot", "base+retrieval_few_shot")
    assert len({plain.eval_id, few.eval_id, near.eval_id}) == 3
    assert few.params["shots"] == 3 and few.params["shots_sha256"] and "prompting" not in plain.params
    assert resolve_eval(snap_ws, "base").eval_id == plain.eval_id  # a baseline never stands in for the plain run

    def prompt_tokens(eid: str) -> dict[str, int]:
        with snap_ws.connect() as con:
            rows = con.execute("SELECT example_id, meta FROM eval_results WHERE eval_id = ?", [eid]).fetchall()
        return {e: json.loads(m)["prompt_tokens"] for e, m in rows}

    p0, p3 = prompt_tokens(plain.eval_id), prompt_tokens(few.eval_id)
    assert p0.keys() == p3.keys() and all(p3[e] > p0[e] for e in p0)
    # the shots change the prompt only: a baseline has no loss of its own (it would be the plain run's again)
    assert plain.summary["overall"]["eval_loss"] > 0
    assert few.summary["overall"].get("eval_loss") is None and near.summary["overall"].get("eval_loss") is None

    # retrieval: the nearest train example is the last shot, right before the question
    snap = resolve_snapshot(snap_ws, "latest")
    items = _items(read_split(snap_ws, snap, "test"))
    train = read_split(snap_ws, snap, "train")
    items[0].prompt[-1]["content"] = next(m["content"] for m in train[5]["messages"] if m["role"] == "user")
    add_shots(snap_ws, snap, items[:1], "retrieval_few_shot", 2, 0)
    assert items[0].prompt[-3]["content"] == items[0].prompt[-1]["content"]  # the same question, answered
    with pytest.raises(CuratorError, match="unknown prompting 'many_shot'"):
        _eval(snap_ws, tiny_model_dir, prompting="many_shot")

"""The evaluation runner: predictions of one run on one snapshot split, scored and stored.

``evaluate(ws, "base")`` or ``evaluate(ws, RUN_ID)``:

1. resolves the run (the pseudo-run ``base`` is the base model with no adapter; any other id is a
   row of ``runs`` with status ``succeeded``, its LoRA adapter loaded onto its ``base_model``);
2. reads the split (the snapshot's held-out ``test`` split by default; nothing is ever written to
   ``examples`` or ``splits``);
3. generates the answer to every prompt (everything before the last assistant turn) with the same
   chat template as training, batched and greedy (``temperature=0``, fixed seed);
4. scores each prediction against the reference (the last assistant turn) with
   :func:`evals.metrics.score_example` (key phrases from ``meta.key_phrases`` when the example has
   them, else extracted from the reference), and computes the teacher-forced loss of the reference
   answer (assistant tokens only, like completion-only training);
5. stores every prediction with its scores in ``eval_results`` and a summary (overall and per task,
   with ``eval_loss`` and ``perplexity``) in ``evals``.

Label tasks: when a task's answers come from a small label set (:func:`evals.metrics.label_set` on
the task's references in the evaluated split and its seed/imported train examples), or the workspace
setting ``label_patterns`` (``{task: regex}``) gives the task a pattern, each example also gets the
label extracted from its prediction and reference (:func:`evals.metrics.extract_label`), its
``accuracy`` (0/1) in the scores and ``pred_label`` / ``gold_label`` in the meta, and the summary
blocks get ``accuracy``, ``macro_f1`` and ``labels`` (per-label precision, recall, F1, support).

An evaluation's id is a hash of (run id, snapshot id, split, generation parameters, base model,
adapter file hash): evaluating the same thing again returns the stored result without loading the
model.  Results are stored chunk by chunk, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, ModelError
from curator.llm.engine import ENGINES, GenerationEngine, TransformersEngine, make_engine
from curator.llm.providers import GenParams
from curator.models import DEFAULT_CHAT_MODEL, load_model, prompt_messages, render_chat
from curator.output import progress as progress_bar
from curator.snapshots import read_split, resolve_snapshot
from curator.workspace import Workspace
from evals.metrics import (
    extract_label,
    label_metrics,
    label_set,
    normalize_answer,
    perplexity,
    score_example,
    summarize,
)

__all__ = [
    "BASE_RUN",
    "PROMPTING_MODES",
    "SCORER_VERSION",
    "EvalResult",
    "EvalRow",
    "RunInfo",
    "add_shots",
    "answer_token_ids",
    "assistant_losses",
    "engine_losses",
    "label_tasks",
    "eval_rows",
    "evaluate",
    "list_evals",
    "load_eval",
    "resolve_eval",
    "resolve_run",
]

#: The pseudo-run id of the base model with no adapter.
BASE_RUN = "base"
#: Bumped when per-example scoring changes, so older cached evaluations are not reused.
SCORER_VERSION = 1
_EVAL_COLUMNS = "id, run_id, snapshot_id, split, params::VARCHAR, summary::VARCHAR, created_at, status"


# -- runs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    """What to load for a run: the base model and, for trained runs, the adapter folder."""

    id: str
    kind: str
    base_model: str
    adapter_path: Path | None
    adapter_sha256: str | None


def _hash_files(paths: Sequence[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def adapter_sha256(folder: Path) -> str:
    """sha256 over the adapter's files (``adapter_*``, or every top-level file when there is none)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.name.startswith("adapter_")]
    if not files:
        files = [p for p in folder.iterdir() if p.is_file()]
    return _hash_files(files, folder)


def _model_fingerprint(base_model: str) -> str:
    """A registry name is its own fingerprint; a folder is its config plus weight file names and sizes."""
    p = Path(base_model).expanduser()
    if not (p.is_dir() and (p / "config.json").exists()):
        return base_model
    h = hashlib.sha256((p / "config.json").read_bytes())
    for w in sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")):
        h.update(f"{w.name}:{w.stat().st_size}".encode())
    return f"{p.resolve()}#{h.hexdigest()[:16]}"


def resolve_run(ws: Workspace, run: str, *, base_model: str = DEFAULT_CHAT_MODEL) -> RunInfo:
    """The pseudo-run ``base`` (``base_model`` alone) or a succeeded row of ``runs`` (id or unique prefix)."""
    if run == BASE_RUN:
        return RunInfo(BASE_RUN, "base", base_model, None, None)
    with ws.connect() as con:
        cols = "id, kind, base_model, adapter_path, status"
        rows = con.execute(f"SELECT {cols} FROM runs WHERE id = ?", [run]).fetchall()
        if not rows:
            rows = con.execute(f"SELECT {cols} FROM runs WHERE starts_with(id, ?)", [run]).fetchall()
    if not rows:
        raise ModelError(f"no run {run!r}: use `base` or a run id from `curator runs`")
    if len({r[0] for r in rows}) > 1:
        raise ModelError(f"run id prefix {run!r} is ambiguous: {', '.join(sorted({r[0] for r in rows}))}")
    rid, kind, run_base, adapter, status = rows[-1]
    if status != "succeeded":
        raise ModelError(f"run {rid} has status {status!r}; only succeeded runs can be evaluated")
    if kind == "openai":
        raise ModelError(f"run {rid} is an OpenAI fine-tune: the local evaluator cannot load it")
    if adapter is None:
        return RunInfo(rid, kind, run_base or base_model, None, None)
    folder = Path(adapter)
    if not folder.is_absolute():
        folder = ws.path / folder
    if not (folder / "adapter_config.json").exists():
        raise ModelError(f"run {rid}: adapter folder {folder} is missing or has no adapter_config.json")
    return RunInfo(rid, kind, run_base or base_model, folder, adapter_sha256(folder))


# -- results -------------------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """One evaluation: its id, what was evaluated, the summary, and whether it came from the cache."""

    id: str
    run_id: str
    snapshot_id: str
    split: str
    params: dict[str, Any]
    summary: dict[str, Any]
    cached: bool = False
    status: str = "complete"
    created_at: str | None = None
    generated: int = 0

    @property
    def eval_id(self) -> str:
        """Alias of ``id``."""
        return self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "eval_id": self.id, "run_id": self.run_id, "snapshot_id": self.snapshot_id, "split": self.split,
            "params": self.params, "summary": self.summary, "cached": self.cached, "status": self.status,
            "created_at": self.created_at, "generated": self.generated,
        }


@dataclass
class EvalRow:
    """One stored prediction with its scores."""

    example_id: str
    prediction: str
    scores: dict[str, float | None]
    meta: dict[str, Any] = field(default_factory=dict)


def _to_result(row: tuple[Any, ...], cached: bool) -> EvalResult:
    eid, run_id, snap, split, params, summary, created, status = row
    return EvalResult(
        eid, run_id, snap, split, json.loads(params) if params else {}, json.loads(summary) if summary else {},
        cached=cached, status=status or "complete", created_at=str(created),
    )


def load_eval(ws: Workspace, eval_id: str) -> EvalResult:
    """A stored evaluation by exact id."""
    with ws.connect() as con:
        rows = con.execute(f"SELECT {_EVAL_COLUMNS} FROM evals WHERE id = ?", [eval_id]).fetchall()
    if not rows:
        raise CuratorError(f"no evaluation {eval_id!r} (see `curator evals`)")
    return _to_result(rows[0], cached=True)


def list_evals(ws: Workspace, run: str | None = None) -> list[EvalResult]:
    """Stored evaluations, oldest first, optionally of one run."""
    with ws.connect() as con:
        where, args = ("WHERE run_id = ?", [run]) if run else ("", [])
        rows = con.execute(f"SELECT {_EVAL_COLUMNS} FROM evals {where} ORDER BY created_at, id", args).fetchall()
    return [_to_result(r, cached=True) for r in rows]


def resolve_eval(
    ws: Workspace, ref: str, *, snapshot_id: str | None = None, split: str | None = None
) -> EvalResult:
    """An evaluation by id (or unique prefix), or the latest complete evaluation of a run id.

    With ``snapshot_id`` / ``split``, a run id picks its latest evaluation on that snapshot and split.
    """
    with ws.connect() as con:
        rows = con.execute(f"SELECT {_EVAL_COLUMNS} FROM evals WHERE id = ?", [ref]).fetchall()
        if rows:
            return _to_result(rows[0], cached=True)
        conds, args = ["run_id = ?", "coalesce(status, 'complete') = 'complete'"], [ref]
        if snapshot_id:
            conds.append("snapshot_id = ?")
            args.append(snapshot_id)
        if split:
            conds.append("split = ?")
            args.append(split)
        rows = con.execute(
            f"SELECT {_EVAL_COLUMNS} FROM evals WHERE {' AND '.join(conds)} ORDER BY created_at DESC, id LIMIT 1", args
        ).fetchall()
        if rows:
            return _to_result(rows[0], cached=True)
        prefix = con.execute(f"SELECT {_EVAL_COLUMNS} FROM evals WHERE starts_with(id, ?)", [ref]).fetchall()
    if len(prefix) == 1:
        return _to_result(prefix[0], cached=True)
    if len(prefix) > 1:
        raise CuratorError(f"evaluation id prefix {ref!r} is ambiguous: {', '.join(r[0] for r in prefix)}")
    where = f" on snapshot {snapshot_id}" if snapshot_id else ""
    where += f" split {split!r}" if split else ""
    raise CuratorError(f"no evaluation of {ref!r}{where}: run `curator eval --run {ref}` first")


def eval_rows(ws: Workspace, eval_id: str) -> list[EvalRow]:
    """The stored predictions of an evaluation, in example id order."""
    with ws.connect() as con:
        rows = con.execute(
            "SELECT example_id, prediction, scores::VARCHAR, meta::VARCHAR FROM eval_results WHERE eval_id = ? "
            "ORDER BY example_id",
            [eval_id],
        ).fetchall()
    return [EvalRow(e, p or "", json.loads(s) if s else {}, json.loads(m) if m else {}) for e, p, s, m in rows]


# -- the evaluation ------------------------------------------------------------------------------------------
@dataclass
class _Item:
    id: str
    task: str
    messages: list[dict[str, Any]]  # up to and including the reference answer
    prompt: list[dict[str, Any]]
    reference: str
    key_phrases: list[str] | None


def _items(rows: list[dict[str, Any]]) -> list[_Item]:
    out = []
    for r in sorted(rows, key=lambda r: r["id"]):
        msgs = r["messages"]
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        if last is None:
            continue
        kp = (r.get("meta") or {}).get("key_phrases")
        phrases = [str(p) for p in kp] if isinstance(kp, list) else None
        out.append(_Item(r["id"], r["task"], msgs[: last + 1], prompt_messages(msgs[: last + 1]),
                         msgs[last]["content"], phrases))
    return out


def _clean(x: Any) -> Any:
    """NaN and infinities become None so the value is valid JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _eval_id(run: RunInfo, snapshot_id: str, split: str, params: dict[str, Any]) -> str:
    key = {"run": run.id, "snapshot": snapshot_id, "split": split, "adapter_sha256": run.adapter_sha256,
           "params": {k: v for k, v in params.items() if k not in _NOT_IN_KEY}}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


#: Recorded but not part of the cache key: they change speed, not (in exact arithmetic) the outputs.  (The
#: engine, transformers or vLLM, is not a parameter at all: each prediction records it in its meta, and an
#: evaluation made by one engine is reused when the other is asked.)
_NOT_IN_KEY = ("batch_size",)


#: Settings that do not change the prediction of one example (``limit`` picks which examples).
_NOT_IN_PREDICTION = (*_NOT_IN_KEY, "limit")


def _reuse_predictions(ws: Workspace, eval_id: str, run_id: str, params: dict[str, Any],
                       example_ids: list[str]) -> set[str]:
    """Copy into ``eval_id`` the stored predictions of the same run, with the same settings, of these examples.

    An example id is the hash of its messages, so the same id is the same prompt and reference: a
    later snapshot that keeps the test split (every round does) needs no new generation for it.
    Returns the ids of the examples whose rows were copied.
    """
    want = {k: v for k, v in params.items() if k not in _NOT_IN_PREDICTION}
    with ws.connect() as con:
        others = [eid for eid, prm in con.execute(
            "SELECT id, params::VARCHAR FROM evals WHERE run_id = ? AND id <> ? ORDER BY created_at", [run_id, eval_id]
        ).fetchall() if prm and {k: v for k, v in json.loads(prm).items() if k not in _NOT_IN_PREDICTION} == want]
    if not others:
        return set()
    import pyarrow as pa

    with ws.transaction() as con:
        con.register("_want", pa.table({"example_id": example_ids}))
        try:
            copied = con.execute(
                f"""INSERT INTO eval_results (eval_id, run_id, example_id, prediction, scores, meta)
                    SELECT ?, r.run_id, r.example_id, arg_min(r.prediction, r.created_at),
                           arg_min(r.scores, r.created_at),
                           json_merge_patch(coalesce(arg_min(r.meta, r.created_at), '{{}}'),
                                            json_object('reused_from', arg_min(r.eval_id, r.created_at)))
                    FROM eval_results r JOIN _want w ON w.example_id = r.example_id
                    WHERE r.eval_id IN ({",".join("?" * len(others))})
                    GROUP BY r.run_id, r.example_id
                    RETURNING example_id""",
                [eval_id, *others],
            ).fetchall()
        finally:
            con.unregister("_want")
    return {eid for (eid,) in copied}


def answer_token_ids(tokenizer: Any, conversations: Sequence[list[dict[str, Any]]], *,
                     max_length: int = 2048) -> list[tuple[list[int], int]]:
    """``(token ids, prompt length)`` of each conversation: the prompt rendered with the generation prompt,
    then the rest of the conversation (the answer and its end-of-turn marker), cut at ``max_length``."""
    encoded: list[tuple[list[int], int]] = []
    for conv in conversations:
        prompt = render_chat(tokenizer, prompt_messages(conv), add_generation_prompt=True)
        full = render_chat(tokenizer, conv)
        if not full.startswith(prompt):
            raise ModelError("the chat template renders the prompt differently inside the full conversation")
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
        encoded.append(((p_ids + c_ids)[:max_length], len(p_ids)))
    return encoded


def engine_losses(engine: GenerationEngine, conversations: Sequence[list[dict[str, Any]]], *,
                  batch_size: int = 8) -> list[tuple[float, int]]:
    """:func:`assistant_losses` with the engine's model: the transformers model itself, or vLLM's prompt
    log-probabilities of the same token ids (mean nats per answer token)."""
    if isinstance(engine, TransformersEngine):
        model, tok = engine.load()
        return assistant_losses(model, tok, conversations, batch_size=batch_size)
    token_logprobs = getattr(engine, "token_logprobs", None)
    if token_logprobs is None:
        raise ModelError(f"the {engine.name} engine gives no token log-probabilities for the eval loss")
    encoded = answer_token_ids(engine.tokenizer, conversations)
    out: list[tuple[float, int]] = []
    for (_, n_prompt), lps in zip(encoded, token_logprobs([ids for ids, _ in encoded]), strict=True):
        answer = [lp for lp in lps[n_prompt:] if lp is not None]
        out.append((-sum(answer) / len(answer) if answer else math.nan, len(answer)))
    return out


def _engine(name: str, info: RunInfo, batch_size: int) -> GenerationEngine:
    """The engine that generates an evaluation's predictions (the transformers one through this module's
    ``load_model``, which tests count)."""
    if name == "transformers":
        return TransformersEngine(info.base_model, adapter=info.adapter_path, batch_size=batch_size, merge=True,
                                  load=lambda *a, **k: load_model(*a, **k))
    return make_engine(name, info.base_model, adapter=info.adapter_path, batch_size=batch_size)


#: Most rows in one forward of :func:`assistant_losses`.
LOSS_BATCH = 8


def assistant_losses(
    model: Any, tokenizer: Any, conversations: Sequence[list[dict[str, Any]]], *, batch_size: int = 8,
    max_length: int = 2048,
) -> list[tuple[float, int]]:
    """Teacher-forced loss of each conversation's last assistant turn: (mean nats per token, tokens).

    Like completion-only training: the prompt (rendered with the generation prompt) is context, and
    the loss covers the tokens after it (the answer and its end-of-turn marker).
    """
    import torch

    encoded = answer_token_ids(tokenizer, conversations, max_length=max_length)
    dev = next(model.parameters()).device
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    keeps_logits = "logits_to_keep" in inspect.signature(base.forward).parameters
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # Length-sorted batches of at most LOSS_BATCH rows: little padding (a padded token costs a full token's
    # compute), and the batch still fills the cores.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    size = max(1, min(batch_size, LOSS_BATCH))
    by_index: dict[int, tuple[float, int]] = {}
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        batch = [encoded[i] for i in rows]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for i, (ids, n_prompt) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attn[i, : len(ids)] = 1
            labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:], dtype=torch.long)
        # Logits only where an answer token is predicted: from the earliest answer of the batch on (the
        # vocabulary projection and its softmax are a fifth of SmolLM2's compute per token, and most of its memory).
        # (A prompt cut by max_length leaves no answer: at least the last position is kept.)
        first = min(min(n_prompt for _, n_prompt in batch) - 1, width - 1)
        keep = width - first
        kwargs = {"logits_to_keep": keep} if keeps_logits else {}
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(dev), attention_mask=attn.to(dev), **kwargs).logits
            logits = logits[:, -keep:, :].float()
        # logits[:, j] predicts the token at position first + j + 1; the last one predicts nothing.
        shift_logits = logits[:, :-1, :]
        shift_labels = labels[:, first + 1 :].to(dev)
        nll = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100,
            reduction="none",
        ).view(shift_labels.shape)
        mask = shift_labels != -100
        for i, row in enumerate(rows):
            n = int(mask[i].sum())
            by_index[row] = (float(nll[i][mask[i]].sum()) / n if n else math.nan, n)
        del logits, shift_logits, nll
    return [by_index[i] for i in range(len(encoded))]


def _summary_block(items: list[_Item], rows: dict[str, EvalRow]) -> dict[str, Any]:
    scored = [rows[it.id] for it in items if it.id in rows]
    metrics = summarize([{k: v for k, v in r.scores.items() if k != "loss"} for r in scored])
    tokens = sum(int(r.meta.get("loss_tokens") or 0) for r in scored)
    nats = sum(float(r.scores.get("loss") or 0.0) * int(r.meta.get("loss_tokens") or 0) for r in scored
               if r.scores.get("loss") is not None)
    eval_loss = nats / tokens if tokens else math.nan
    labelled = [r for r in scored if "gold_label" in r.meta]
    if labelled:
        lm = label_metrics([r.meta.get("pred_label") for r in labelled], [r.meta.get("gold_label") for r in labelled])
        metrics.update({"accuracy": lm["accuracy"], "macro_f1": lm["macro_f1"], "labels": lm["per_label"]})
    return {"n": len(scored), **metrics, "eval_loss": eval_loss, "perplexity": perplexity(eval_loss),
            "mean_output_tokens": (sum(int(r.meta.get("output_tokens") or 0) for r in scored) / len(scored))
            if scored else math.nan}


def _summary(items: list[_Item], rows: dict[str, EvalRow]) -> dict[str, Any]:
    tasks = sorted({it.task for it in items})
    reasons: dict[str, int] = {}
    for it in items:
        if it.id in rows:
            r = str(rows[it.id].meta.get("finish_reason"))
            reasons[r] = reasons.get(r, 0) + 1
    return _clean({
        "overall": _summary_block(items, rows),
        "by_task": {t: _summary_block([it for it in items if it.task == t], rows) for t in tasks},
        "finish_reasons": reasons,
    })


# -- prompting baselines ---------------------------------------------------------------------------------------
#: How the model is prompted: the plain prompt, ``k`` fixed train examples before it, or the ``k`` train
#: examples nearest to it by embedding.  The shots come from the snapshot's train split, from the user's own
#: examples (origin ``seed`` or ``import``), so a baseline does not move when synthetic data is added.
PROMPTING_MODES = ("zero_shot", "few_shot", "retrieval_few_shot")
SHOT_ORIGINS = ("seed", "import")


def _shot_pool(ws: Workspace, snap: Any) -> list[dict[str, Any]]:
    rows = [r for r in read_split(ws, snap, "train") if r.get("origin") in SHOT_ORIGINS]
    return [r for r in sorted(rows, key=lambda r: r["id"]) if any(m["role"] == "assistant" for m in r["messages"])]


def _user_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages if m["role"] == "user")


def _with_shots(prompt: list[dict[str, Any]], shots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompt with each shot's turns (system turns left out) before the question, after the system turn."""
    system = [m for m in prompt[:1] if m["role"] == "system"]
    demo = [{"role": m["role"], "content": m["content"]} for s in shots for m in s["messages"] if m["role"] != "system"]
    return [*system, *demo, *prompt[len(system):]]


def add_shots(ws: Workspace, snap: Any, items: list[_Item], mode: str, k: int, seed: int) -> str:
    """Put ``k`` shots before each item's prompt (in place); returns a fingerprint of the shots chosen."""
    import random

    pool = _shot_pool(ws, snap)
    if not pool:
        raise CuratorError(f"snapshot {snap.id} has no seed or imported train examples to use as {mode} shots")
    k = min(k, len(pool))
    if mode == "few_shot":
        chosen = sorted(random.Random(seed).sample(range(len(pool)), k))
        shots = [pool[i] for i in chosen]
        for it in items:
            it.prompt = _with_shots(it.prompt, shots)
        ids = [s["id"] for s in shots]
    else:
        from curator.embed import encode

        x = encode([_user_text(r["messages"]) for r in pool])
        q = encode([_user_text(it.prompt) for it in items])
        sims = q @ x.T
        for row, it in zip(sims, items, strict=True):
            nearest = sorted(range(len(pool)), key=lambda j: (-float(row[j]), j))[:k]
            it.prompt = _with_shots(it.prompt, [pool[j] for j in reversed(nearest)])  # nearest last
        ids = [r["id"] for r in pool]
    return hashlib.sha256("|".join(ids).encode()).hexdigest()[:16]




# -- label tasks ----------------------------------------------------------------------------------------------
def label_tasks(ws: Workspace, snap: Any, items: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """``{task: {"labels": [...], "pattern": regex | None}}`` for the label tasks among ``items``' tasks.

    The label set comes from the references of the task's items and of its seed/imported train
    examples (synthetic ones are left out, so adding data never moves it); a task with a
    ``label_patterns`` setting is a label task whatever the detection says, its labels then being the
    detected set, else the distinct pattern matches of those references.
    """
    patterns = ws.get_setting("label_patterns", {}) or {}
    if not isinstance(patterns, dict):
        raise CuratorError("the setting label_patterns must be a mapping {task: regex}")
    refs: dict[str, list[str]] = {}
    for it in items:
        refs.setdefault(it.task, []).append(it.reference)
    if not refs:
        return {}
    for it in _items([r for r in read_split(ws, snap, "train") if r.get("origin") in SHOT_ORIGINS]):
        if it.task in refs:
            refs[it.task].append(it.reference)
    out: dict[str, dict[str, Any]] = {}
    for task in sorted(refs):
        pattern = patterns.get(task)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as e:
                raise CuratorError(f"label_patterns[{task!r}] is not a valid regex: {e}") from None
        labels = label_set(refs[task])
        if labels is None and pattern is not None:
            labels = sorted({lab for r in refs[task] if (lab := extract_label(r, [], pattern))})
        if labels:
            out[task] = {"labels": labels, "pattern": pattern}
    return out


def _label_scores(task_labels: dict[str, Any] | None, prediction: str, reference: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(extra scores, extra meta) of one example of a label task (empty for other tasks)."""
    if not task_labels:
        return {}, {}
    labels, pattern = task_labels["labels"], task_labels["pattern"]
    gold = extract_label(reference, labels, pattern) or (normalize_answer(reference) or None)
    pred = extract_label(prediction, labels, pattern)
    return {"accuracy": None if gold is None else float(pred == gold)}, {"gold_label": gold, "pred_label": pred}


def evaluate(
    ws: Workspace,
    run: str = BASE_RUN,
    *,
    snapshot: str = "latest",
    split: str = "test",
    base_model: str = DEFAULT_CHAT_MODEL,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    limit: int | None = None,
    seed: int = 0,
    prompting: str = "zero_shot",
    shots: int = 5,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    engine: str = "transformers",
) -> EvalResult:
    """Evaluate ``run`` (a run id or ``base``) on a snapshot split; cached by (run, snapshot, split, params).

    Returns the :class:`EvalResult` (``cached=True`` when nothing had to be generated).  ``limit`` keeps
    the first N examples in id order (part of the cache key).  ``base_model`` is used for ``base``;
    a trained run uses the base model recorded with it.  ``prompting`` (:data:`PROMPTING_MODES`) puts
    ``shots`` train examples before each prompt; such an evaluation is stored under the run id
    ``<run>+<prompting>`` (``base+few_shot``), so it never stands in for the plain one.  ``engine``
    (:data:`curator.llm.engine.ENGINES`) generates: ``transformers``, or ``vllm`` on a CUDA GPU; each
    prediction records it (``meta.engine``), the id does not, so an evaluation made by one engine is
    reused when the other is asked.
    """
    if max_new_tokens < 1:
        raise CuratorError("max_new_tokens must be at least 1")
    if batch_size < 1:
        raise CuratorError("batch_size must be at least 1")
    if limit is not None and limit < 1:
        raise CuratorError("limit must be at least 1")
    if prompting not in PROMPTING_MODES:
        raise CuratorError(f"unknown prompting {prompting!r} (choose from {', '.join(PROMPTING_MODES)})")
    if prompting != "zero_shot" and shots < 1:
        raise CuratorError("shots must be at least 1")
    if engine not in ENGINES:
        raise CuratorError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    info = resolve_run(ws, run, base_model=base_model)
    snap = resolve_snapshot(ws, snapshot)
    items = _items(read_split(ws, snap, split))
    if limit is not None:
        items = items[:limit]
    shots_key = add_shots(ws, snap, items, prompting, shots, seed) if prompting != "zero_shot" and items else None
    if prompting != "zero_shot":
        info = RunInfo(f"{info.id}+{prompting}", info.kind, info.base_model, info.adapter_path, info.adapter_sha256)
    params: dict[str, Any] = {
        "base_model": info.base_model, "base_model_fingerprint": _model_fingerprint(info.base_model),
        "adapter_path": str(info.adapter_path) if info.adapter_path else None, "adapter_sha256": info.adapter_sha256,
        "max_new_tokens": max_new_tokens, "temperature": 0.0, "do_sample": False, "seed": seed, "limit": limit,
        "batch_size": batch_size, "chat_template": "model", "scorer_version": SCORER_VERSION,
    }
    labels = label_tasks(ws, snap, items)
    if labels:  # absent for tasks without labels, so their ids (and caches) stay as they were
        params["labels"] = labels
    if prompting != "zero_shot":  # absent for plain evaluations, so their ids (and caches) stay as they were
        params.update({"prompting": prompting, "shots": shots, "shots_sha256": shots_key})
    eid = _eval_id(info, snap.id, split, params)
    with ws.connect() as con:
        existing = con.execute(f"SELECT {_EVAL_COLUMNS} FROM evals WHERE id = ?", [eid]).fetchall()
    if existing and (existing[0][7] or "complete") == "complete":
        if log:
            log(f"evaluation {eid} of {info.id} on snapshot {snap.id} ({split}) is cached")
        return _to_result(existing[0], cached=True)

    if not items:
        raise CuratorError(f"snapshot {snap.id} has no {split!r} examples with an assistant answer to evaluate")
    if not existing:
        with ws.connect() as con:
            con.execute(
                "INSERT INTO evals (id, run_id, snapshot_id, split, params, summary, status) VALUES (?, ?, ?, ?, ?, NULL, 'running')",
                [eid, info.id, snap.id, split, json.dumps(params)],
            )
    done = {r.example_id for r in eval_rows(ws, eid)}
    todo = [it for it in items if it.id not in done]
    reused = _reuse_predictions(ws, eid, info.id, params, [it.id for it in todo]) if todo else set()
    if reused:
        done |= reused
        todo = [it for it in todo if it.id not in reused]
        if log:
            log(f"{info.id} on {split} of snapshot {snap.id}: {len(reused)} of {len(items)} predictions reused from "
                "its evaluation of an earlier snapshot (same examples, same settings)")
    if todo:
        if log:
            resumed = f", resuming after {len(done)}" if done else ""
            log(f"evaluating {info.id} on {len(todo)} {split} examples of snapshot {snap.id}{resumed} ...")
        gen = _engine(engine, info, batch_size)
        greedy = GenParams(max_tokens=max_new_tokens, temperature=0.0, seed=seed)
        chunk = max(batch_size * 4, 1)
        with progress_bar(f"eval {info.id}", total=len(todo), enabled=None if progress else False) as bar:
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                bar.update(note="generating")
                outs = gen.generate([it.prompt for it in part], greedy, batch_size=batch_size, progress=bar.advance)
                bar.update(note="scoring")
                # The reference loss is the model's on the plain conversation: for a prompting baseline it
                # would be the zero-shot run's loss again (shots only change the prompt), so it is not computed.
                losses = (engine_losses(gen, [it.messages for it in part], batch_size=batch_size)
                          if prompting == "zero_shot" else [(math.nan, 0)] * len(part))
                records = []
                for it, out, (loss, n_tok) in zip(part, outs, losses, strict=True):
                    scores = dict(score_example(out.text, it.reference, it.key_phrases))
                    scores["loss"] = None if math.isnan(loss) else loss
                    meta = {"finish_reason": out.finish_reason, "output_tokens": out.output_tokens,
                            "prompt_tokens": out.prompt_tokens, "loss_tokens": n_tok, "engine": gen.name}
                    extra_scores, extra_meta = _label_scores(labels.get(it.task), out.text, it.reference)
                    scores.update(extra_scores)
                    meta.update(extra_meta)
                    records.append((eid, info.id, it.id, out.text, json.dumps(_clean(scores)), json.dumps(meta)))
                with ws.transaction() as con:
                    con.executemany(
                        "INSERT INTO eval_results (eval_id, run_id, example_id, prediction, scores, meta) VALUES (?, ?, ?, ?, ?, ?)",
                        records,
                    )
            bar.update(note="")
        gen.close()
    stored = {r.example_id: r for r in eval_rows(ws, eid)}
    summary = _summary(items, stored)
    with ws.connect() as con:
        con.execute(
            "UPDATE evals SET summary = ?, status = 'complete', finished_at = current_timestamp WHERE id = ?",
            [json.dumps(summary), eid],
        )
        row = con.execute(f"SELECT {_EVAL_COLUMNS} FROM evals WHERE id = ?", [eid]).fetchall()[0]
    result = _to_result(row, cached=not todo)
    result.generated = len(todo)
    return result

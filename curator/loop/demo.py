"""``curator demo``: the loop on the bundled seeds, offline, in a fresh workspace.

Prepare the local models; validate and ingest the seeds and the held-out test set; generate
synthetic examples with the local teacher; dedup; leakage check; round 1 (snapshot, train,
decide against the base model on the dev split, report on test, weaknesses on dev, targeted data);
production traffic: ``curator serve --champion`` runs as its own process, the questions of
``seeds/support/traffic.jsonl`` go to it through the ``openai`` SDK, and a scripted user rates every
answer through ``POST /v1/feedback`` (:func:`rate_answer` says how); round 2 (it ingests those rated
traces first, and continues from the champion); the metrics table and the HTML report.

Sized for 10 minutes on 2 CPU cores (see :data:`PLAN`): the teacher writes short replies in
batches of 8, each training stops after a fixed number of steps, and the evaluation generates at
most 160 tokens per answer (the longest reference answer is 135).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curator.errors import CuratorError
from curator.workspace import Workspace

__all__ = ["CORRECTION_RULE", "PLAN", "RATING_RULE", "bundled_seeds", "rate_answer", "run_demo", "serve_traffic"]

#: The demo's sizes, full and ``--quick``.  Each training stops after a fixed number of steps of the
#: config's 4-epoch schedule (about 5 s a step on 2 cores), so a run gives the same numbers on any
#: machine: a schedule annealed over the short run was measured worse here (round 1 ROUGE-L 0.22 after
#: 18 annealed steps against 0.39 after 20 steps of a 48-step schedule).
PLAN: dict[str, dict[str, Any]] = {
    "full": {"seed_requests": 8, "train_steps": (20, 20), "targeted": 8, "max_eval": None, "traffic": None},
    "quick": {"seed_requests": 4, "train_steps": (8, 5), "targeted": 4, "max_eval": 10, "traffic": 8},
}
#: Teacher replies: a question/answer pair as JSON is 120-190 tokens in the seeds.
#: The evaluation generates the 30 test answers in one batch (fastest per token on 2 cores).
TEACHER_MAX_TOKENS = 256
TEACHER_BATCH = 8
EVAL_MAX_NEW_TOKENS = 160
EVAL_BATCH = 32
#: Train examples in the prompt of the few-shot baselines (``curator round``'s default is 5): 2 halves the
#: demo's baseline prompts (about 430 tokens instead of 860), the largest cost of its 10-minute budget.
BASELINE_SHOTS = 2


def bundled_seeds() -> Path:
    """``seeds/support`` of the source tree (the demo runs from a clone)."""
    here = Path(__file__).resolve().parents[2] / "seeds" / "support"
    if not (here / "seeds.jsonl").exists():
        raise CuratorError(f"bundled seeds not found at {here}; pass --seeds-dir")
    return here


def run_demo(
    ws: Workspace, *, quick: bool = False, seeds_dir: Path | None = None, seed: int = 42,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Fresh workspace -> models -> seeds -> synthetic data -> dedup -> leakage -> round 1 -> served traffic and
    its ratings -> round 2.  ``seed``: the training seed of both rounds and the seed of the synthetic generation
    (the same seed gives the same numbers; another seed, another run of the same recipe)."""
    from curator.data.ingest import ingest_file
    from curator.data.validate import token_counter, validate_file
    from curator.loop.report import metrics_table, write_round_report
    from curator.loop.rounds import list_rounds, run_round
    from curator.models import prepare

    seeds = seeds_dir or bundled_seeds()
    plan = PLAN["quick" if quick else "full"]
    t0 = time.time()
    steps = 9

    def step(i: int, text: str) -> None:
        log(f"[demo {time.time() - t0:5.0f}s] {i}/{steps} {text}")

    if ws.path.exists():
        log(f"[demo] removing the previous demo workspace {ws.path}")
        shutil.rmtree(ws.path)
    step(1, "preparing local models")
    model_dir = prepare(log=log)
    log(f"       SmolLM2-135M-Instruct ready at {model_dir}")
    step(2, "validating and ingesting the seeds and the held-out test set")
    counter = token_counter("local:smollm2-135m-instruct")
    for name in ("seeds.jsonl", "test.jsonl"):
        rep = validate_file(seeds / name, count_tokens=counter)
        if not rep.ok:
            raise CuratorError(f"bundled {name} does not validate: {rep.to_dict()['errors']}")
    # The test set is brought by the user (pinned), so the seeds are split between train and eval only.
    ws.set_setting("split_ratios", [0.78, 0.22, 0.0])  # 30 train, 10 dev: enough dev examples to mine
    r1 = ingest_file(ws, seeds / "seeds.jsonl", task="support", origin="seed")
    r2 = ingest_file(ws, seeds / "test.jsonl", task="support", split="test", origin="seed")
    log(f"       seeds: {r1.added} added {r1.by_split}; held-out test: {r2.added}")

    step(3, "generating synthetic examples from the seeds with the local teacher")
    from curator.llm.providers import GenParams
    from curator.synth.generate import generate

    gen = generate(ws, mode="seeds", teacher="local:smollm2-135m-instruct", n=plan["seed_requests"], task="support",
                   seed=seed,
                   params=GenParams(max_tokens=TEACHER_MAX_TOKENS), concurrency=TEACHER_BATCH, progress=True)
    log(f"       {_summary(gen)}")

    step(4, "dedup (exact, near-duplicate, semantic)")
    from curator.quality.dedup import dedup

    d = dedup(ws)
    log(f"       {_summary(d)}")
    step(5, "leakage check (train vs eval/test)")
    from curator.quality.leakage import find_leakage, fix_leakage

    leaks = find_leakage(ws)
    n_leaks = len(getattr(leaks, "pairs", []) or [])
    if n_leaks:
        fix_leakage(ws, leaks)
    log(f"       {n_leaks} leaking pairs" + (" (train copies excluded)" if n_leaks else ""))

    common: dict[str, Any] = {"task": "support", "max_eval": plan["max_eval"], "max_new_tokens": EVAL_MAX_NEW_TOKENS,
              "eval_batch_size": EVAL_BATCH, "shots": BASELINE_SHOTS,
              "gen_max_tokens": TEACHER_MAX_TOKENS, "log": log}
    t1, t2 = plan["train_steps"]
    step(6, "round 1: snapshot -> train -> dev decision vs the base model -> test report -> dev weaknesses -> targeted data")
    run_round(ws, overrides=[f"stop_after_steps={t1}", f"seed={seed}"], n_generate=plan["targeted"], **common)
    step(7, "production traffic: curator serve --champion, the questions of traffic.jsonl through the openai SDK, "
            "a scripted user rates each answer")
    traffic = serve_traffic(ws, seeds / "traffic.jsonl", limit=plan["traffic"], log=log)
    step(8, "round 2 (ingests the rated traces first, continues from the champion)")
    run_round(ws, overrides=[f"stop_after_steps={t2}", f"seed={seed}"], n_generate=0, traces=True, **common)
    step(9, "report")
    report = write_round_report(ws)
    rows = metrics_table(list_rounds(ws))
    from curator.output import table

    log("")
    log("Test metrics (held-out seeds/support/test.jsonl):")
    log(table(["model", "rougeL", "key phrases", "bleu", "exact match"],
              [(r["label"], *(f"{r[m]:.3f}" if isinstance(r.get(m), int | float) else "-"
                              for m in ("rougeL", "key_phrase_rate", "bleu", "exact_match"))) for r in rows]))
    if len(rows) >= 2:
        won = all(rows[1][m] > rows[0][m] for m in ("rougeL", "key_phrase_rate"))
        log("round 1 " + ("beats" if won else "does NOT beat") + " the base model on both ROUGE-L and key phrases")
    if len(rows) >= 3:
        better = all(rows[2][m] > rows[1][m] for m in ("rougeL", "key_phrase_rate"))
        log("round 2 " + ("beats" if better else "does NOT beat") + " round 1 on both ROUGE-L and key phrases")
    for h in list_rounds(ws):
        log(f"round {h['round']}: {h['promotion'].get('reason', '')}; champion after it: {h['champion']}")
    log(f"HTML report: {report}")
    log(f"[demo] done in {time.time() - t0:.0f}s (workspace {ws.path}, seed {seed})")
    return {"rounds": rows, "report": str(report), "traffic": traffic, "seconds": round(time.time() - t0, 1)}


#: What the demo's scripted user does with each served answer (printed in the demo's output).
RATING_RULE = ("5 (thumbs up) when the answer follows the support format -- a 'Diagnosis:' line, steps numbered 1. 2. 3. "
               "and an 'Escalation:' line -- and names the escalation contact support.nimbus.example; 2 (thumbs down) "
               "when it has only one of the two; 1 (thumbs down) otherwise")
#: What the scripted user adds to a bad rating (printed in the demo's output).
CORRECTION_RULE = ("with a rating of 2 or less it also sends, as the correction, the answer the support team wrote for "
                   "that question (the 'correction' of its line in traffic.jsonl)")
_STEP = re.compile(r"^\s*([1-9])[.)]\s+\S", re.MULTILINE)


def rate_answer(answer: str) -> int:
    """The scripted user's rating of one answer (:data:`RATING_RULE`)."""
    steps = [int(m) for m in _STEP.findall(answer)]
    formatted = (re.search(r"^\s*Diagnosis:", answer, re.MULTILINE) is not None and steps[:3] == [1, 2, 3]
                 and re.search(r"^\s*Escalation:", answer, re.MULTILINE) is not None)
    contact = "support.nimbus.example" in answer.lower()
    return 5 if formatted and contact else 2 if formatted or contact else 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out: dict[str, Any] = json.loads(r.read())
    return out


def serve_traffic(ws: Workspace, traffic: Path, *, limit: int | None = None, max_tokens: int = EVAL_MAX_NEW_TOKENS,
                  serve_args: Sequence[str] = ("--champion",), model: str = "champion",
                  log: Callable[[str], None] = print, startup_timeout: float = 300.0,
                  request_timeout: float = 1800.0) -> dict[str, Any]:
    """Serve the champion with ``curator serve --champion`` (its own process, on a free loopback port), send the
    conversations of ``traffic`` (JSONL of ``{"messages": [...], "correction": "..."}``, the last turn a user's,
    the correction optional) through the ``openai`` SDK all at once, rate every answer with :func:`rate_answer`
    through ``POST /v1/feedback`` (with the line's correction when the rating is 2 or less:
    :data:`CORRECTION_RULE`), and stop the server (which flushes its trace log).  Returns the counts by rating,
    the corrections sent and the traces' ids.
    ``serve_args`` / ``model``: what to serve and ask for instead (e.g. ``("--adapter", "a=RUN")`` / ``"a"``)."""
    import openai

    from curator.loop.rounds import champion

    champion_run = champion(ws) if model == "champion" else model
    lines = [json.loads(line) for line in traffic.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = lines[:limit] if limit else lines
    convs = [row["messages"] for row in lines]
    port = _free_port()
    # The whole burst is one batch; on 2 busy cores it can take minutes, hence the long request timeout.
    cmd = [sys.executable, "-m", "curator", "--workspace", str(ws.path), "-q", "serve", *serve_args,
           "--port", str(port), "--default-temperature", "0", "--max-batch", str(max(len(convs), 1)),
           "--request-timeout", str(int(request_timeout))]
    log(f"       $ curator serve {' '.join(serve_args)} --port {port}")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + startup_timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise CuratorError(f"curator serve exited with {proc.returncode} before it answered: {err.strip()[-400:]}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.time() > deadline:
                    raise CuratorError(f"curator serve did not answer on {base} within {startup_timeout:.0f} s") from None
                time.sleep(0.5)
        t0 = time.time()
        client = openai.OpenAI(base_url=base + "/v1", api_key="not-needed", max_retries=0, timeout=900)
        from concurrent.futures import ThreadPoolExecutor

        def ask(messages: list[dict[str, Any]]) -> Any:
            try:
                return client.chat.completions.create(model=model, messages=messages,  # type: ignore[arg-type]
                                                      max_tokens=max_tokens, temperature=0)
            except openai.OpenAIError as e:  # one failed request is reported, not fatal
                return e

        with ThreadPoolExecutor(max_workers=max(len(convs), 1)) as pool:
            replies = list(pool.map(ask, convs))
        seconds = time.time() - t0
        answered = [(r, row) for r, row in zip(replies, lines, strict=True) if not isinstance(r, openai.OpenAIError)]
        answers = [r for r, _ in answered]
        failed = [r for r in replies if isinstance(r, openai.OpenAIError)]
        if failed:
            log(f"       {len(failed)} of {len(replies)} requests failed, e.g. {type(failed[0]).__name__}: {failed[0]}")
        if not answers:
            raise CuratorError(f"curator serve answered none of the {len(replies)} requests: {failed[0]}")
        counts: dict[int, int] = {}
        tokens = corrections = 0
        for c, row in answered:
            text = c.choices[0].message.content or ""
            rating = rate_answer(text)
            counts[rating] = counts.get(rating, 0) + 1
            tokens += c.usage.completion_tokens if c.usage else 0
            body: dict[str, Any] = {"trace_id": c.id, "rating": rating, "thumbs": "up" if rating >= 4 else "down"}
            if rating <= 2 and row.get("correction"):
                body["correction"] = row["correction"]
                corrections += 1
            _post(base + "/v1/feedback", body)
        log(f"       served {len(answers)} answers of {model} ({champion_run}) in "
            f"{seconds:.0f} s ({tokens / max(seconds, 1e-9):.1f} output tokens/s)")
        log(f"       the scripted user rates {RATING_RULE}; {CORRECTION_RULE}")
        log("       ratings: " + ", ".join(f"{r}: {n}" for r, n in sorted(counts.items(), reverse=True))
            + f"; corrections sent: {corrections}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"answers": len(answers), "failed": len(failed), "ratings": {str(k): v for k, v in sorted(counts.items())},
            "corrections": corrections, "seconds": round(seconds, 1), "output_tokens": tokens, "trace_ids": [c.id for c in answers]}


def _summary(obj: object) -> str:
    d = obj.to_dict() if hasattr(obj, "to_dict") else obj
    if isinstance(d, dict):
        return ", ".join(f"{k} {v}" for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool))
    return str(d)

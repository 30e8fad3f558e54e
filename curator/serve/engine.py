"""The batching engine of ``curator serve --engine transformers``: one base model, LoRA adapters per request.

Requests go on a queue.  One worker thread takes what is waiting and runs one ``model.generate`` over
it, left-padded, up to ``max_batch`` requests.  Gathering is adaptive: after the first request it keeps
taking requests while they keep arriving (each within ``gap_ms`` of the last), for at most
``batch_wait_ms``; a lone request waits only ``gap_ms``, a burst of concurrent clients lands in one batch.

* **adapters**: with ``mixed=True`` (the default) one batch holds requests for different adapters and
  the base model, through PEFT's mixed-adapter batching (``generate(adapter_names=[...])``, ``"__base__"``
  for no adapter).  With ``mixed=False`` the batch is split into one ``generate`` per adapter
  (``set_adapter`` / ``disable_adapter``).  ``benchmarks/serve.py`` measures the two.
* **sampling per row**: every request keeps its own ``temperature``, ``top_p`` and ``seed`` inside a shared
  batch.  ``generate`` runs greedy; a logits processor (:class:`_RowSampler`) draws each sampled row's token
  with that row's own ``torch.Generator`` (seeded by the request's ``seed``, else at random) and leaves only
  that token, so greedy and sampled requests share one batch, and a seeded request gives the same answer
  whatever it is batched with (up to float rounding).
* **per-row stopping** (:class:`_RowControl`, a stopping criterion called after every step): the end-of-turn
  token, the request's own ``max_tokens``, its ``stop`` strings, its deadline and cancellation (a client
  that went away) each end that row only; the batch ends when every row has.
* **streaming**: the same criterion hands each row's new text to its request as it is generated (real
  token streaming, decoded incrementally, holding back a possible partial stop string or UTF-8 sequence).

Callbacks (``on_delta``, ``on_done``) run on the worker thread; :mod:`curator.serve.app` hops them onto the
event loop.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from curator.models import render_chat

__all__ = ["BASE_ADAPTER", "Engine", "GenRequest", "SamplingParams"]

#: PEFT's name for "no adapter" in a mixed batch.
BASE_ADAPTER = "__base__"


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenRequest:
    """One completion to generate.  ``adapter`` is a PEFT adapter name, or None for the base model."""

    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None = None
    stream: bool = False
    deadline: float | None = None  # time.monotonic() after which the row is stopped
    on_delta: Callable[[str], None] | None = None
    on_done: Callable[[GenRequest], None] | None = None
    # filled in by the engine
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None  # stop | length | timeout | cancelled | error
    error: BaseException | None = None
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    batch_size: int = 0
    _emitted: int = 0
    _cancelled: bool = False

    def cancel(self) -> None:
        """Stop generating for this request (at the next step); it finishes with ``cancelled``."""
        self._cancelled = True

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class Engine:
    """Batched generation over one (PEFT) model; see the module docstring."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 32, batch_wait_ms: float = 100.0,
                 gap_ms: float = 20.0, mixed: bool = True) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max(1, int(max_batch))
        self.batch_wait = max(0.0, batch_wait_ms) / 1000.0
        self.gap = min(max(0.0, gap_ms) / 1000.0, self.batch_wait)
        self.is_peft = hasattr(model, "peft_config")
        self.mixed = mixed and self.is_peft
        self._queue: queue.Queue[GenRequest | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._model_lock = threading.Lock()  # held by a generate; adding an adapter waits for it
        vocab = tokenizer.get_vocab()
        eos = {tokenizer.eos_token_id}
        if "<|im_end|>" in vocab:
            eos.add(vocab["<|im_end|>"])
        self.eos_ids = sorted(i for i in eos if i is not None)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.max_positions = int(getattr(getattr(model, "config", None), "max_position_embeddings", 0) or 0) or None
        self.batches = 0
        self.generated_tokens = 0

    # -- prompts ---------------------------------------------------------------------------------------------
    def encode(self, messages: list[dict[str, Any]]) -> list[int]:
        """The prompt token ids of a chat (the model's own template, ending where the answer starts)."""
        prompt = render_chat(self.tokenizer, messages, add_generation_prompt=True)
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    @property
    def queued(self) -> int:
        """Requests waiting for a batch."""
        return self._queue.qsize()

    @property
    def adapters(self) -> list[str]:
        return sorted(self.model.peft_config) if self.is_peft else []

    def add_adapter(self, name: str, path: str) -> None:
        """Load one more LoRA adapter (between batches: the generate in progress finishes first)."""
        if not self.is_peft:
            raise ValueError("the model was loaded without adapters; restart with one to add adapters live")
        if name in self.model.peft_config:
            return
        with self._model_lock:
            self.model.load_adapter(path, adapter_name=name)
            self.model.eval()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> Engine:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="curator-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, fail what is still queued, stop the worker."""
        if self._thread is None:
            return
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is not None:
                self._finish(req, "cancelled")

    def submit(self, req: GenRequest) -> GenRequest:
        if self.max_positions and len(req.prompt_ids) + req.params.max_tokens > self.max_positions:
            raise ValueError(f"the prompt ({len(req.prompt_ids)} tokens) plus max_tokens ({req.params.max_tokens}) "
                             f"exceeds the model's context of {self.max_positions} tokens")
        if req.adapter is not None and req.adapter not in self.adapters:
            raise ValueError(f"adapter {req.adapter!r} is not loaded")
        if self._thread is None:
            raise RuntimeError("the engine is not running")
        req.queued_at = time.monotonic()
        self._queue.put(req)
        return req

    def _finish(self, r: GenRequest, reason: str) -> None:
        if r.done:
            return
        r.finish_reason = reason
        r.finished_at = time.monotonic()
        if r.on_done:
            try:
                r.on_done(r)
            except Exception:  # a callback (a closed event loop) must not stop the batch
                pass

    def generate_now(self, reqs: Sequence[GenRequest]) -> list[GenRequest]:
        """Run these requests as batches on the calling thread (tests, benchmarks); returns them finished."""
        self._run_batch(list(reqs))
        return list(reqs)

    # -- the worker ------------------------------------------------------------------------------------------
    def _take(self) -> list[GenRequest] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        until = time.monotonic() + self.batch_wait
        while len(batch) < self.max_batch:
            left = min(until - time.monotonic(), self.gap)
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while not self._stopping:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run_batch(batch)
            except BaseException as e:  # never let one bad batch stop the server
                for r in batch:
                    if not r.done:
                        r.error = e
                        self._finish(r, "error")

    def _run_batch(self, batch: list[GenRequest]) -> None:
        now = time.monotonic()
        live = []
        for r in batch:
            if r._cancelled:
                self._finish(r, "cancelled")
            elif r.deadline is not None and now > r.deadline:
                self._finish(r, "timeout")
            else:
                live.append(r)
        if not live:
            return
        if self.mixed or not self.is_peft:
            groups = [live]
        else:
            by: dict[str | None, list[GenRequest]] = {}
            for r in live:
                by.setdefault(r.adapter, []).append(r)
            groups = list(by.values())
        for group in groups:
            for start in range(0, len(group), self.max_batch):
                self._generate(group[start : start + self.max_batch])

    def _generate(self, rows: list[GenRequest]) -> None:
        import contextlib

        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        dev = next(self.model.parameters()).device
        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.prompt_ids)
            ids[i, width - n :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
        started = time.monotonic()
        for r in rows:
            r.started_at, r.batch_size = started, len(rows)
        control = _RowControl(rows, self)
        kwargs: dict[str, Any] = {
            "input_ids": ids.to(dev), "attention_mask": mask.to(dev),
            "max_new_tokens": max(r.params.max_tokens for r in rows),
            "do_sample": False, "temperature": None, "top_p": None, "top_k": None,
            "pad_token_id": self.pad_id, "eos_token_id": self.eos_ids,
            "stopping_criteria": StoppingCriteriaList([control]),
        }
        if any(not r.params.greedy for r in rows):
            kwargs["logits_processor"] = LogitsProcessorList([_RowSampler(rows, dev)])
        ctx: Any = contextlib.nullcontext()
        adapters = {r.adapter for r in rows}
        if self.is_peft:
            if self.mixed and len(adapters) > 1:
                kwargs["adapter_names"] = [r.adapter or BASE_ADAPTER for r in rows]
            elif adapters == {None}:
                ctx = self.model.disable_adapter()
            else:
                self.model.set_adapter(next(iter(adapters)))
        with self._model_lock, ctx, torch.inference_mode():
            self.model.generate(**kwargs)
        self.batches += 1
        for r in rows:
            if not r.done:
                control.finish_row(r, "length")


class _RowControl:
    """A stopping criterion: per-row end of turn, max_tokens, stop strings, deadline, cancel; streams text."""

    def __init__(self, rows: list[GenRequest], engine: Engine) -> None:
        self.rows = rows
        self.engine = engine
        self.eos = set(engine.eos_ids)
        self.decode = engine.tokenizer.decode

    def _text(self, r: GenRequest) -> str:
        return self.decode(r.tokens, skip_special_tokens=True).lstrip()

    def finish_row(self, r: GenRequest, reason: str) -> None:
        text = self._text(r)
        cut = _first_stop(text, r.params.stop)
        if cut is not None:
            text, reason = text[:cut], "stop"
        r.text = text.rstrip()
        if r.stream and r.on_delta and len(r.text) > r._emitted:
            _call(r.on_delta, r.text[r._emitted :])
            r._emitted = len(r.text)
        self.engine._finish(r, reason)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        last = input_ids[:, -1].tolist()
        now = time.monotonic()
        done = [False] * len(self.rows)
        for i, r in enumerate(self.rows):
            if r.done:
                done[i] = True
                continue
            tok = last[i]
            if tok in self.eos:
                self.finish_row(r, "stop")
                done[i] = True
                continue
            r.tokens.append(tok)
            self.engine.generated_tokens += 1
            if r._cancelled:
                reason: str | None = "cancelled"
            elif r.deadline is not None and now > r.deadline:
                reason = "timeout"
            elif len(r.tokens) >= r.params.max_tokens:
                reason = "length"
            else:
                reason = None
            if reason is None and (r.params.stop or (r.stream and r.on_delta)):
                text = self._text(r)
                cut = _first_stop(text, r.params.stop)
                if cut is not None:
                    reason = "stop"
                elif r.stream and r.on_delta:
                    hold = max((len(s) for s in r.params.stop), default=1) - 1  # a stop string may be starting
                    safe = min(len(text.rstrip()), len(text) - hold)  # trailing space may end the answer
                    while safe > r._emitted and text[safe - 1] == "\ufffd":
                        safe -= 1
                    if safe > r._emitted:
                        _call(r.on_delta, text[r._emitted : safe])
                        r._emitted = safe
            if reason is not None:
                self.finish_row(r, reason)
                done[i] = True
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _call(fn: Callable[[str], None], text: str) -> None:
    try:
        fn(text)
    except Exception:  # a client that went away must not stop the batch
        pass


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [text.find(s) for s in stops if s]
    found = [i for i in found if i >= 0]
    return min(found) if found else None


class _RowSampler:
    """A logits processor: each sampled row draws its token with its own temperature, top_p and generator."""

    def __init__(self, rows: list[GenRequest], device: Any) -> None:
        import torch

        self.rows = []
        for i, r in enumerate(rows):
            if r.params.greedy:
                continue
            g = torch.Generator(device=device)
            g.manual_seed(r.params.seed if r.params.seed is not None else random.getrandbits(63))
            self.rows.append((i, r, g))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for i, r, g in self.rows:
            if r.done:
                continue
            logits = scores[i] / max(r.params.temperature, 1e-5)
            probs = torch.softmax(logits, dim=-1)
            if r.params.top_p < 1.0:
                sorted_p, order = torch.sort(probs, descending=True)
                keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < r.params.top_p
                keep[0] = True
                filtered = torch.zeros_like(probs)
                filtered[order[keep]] = sorted_p[keep]
                probs = filtered
            tok = int(torch.multinomial(probs, 1, generator=g).item())
            scores[i] = float("-inf")
            scores[i, tok] = 0.0
        return scores

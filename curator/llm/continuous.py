"""Continuous batching over a KV cache of its own: one base model, LoRA adapters per request.

The engine of ``curator serve --engine transformers`` (a worker thread fed by a queue) and of every local
generation on the transformers engine, ``curator eval`` and the local teacher
(:class:`curator.llm.engine.TransformersEngine` runs a batch through :meth:`Engine.generate_now`).

Requests go on a queue.  One worker thread runs a decode loop: every step feeds each live row its last
token (one forward for the whole batch), picks each row's next token, and ends the rows that are done;
between steps it admits what is waiting, so a request never waits for a whole batch to finish, and a row
that has finished stops costing compute at once.

* **the KV cache** (:class:`_Lane`): one preallocated tensor per layer, ``[rows, kv_heads, columns,
  head_dim]``.  Every step writes one column for all rows; a row's place in the cache is independent of
  its positions (each row has its own position ids and a mask of the columns it may see), so a finished
  row is dropped by moving the last row into its slot, and new rows are prefilled into free slots.  This
  replaces ``generate``'s growing cache, which copied the whole cache at every step (``torch.cat``: two
  thirds of a decode step at batch 64 on a CPU).
* **admission**: requests that arrive while rows are decoding are gathered like a first batch (each within
  ``gap_ms`` of the last, for at most ``batch_wait_ms``, up to ``max_batch`` rows in all) and prefilled
  together, as one forward, between two steps.  A lone request on an idle engine waits only ``gap_ms``.
* **prefix reuse** (:class:`_PrefixCache`): the prompt KV of recent requests is kept per adapter (the last
  ``prefix_cache`` prompts, at most 256 MB in all); a new prompt that shares at least 16 leading tokens with one of them (the same
  system prompt and chat template, an earlier turn of the same conversation) starts from a copy of those
  columns and prefills only the rest.  The KV of a token depends only on the tokens before it and on the
  adapter, so the answer is the same (up to float rounding).
* **adapters**: with ``mixed=True`` (the default) one batch holds rows for different adapters and the base
  model, through the adapters' stacked LoRA matrices (:class:`_StackedLora`), or PEFT's mixed-adapter
  batching (``adapter_names=[...]``, ``"__base__"`` for no adapter) for adapters those cannot hold.
  With ``mixed=False`` every adapter has its own batch (its own cache), and a step runs one forward per
  adapter (``set_adapter`` / ``disable_adapter``).  ``benchmarks/serve.py`` measures the two.
* **sampling per row**: every request keeps its own ``temperature``, ``top_p`` and ``seed`` inside a shared
  batch: greedy rows take the argmax, each sampled row draws with its own ``torch.Generator`` (seeded by
  the request's ``seed``, else at random), so a seeded request gives the same answer whatever it is batched
  with (up to float rounding).
* **per-row stopping**: the end-of-turn token, the request's own ``max_tokens``, its ``stop`` strings, its
  deadline and cancellation (a client that went away) each end that row only.
* **streaming**: each row's new text is handed to its request as it is generated (real token streaming,
  decoded incrementally, holding back a possible partial stop string or UTF-8 sequence).

The model must be a decoder whose attention layers all attend over the full context and write their keys
and values through ``cache.update`` and take a prepared 4-D mask (Llama, SmolLM2, Qwen2, Mistral without a
sliding window: what ``transformers`` 5 gives).

Callbacks (``on_delta``, ``on_done``) run on the worker thread; :mod:`curator.serve.backends` hops them
onto the event loop.
"""

from __future__ import annotations

import contextlib
import inspect
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from curator.errors import ModelError
from curator.models import render_chat

__all__ = ["BASE_ADAPTER", "Engine", "GenRequest", "SamplingParams"]

#: PEFT's name for "no adapter" in a mixed batch.
BASE_ADAPTER = "__base__"

#: Fewest shared leading tokens worth copying from the prefix cache.
MIN_PREFIX = 16
#: Spare cache columns allocated beyond what the rows need (a reallocation every this many steps at most).
HEADROOM = 64
#: Most padding a prefill may carry: token slots over tokens (new rows are prefilled in runs of similar length).
PAD_WASTE = 1.15
#: Most memory the prefix cache holds (SmolLM2-135M in float32: about 46 KB a token, so 5,800 tokens).
PREFIX_CACHE_BYTES = 256 << 20


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
    batch_size: int = 0  # rows decoding together when this one was admitted (itself included)
    prefix_tokens: int = 0  # leading prompt tokens whose KV came from the prefix cache
    _emitted: int = 0
    _cancelled: bool = False

    def cancel(self) -> None:
        """Stop generating for this request (at the next step); it finishes with ``cancelled``."""
        self._cancelled = True

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class Engine:
    """Continuous batching over one (PEFT) model; see the module docstring.

    ``max_batch`` bounds the rows decoding at once (all adapters together); ``prefix_cache`` is how many
    recent prompts per adapter keep their KV for reuse (0: none).
    """

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 32, batch_wait_ms: float = 100.0,
                 gap_ms: float = 20.0, mixed: bool = True, prefix_cache: int = 8) -> None:
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
        self._model_lock = threading.Lock()  # held by a forward; adding an adapter waits for it
        vocab = tokenizer.get_vocab()
        eos = {tokenizer.eos_token_id}
        if "<|im_end|>" in vocab:
            eos.add(vocab["<|im_end|>"])
        self.eos_ids = sorted(i for i in eos if i is not None)
        self._eos = set(self.eos_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        config = getattr(model, "config", None)
        self.max_positions = int(getattr(config, "max_position_embeddings", 0) or 0) or None
        kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
        if kinds != {"full_attention"}:
            raise ModelError(f"curator's serving engine needs full attention in every layer; this model has "
                             f"{', '.join(sorted(kinds))} layers (serve it with --engine vllm)")
        base = model.get_base_model() if self.is_peft else model
        self._cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        self._sdpa = getattr(config, "_attn_implementation", "sdpa") == "sdpa"
        self._lanes: dict[str | None, _Lane] = {}
        self._prefixes = _PrefixCache(max(0, int(prefix_cache)))
        self._stack = _StackedLora.of(model) if self.mixed else None
        self.batches = 0  # admissions: prefill forwards
        self.steps = 0  # decode steps (one forward per lane)
        self.generated_tokens = 0
        self.prefix_hits = 0
        self.prefilled_tokens = 0

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
    def live(self) -> int:
        """Rows decoding now."""
        return sum(len(lane.rows) for lane in self._lanes.values())

    @property
    def adapters(self) -> list[str]:
        return sorted(self.model.peft_config) if self.is_peft else []

    def add_adapter(self, name: str, path: str) -> None:
        """Load one more LoRA adapter (between steps: the forward in progress finishes first)."""
        if not self.is_peft:
            raise ValueError("the model was loaded without adapters; restart with one to add adapters live")
        if name in self.model.peft_config:
            return
        with self._model_lock:
            self.model.load_adapter(path, adapter_name=name)
            self.model.eval()
            if self._stack is not None:
                self._stack.invalidate()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> Engine:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="curator-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the rows decoding, fail what is still queued, stop the worker."""
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
        if not req.prompt_ids:
            raise ValueError("the prompt is empty")
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
        """Run these requests on the calling thread (tests, benchmarks), all admitted at once as far as
        ``max_batch`` allows; returns them finished.  Not while the worker thread runs."""
        pending = list(reqs)
        while pending or self.live:
            pending = self._admit(pending)
            self._step()
        return list(reqs)

    # -- the worker ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[GenRequest] = []
        first_at = last_at = 0.0
        closing = False
        while True:
            try:
                if not closing:
                    # idle: wait for work; busy: take what has arrived without waiting
                    idle = not self.live
                    while True:
                        now = time.monotonic()
                        if idle and not pending:
                            timeout: float | None = None
                        elif idle:
                            timeout = max(0.0, min(last_at + self.gap, first_at + self.batch_wait) - now)
                        else:
                            timeout = 0.0
                        try:
                            item = (self._queue.get(timeout=timeout) if timeout is None or timeout > 0
                                    else self._queue.get_nowait())
                        except queue.Empty:
                            break
                        if item is None:
                            closing = True
                            break
                        now = time.monotonic()
                        if not pending:
                            first_at = now
                        last_at = now
                        pending.append(item)
                        if len(pending) >= self.max_batch - self.live:
                            break
                    now = time.monotonic()
                    ready = (closing or len(pending) >= self.max_batch - self.live
                             or now >= min(last_at + self.gap, first_at + self.batch_wait))
                    if pending and ready and not closing:
                        pending = self._admit(pending)
                        if pending:  # no room for all: the rest go first at the next free slot
                            first_at = last_at = 0.0
                if closing:
                    for r in pending:
                        self._finish(r, "cancelled")
                    pending = []
                    if not self.live:
                        return
                self._step()
            except BaseException as e:  # never let one bad batch stop the server
                self._fail_all(e)

    def _fail_all(self, e: BaseException) -> None:
        for lane in self._lanes.values():
            for row in lane.rows:
                row.req.error = e
                self._finish(row.req, "error")
            lane.clear()

    def _lane_key(self, r: GenRequest) -> str | None:
        return None if self.mixed or not self.is_peft else r.adapter

    # -- admission: prefill new rows into free slots ---------------------------------------------------------
    def _admit(self, pending: list[GenRequest]) -> list[GenRequest]:
        """Prefill what fits (first come, first served); returns what must wait."""
        import torch

        with torch.inference_mode():  # the cache is made and changed in inference mode only
            return self._admit_now(pending)

    def _admit_now(self, pending: list[GenRequest]) -> list[GenRequest]:
        now = time.monotonic()
        room = self.max_batch - self.live
        take: list[GenRequest] = []
        rest: list[GenRequest] = []
        for r in pending:
            if r.done:
                continue
            if r._cancelled:
                self._finish(r, "cancelled")
            elif r.deadline is not None and now > r.deadline:
                self._finish(r, "timeout")
            elif len(take) < room:
                take.append(r)
            else:
                rest.append(r)
        groups: dict[str | None, list[GenRequest]] = {}
        for r in take:
            groups.setdefault(self._lane_key(r), []).append(r)
        for key, group in groups.items():
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(self)
            for r in group:
                r.batch_size = len(lane.rows) + len(group)
            for part in self._prefill_order(group):
                try:
                    self._prefill(lane, part)
                except BaseException as e:
                    for r in part:
                        r.error = e
                        self._finish(r, "error")
                    failed = {id(r) for r in part}
                    lane.drop([row for row in lane.rows if id(row.req) in failed])
                    if isinstance(e, (KeyboardInterrupt, SystemExit)):
                        raise
        return rest

    def _prefill_order(self, group: list[GenRequest]) -> list[list[GenRequest]]:
        """The prefills for new rows, in order.

        * When several new rows of one adapter find nothing in the prefix cache, one of them goes first,
          alone, so the others can start from its prompt (a burst of requests sharing a system prompt
          computes that prompt once).
        * The rest are prefilled in runs of similar length (what each row still has to compute), each run
          padded to its longest row only: at most PAD_WASTE more token slots than tokens.
        """
        leaders: list[GenRequest] = []
        if self._prefixes.size:
            misses: dict[str | None, list[GenRequest]] = {}
            for r in group:
                if self._prefixes.lookup(r.adapter, r.prompt_ids, touch=False)[0] is None:
                    misses.setdefault(r.adapter, []).append(r)
            leaders = [rs[0] for rs in misses.values() if len(rs) > 1]
        parts: list[list[GenRequest]] = [[r] for r in leaders]
        led = {id(r) for r in leaders}
        rest = [r for r in group if id(r) not in led]

        def todo(r: GenRequest) -> int:  # prompt tokens left to compute once the leaders have run
            hit = self._prefixes.lookup(r.adapter, r.prompt_ids, touch=False)[1]
            for lead in leaders:
                if lead.adapter == r.adapter:
                    shared = _common(lead.prompt_ids, r.prompt_ids, len(r.prompt_ids) - 1)
                    hit = max(hit, shared if shared >= MIN_PREFIX else 0)
            return len(r.prompt_ids) - hit

        run: list[GenRequest] = []
        total = 0
        for r, n in sorted(((r, todo(r)) for r in rest), key=lambda rn: rn[1]):
            if run and n * (len(run) + 1) > PAD_WASTE * (total + n):
                parts.append(run)
                run, total = [], 0
            run.append(r)
            total += n
        if run:
            parts.append(run)
        return parts

    def _prefill(self, lane: _Lane, group: list[GenRequest]) -> None:
        import torch

        hits = [self._prefixes.lookup(r.adapter, r.prompt_ids) for r in group]
        order = sorted(range(len(group)), key=lambda i: (id(hits[i][0]), hits[i][1]))
        group = [group[i] for i in order]
        hits = [hits[i] for i in order]
        g = len(group)
        suffix = [len(r.prompt_ids) - p for r, (_, p) in zip(group, hits, strict=True)]
        pre_w, suf_w = max(p for _, p in hits), max(suffix)
        width = pre_w + suf_w
        n = len(lane.rows)
        lane.reserve(n + g, width)
        end = lane.L
        base = end - width
        if lane.valid is not None:
            lane.valid[n : n + g] = False
        ids = torch.full((g, suf_w), self.pad_id, dtype=torch.long)
        pos = torch.zeros((g, suf_w), dtype=torch.long)
        key_ok = torch.zeros((g, width), dtype=torch.bool)
        for i, (r, (_, p), s) in enumerate(zip(group, hits, suffix, strict=True)):
            ids[i, suf_w - s :] = torch.tensor(r.prompt_ids[p:], dtype=torch.long)
            pos[i, suf_w - s :] = torch.arange(p, p + s)
            key_ok[i, :p] = True
            key_ok[i, width - s :] = True
        # queries see the prefix and the suffix up to themselves; a padding query sees itself only
        col = torch.arange(width)
        q_col = torch.arange(suf_w) + pre_w
        mask = key_ok[:, None, :] & (col[None, None, :] <= q_col[None, :, None])
        mask |= (col[None, None, :] == q_col[None, :, None])
        started = time.monotonic()
        rows = []
        for r, (_, p), s in zip(group, hits, suffix, strict=True):
            r.started_at, r.prefix_tokens = started, p
            rows.append(_Row(r, pos=len(r.prompt_ids), start=base if p else end - s, gen=_generator(r.params)))
        # copy the cached prefixes in (rows sharing an entry are next to each other: one copy per run)
        i = 0
        while i < g:
            entry, p = hits[i]
            j = i
            while j < g and hits[j][0] is entry and hits[j][1] == p:
                j += 1
            if entry is not None and p:
                lane.write_prefix(n + i, n + j, base, entry, p)
                self.prefix_hits += j - i
            i = j
        lane.rows.extend(rows)
        lane.window(n, n + g, end - suf_w, end, base)
        logits = self._forward(lane, ids, mask[:, None], pos, [r.adapter for r in group])
        assert lane.valid is not None
        lane.valid[n : n + g, base:end] = key_ok
        self.batches += 1
        self.prefilled_tokens += sum(suffix)
        # keep a prompt's KV for the next requests that share its beginning (one per new beginning)
        for i, (r, (_, p), s) in enumerate(zip(group, hits, suffix, strict=True)):
            if self._prefixes.wants(r.adapter, r.prompt_ids):
                self._prefixes.add(r.adapter, r.prompt_ids, lane.read_prompt(n + i, base, p, end - s, end))
        self._advance(lane, rows, logits)

    # -- decoding --------------------------------------------------------------------------------------------
    def _step(self) -> None:
        import torch

        with torch.inference_mode():
            self._step_now()

    def _step_now(self) -> None:
        import torch

        for lane in list(self._lanes.values()):
            if not lane.rows:
                lane.clear()
                continue
            rows = lane.rows
            n = len(rows)
            lane.reserve(n, 0)
            assert lane.valid is not None
            col = lane.L
            lane.valid[:n, col] = True
            lo = min(row.start for row in rows)
            ids = torch.tensor([[row.last] for row in rows], dtype=torch.long)
            pos = torch.tensor([[row.pos] for row in rows], dtype=torch.long)
            mask = lane.valid[:n, lo : col + 1][:, None, None, :]
            lane.window(0, n, col, col + 1, lo)
            try:
                logits = self._forward(lane, ids, mask, pos, [row.req.adapter for row in rows])
            except BaseException as e:
                for row in rows:
                    row.req.error = e
                    self._finish(row.req, "error")
                lane.clear()
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                continue
            lane.L = col + 1
            for row in rows:
                row.pos += 1
            self.steps += 1
            self._advance(lane, list(rows), logits)

    def _forward(self, lane: _Lane, ids: Any, mask: Any, pos: Any, adapters: list[str | None]) -> Any:
        import torch

        dev = lane.device
        if not self._sdpa:  # eager attention adds the mask
            mask = torch.zeros(mask.shape, dtype=lane.dtype).masked_fill(~mask, torch.finfo(lane.dtype).min)
        kwargs: dict[str, Any] = {self._cache_kw: lane, "use_cache": True, "logits_to_keep": 1}
        with self._model_lock:
            ctx: Any = contextlib.nullcontext()
            if self.is_peft:
                distinct = set(adapters)
                if len(distinct) > 1 and self._stack is not None and self._stack.usable():
                    ctx = self._stack.rows(adapters)
                elif len(distinct) > 1:
                    kwargs["adapter_names"] = [a or BASE_ADAPTER for a in adapters]
                elif distinct == {None}:
                    ctx = self.model.disable_adapter()
                else:
                    name = next(iter(distinct))
                    if self.model.active_adapter != name:
                        self.model.set_adapter(name)
            with ctx:
                out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                                 **kwargs)
        return out.logits[:, -1, :].float()

    def _advance(self, lane: _Lane, rows: list[_Row], logits: Any) -> None:
        """Pick each row's next token, hand it over, and drop the rows that are done."""
        tokens = logits.argmax(dim=-1).tolist()
        for i, row in enumerate(rows):
            if row.gen is not None:
                tokens[i] = _sample(logits[i], row.req.params, row.gen)
        now = time.monotonic()
        done = [row for row, tok in zip(rows, tokens, strict=True) if self._accept(row, tok, now)]
        if done:
            lane.drop(done)

    def _accept(self, row: _Row, tok: int, now: float) -> bool:
        """Take one generated token for a row; True when the row is finished."""
        r = row.req
        if r.done:  # finished elsewhere (the engine stopped)
            return True
        if tok in self._eos:
            self._finish_row(r, "stop")
            return True
        r.tokens.append(tok)
        row.last = tok
        self.generated_tokens += 1
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
            self._finish_row(r, reason)
            return True
        return False

    def _text(self, r: GenRequest) -> str:
        return str(self.tokenizer.decode(r.tokens, skip_special_tokens=True)).lstrip()

    def _finish_row(self, r: GenRequest, reason: str) -> None:
        text = self._text(r)
        cut = _first_stop(text, r.params.stop)
        if cut is not None:
            text, reason = text[:cut], "stop"
        r.text = text.rstrip()
        if r.stream and r.on_delta and len(r.text) > r._emitted:
            _call(r.on_delta, r.text[r._emitted :])
            r._emitted = len(r.text)
        self._finish(r, reason)


class _StackedLora:
    """Mixed-adapter batches with one pair of matrix products per LoRA layer, whatever the adapters.

    PEFT's mixed batching (``adapter_names=[...]``) gathers each adapter's rows, runs its LoRA on them and
    scatters the result back, in every LoRA layer at every step, and installs hooks on every layer for each
    forward: with two adapters that cost a third more wall time than one adapter on 2 CPU cores.  Here the
    adapters' ``A`` matrices are stacked (``[sum of ranks, in]``) and their ``B`` matrices, scaling folded in,
    too (``[out, sum of ranks]``); a row's mask keeps the columns of its own adapter (none for the base
    model), so a layer adds ``((x @ A^T) * mask) @ B^T`` to the base layer's output: the same sum as
    PEFT's, in three operations.  The model runs with its adapters disabled and a forward hook on each LoRA
    layer adds that term while a mixed batch runs (the hooks are installed once and do nothing otherwise).

    Plain LoRA on linear layers only: with a DoRA or other variant, a LoRA bias, or a non-linear LoRA
    layer, :meth:`usable` is False and the engine keeps PEFT's mixed batching.
    """

    @classmethod
    def of(cls, model: Any) -> _StackedLora:
        """The model's one stack (kept on the model: every engine over it shares the hooks and the matrices)."""
        stack = getattr(model, "_curator_stacked_lora", None)
        if stack is None:
            stack = cls(model)
            model._curator_stacked_lora = stack
        return stack

    def __init__(self, model: Any) -> None:
        self.model = model
        self._hooked: set[int] = set()  # ids of the LoRA layers that carry the hook
        self._weights: dict[int, tuple[Any, Any]] = {}
        self._columns: dict[str, tuple[int, int]] = {}
        self._width = 0
        self._mask: Any = None
        self._ok: bool | None = None

    def invalidate(self) -> None:
        self._weights.clear()
        self._columns.clear()
        self._ok = None

    def usable(self) -> bool:
        if self._ok is None:
            self._ok = self._build()
        return self._ok

    def _build(self) -> bool:
        import torch

        try:
            from peft.tuners.lora.layer import Linear as LoraLinear
        except ImportError:
            return False
        layers = [m for m in self.model.modules() if hasattr(m, "lora_A") and hasattr(m, "lora_B")]
        if not layers or any(not isinstance(m, LoraLinear) for m in layers):
            return False
        names = sorted(self.model.peft_config)
        for m in layers:
            for name in names:
                if name not in m.lora_A:
                    continue
                if getattr(m, "lora_variant", {}).get(name) is not None or m.lora_B[name].bias is not None:
                    return False
        columns: dict[str, tuple[int, int]] = {}
        width = 0
        for name in names:
            ranks = {m.r[name] for m in layers if name in m.lora_A}
            if len(ranks) > 1:  # rank_pattern: a different rank per layer
                return False
            r = ranks.pop() if ranks else 0
            columns[name] = (width, width + r)
            width += r
        with torch.no_grad():
            for m in layers:
                w_in = m.base_layer.weight
                a = torch.zeros((width, w_in.shape[1]), dtype=w_in.dtype, device=w_in.device)
                b = torch.zeros((w_in.shape[0], width), dtype=w_in.dtype, device=w_in.device)
                for name, (c0, c1) in columns.items():
                    if name in m.lora_A and c1 > c0:
                        a[c0:c1] = m.lora_A[name].weight.to(a.dtype)
                        b[:, c0:c1] = m.lora_B[name].weight.to(b.dtype) * m.scaling[name]
                self._weights[id(m)] = (a, b)
        for m in layers:  # an adapter added later may bring LoRA layers of its own
            if id(m) not in self._hooked:
                m.register_forward_hook(self._hook)
                self._hooked.add(id(m))
        self._columns, self._width = columns, width
        return True

    def _hook(self, module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
        if self._mask is None:
            return None
        a, b = self._weights[id(module)]
        x = inputs[0].to(a.dtype)
        return output + ((x @ a.T) * self._mask) @ b.T

    @contextlib.contextmanager
    def rows(self, adapters: list[str | None]) -> Any:
        """Run the model's forward for rows of these adapters (None: the base model)."""
        import torch

        a = next(iter(self._weights.values()))[0]
        mask = torch.zeros((len(adapters), 1, self._width), dtype=a.dtype, device=a.device)
        for i, name in enumerate(adapters):
            if name is not None:
                c0, c1 = self._columns[name]
                mask[i, 0, c0:c1] = 1
        with self.model.disable_adapter():
            self._mask = mask
            try:
                yield
            finally:
                self._mask = None


@dataclass
class _Row:
    req: GenRequest
    pos: int  # the position id of the token fed next
    start: int  # the first cache column this row uses
    gen: Any = None  # a torch.Generator for a sampled row
    last: int = 0  # the token fed next


class _Lane:
    """The rows that decode together and their KV cache (the ``cache`` argument of the model's forward).

    Per layer, keys and values are ``[slots, kv_heads, columns, head_dim]``; rows live in slots ``0..n-1``.
    Column ``L`` is the next one written, for every row at once; ``valid[slot, column]`` says which columns a
    row sees.  Before each forward, :meth:`window` says which slots and columns it writes and reads.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows: list[_Row] = []
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self.valid: Any = None
        self.slots = 0
        self.cap = 0
        self.L = 0
        self._win = (0, 0, 0, 0, 0)
        self._shape: tuple[int, int] | None = None  # (kv_heads, head_dim), from the first forward
        param = next(engine.model.parameters())
        self.device, self.dtype = param.device, param.dtype

    def clear(self) -> None:
        """No rows: give the memory back."""
        self.rows, self.keys, self.values, self.valid = [], [], [], None
        self.slots = self.cap = self.L = 0

    def window(self, a: int, b: int, c0: int, c1: int, lo: int) -> None:
        """The next forward writes slots a..b-1 at columns c0..c1-1 and reads columns lo..c1-1."""
        self._win = (a, b, c0, c1, lo)

    # the part of transformers' Cache interface that the attention layers use
    def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        import torch

        a, b, c0, c1, lo = self._win
        while layer_idx >= len(self.keys):  # first forward: allocate as the layers come
            if self._shape is None:
                self._shape = (int(key_states.shape[1]), int(key_states.shape[3]))
            h, d = self._shape
            self.keys.append(torch.zeros((self.slots, h, self.cap, d), dtype=key_states.dtype, device=self.device))
            self.values.append(torch.zeros((self.slots, h, self.cap, d), dtype=value_states.dtype,
                                           device=self.device))
        k, v = self.keys[layer_idx], self.values[layer_idx]
        k[a:b, :, c0:c1] = key_states
        v[a:b, :, c0:c1] = value_states
        return k[a:b, :, lo:c1], v[a:b, :, lo:c1]

    def reserve(self, slots: int, width: int) -> None:
        """Room for ``slots`` rows, a prefill ``width`` columns wide ending at column ``L``, and one more
        column after it; moves the columns in use to the front (or reallocates) when there is not."""
        import torch

        n = len(self.rows)
        if not n:
            if slots <= self.slots and width < self.cap:
                self.L = width
                return
            self.clear()
        lo = min((row.start for row in self.rows), default=self.L)
        used = self.L - lo
        new_l = max(used, width)
        if slots <= self.slots and self.L >= width and self.L < self.cap:
            return
        new_slots = max(slots, min(self.engine.max_batch, max(self.slots * 2, slots)))
        new_cap = -(-(new_l + HEADROOM) // 16) * 16
        shift = new_l - used  # rows move from column lo to column shift

        def moved(old: Any, shape: tuple[int, ...]) -> Any:  # columns are dim 2 of the KV, dim 1 of valid
            new = torch.zeros(shape, dtype=old.dtype, device=old.device)
            if n and used:
                if old.dim() == 4:
                    new[:n, :, shift : shift + used] = old[:n, :, lo : self.L]
                else:
                    new[:n, shift : shift + used] = old[:n, lo : self.L]
            return new

        if self._shape is not None and self.keys:
            h, d = self._shape
            self.keys = [moved(k, (new_slots, h, new_cap, d)) for k in self.keys]
            self.values = [moved(v, (new_slots, h, new_cap, d)) for v in self.values]
        if self.valid is None:
            self.valid = torch.zeros((new_slots, new_cap), dtype=torch.bool)
        else:
            self.valid = moved(self.valid, (new_slots, new_cap))
        for row in self.rows:
            row.start += shift - lo
        self.slots, self.cap, self.L = new_slots, new_cap, new_l

    def write_prefix(self, a: int, b: int, col: int, entry: _Prefix, p: int) -> None:
        """Slots a..b-1 start with the first ``p`` cached columns of ``entry`` at column ``col``."""
        import torch

        if self._shape is None or not self.keys:  # first forward not run yet: allocate now
            h, d = int(entry.keys[0].shape[1]), int(entry.keys[0].shape[3])
            self._shape = (h, d)
            self.keys = [torch.zeros((self.slots, h, self.cap, d), dtype=ek.dtype, device=self.device)
                         for ek in entry.keys]
            self.values = [torch.zeros((self.slots, h, self.cap, d), dtype=ev.dtype, device=self.device)
                           for ev in entry.values]
        for k, ek in zip(self.keys, entry.keys, strict=True):
            k[a:b, :, col : col + p] = ek[:, :, :p]
        for v, ev in zip(self.values, entry.values, strict=True):
            v[a:b, :, col : col + p] = ev[:, :, :p]

    def read_prompt(self, slot: int, base: int, p: int, s0: int, end: int) -> tuple[list[Any], list[Any]]:
        """The KV of one row's prompt, without holes: columns base..base+p-1 then s0..end-1."""
        import torch

        def cut(t: Any) -> Any:
            parts = [t[slot : slot + 1, :, base : base + p], t[slot : slot + 1, :, s0:end]] if p else \
                [t[slot : slot + 1, :, s0:end]]
            return torch.cat(parts, dim=2).clone()

        return [cut(k) for k in self.keys], [cut(v) for v in self.values]

    def drop(self, rows: list[_Row]) -> None:
        """Remove rows: the last rows move into their slots."""
        gone = {id(row) for row in rows}
        i = 0
        while i < len(self.rows):
            if id(self.rows[i]) not in gone:
                i += 1
                continue
            last = len(self.rows) - 1
            if i != last:
                lo = min(row.start for row in self.rows)
                for t in (*self.keys, *self.values):
                    t[i, :, lo : self.L] = t[last, :, lo : self.L]
                self.valid[i] = self.valid[last]
                self.rows[i] = self.rows[last]
            self.rows.pop()
        if not self.rows:
            self.L = 0


@dataclass
class _Prefix:
    tokens: list[int]
    keys: list[Any]
    values: list[Any]
    nbytes: int = 0
    used: int = 0  # when last looked up or added (a counter)


class _PrefixCache:
    """The prompt KV of the last ``size`` prompts per adapter, for prompts that begin the same way; at most
    ``max_bytes`` in all (the least recently used go first)."""

    def __init__(self, size: int, max_bytes: int = PREFIX_CACHE_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._by: dict[str | None, list[_Prefix]] = {}
        self._clock = 0

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for entries in self._by.values() for e in entries)

    def lookup(self, adapter: str | None, prompt: list[int], touch: bool = True) -> tuple[_Prefix | None, int]:
        """The entry sharing the most leading tokens with ``prompt`` (at least MIN_PREFIX, never all of
        it: the last prompt token is always computed, it gives the first answer token), and how many;
        ``touch`` marks it used."""
        best: tuple[_Prefix | None, int] = (None, 0)
        for e in self._by.get(adapter, []):
            n = _common(e.tokens, prompt, len(prompt) - 1)
            if n >= MIN_PREFIX and n > best[1]:
                best = (e, n)
        if best[0] is not None and touch:
            self._clock += 1
            best[0].used = self._clock
        return best

    def wants(self, adapter: str | None, prompt: list[int]) -> bool:
        """Whether to keep ``prompt``: no entry shares half of it (one entry per system prompt, say)."""
        return self.size > 0 and all(2 * _common(e.tokens, prompt, len(prompt)) < len(prompt)
                                     for e in self._by.get(adapter, []))

    def add(self, adapter: str | None, prompt: list[int], kv: tuple[list[Any], list[Any]]) -> None:
        nbytes = sum(t.numel() * t.element_size() for t in (*kv[0], *kv[1]))
        if nbytes > self.max_bytes:
            return
        self._clock += 1
        entries = self._by.setdefault(adapter, [])
        entries.append(_Prefix(list(prompt), kv[0], kv[1], nbytes, self._clock))
        while len(entries) > self.size:
            entries.remove(min(entries, key=lambda e: e.used))
        total = self.nbytes
        while total > self.max_bytes:
            owner, oldest = min(((a, e) for a, es in self._by.items() for e in es), key=lambda ae: ae[1].used)
            self._by[owner].remove(oldest)
            total -= oldest.nbytes


def _common(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _generator(params: SamplingParams) -> Any:
    if params.greedy:
        return None
    import torch

    g = torch.Generator()
    g.manual_seed(params.seed if params.seed is not None else random.getrandbits(63))
    return g


def _sample(logits: Any, params: SamplingParams, gen: Any) -> int:
    """One token from a row's logits with its temperature, top_p and generator."""
    import torch

    probs = torch.softmax(logits / max(params.temperature, 1e-5), dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < params.top_p
        keep[0] = True
        filtered = torch.zeros_like(probs)
        filtered[order[keep]] = sorted_p[keep]
        probs = filtered
    return int(torch.multinomial(probs.cpu(), 1, generator=gen).item())


def _call(fn: Callable[[str], None], text: str) -> None:
    try:
        fn(text)
    except Exception:  # a client that went away must not stop the batch
        pass


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [text.find(s) for s in stops if s]
    found = [i for i in found if i >= 0]
    return min(found) if found else None


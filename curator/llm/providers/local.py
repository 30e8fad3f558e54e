"""``local:NAME|PATH``: a model on this machine, behind the async provider interface.

Generation goes through a :class:`~curator.llm.engine.GenerationEngine` (``engine="transformers"``,
the default, or ``"vllm"`` on a CUDA GPU), with the shared chat templating, batched: concurrent
:meth:`LocalProvider.complete` calls are gathered into one ``generate`` call of up to ``batch_size``
conversations, run in a worker thread so the event loop stays free.  The model is loaded once per
provider instance, on first use.  Cost is always 0 and ``remote`` is False.  The engine is not part of
a request's cache key.  Without torch or transformers the constructor raises
:class:`~curator.errors.MissingDependency` (``pip install 'curator-loop[train]'``); ``engine="vllm"``
without CUDA or vLLM stops there too, with what to do instead.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from curator.errors import CuratorError, ProviderError, require
from curator.llm.providers.base import Completion, GenParams, Provider

__all__ = ["DEFAULT_BATCH_SIZE", "LocalProvider"]

DEFAULT_BATCH_SIZE = 8
LOCAL_EXTRA = "train"  # the optional dependency group with torch and transformers


class LocalProvider(Provider):
    """A local causal LM (``"smollm2-135m-instruct"`` or a model folder path).

    ``batch_size``: the most conversations per ``generate`` call; ``max_wait``: how long the
    first queued request waits for others to fill its batch (seconds).
    """

    name = "local"
    remote = False

    def __init__(
        self,
        name_or_path: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_wait: float = 0.05,
        dtype: str = "auto",
        engine: str = "transformers",
        api_key: str | None = None,  # accepted and ignored, like the other remote-only options
        timeout: float | None = None,
    ) -> None:
        from curator.llm.engine import make_engine

        if not name_or_path:
            raise ProviderError("local: a model name or folder is required")
        for module in ("torch", "transformers"):
            require(module, LOCAL_EXTRA, "the local provider (local:NAME|PATH)")
        if batch_size < 1:
            raise ProviderError("local: batch_size must be >= 1")
        self.model = name_or_path
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.dtype = dtype
        options: dict[str, Any] = {"merge": False} if engine == "transformers" else {}
        self.engine = make_engine(engine, name_or_path, dtype=dtype, batch_size=batch_size, **options)
        self._load_lock = threading.Lock()
        self._queue: list[tuple[list[dict[str, Any]], GenParams, asyncio.Future[Completion]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []  # sizes of the generate calls made, for tests and benchmarks

    # -- model --------------------------------------------------------------------------------------
    def load(self) -> Any:
        """The engine with its model loaded (on the first call); a model that cannot load is a ProviderError."""
        from curator.llm.engine import TransformersEngine

        with self._load_lock:
            try:
                if isinstance(self.engine, TransformersEngine):
                    self.engine.load()
                else:
                    self.engine.tokenizer  # noqa: B018 - loads it
            except CuratorError as e:
                raise ProviderError(f"{self.spec}: {e}") from e
        return self.engine

    def generate_batch(self, conversations: list[list[dict[str, Any]]], params: GenParams) -> list[Completion]:
        """Blocking: one batched ``generate`` call of the engine (stop strings are applied to the decoded text)."""
        outs = self.load().generate(conversations, params, batch_size=len(conversations))
        self.batch_sizes.append(len(conversations))
        result = []
        for o in outs:
            text, finish = o.text, o.finish_reason
            for s in params.stop or []:
                cut = text.find(s)
                if cut != -1:
                    text, finish = text[:cut], "stop"
            raw = {"model": self.model, "text": text, "finish_reason": finish,
                   "usage": {"input_tokens": o.prompt_tokens, "output_tokens": o.output_tokens}}
            result.append(Completion(text=text, input_tokens=o.prompt_tokens, output_tokens=o.output_tokens,
                                     finish_reason=finish, raw=raw))
        return result

    # -- async interface ----------------------------------------------------------------------------
    async def complete(self, messages: list[dict[str, Any]], params: GenParams) -> Completion:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Completion] = loop.create_future()
        self._queue.append(([{"role": m["role"], "content": m["content"]} for m in messages], params, fut))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._queue:
            if len(self._queue) < self.batch_size:
                # Let concurrent callers join the batch: a few loop turns, then up to max_wait.
                for _ in range(3):
                    await asyncio.sleep(0)
                waited = 0.0
                while len(self._queue) < self.batch_size and waited < self.max_wait:
                    await asyncio.sleep(0.005)
                    waited += 0.005
            params = self._queue[0][1]
            batch = [item for item in self._queue if item[1] == params][: self.batch_size]
            taken = {id(item) for item in batch}
            self._queue = [item for item in self._queue if id(item) not in taken]
            live = [item for item in batch if not item[2].cancelled()]
            if not live:
                continue
            try:
                outs = await asyncio.to_thread(self.generate_batch, [m for m, _, _ in live], params)
            except ProviderError as e:
                for _, _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            except Exception as e:  # noqa: BLE001 - a model failure is this batch's error, not the loop's
                err = ProviderError(f"{self.spec}: generation failed: {type(e).__name__}: {e}")
                for _, _, fut in live:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for (_, _, fut), out in zip(live, outs, strict=True):
                if not fut.done():
                    fut.set_result(out)

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self.engine.close()

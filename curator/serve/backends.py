"""The local backend: :class:`curator.llm.continuous.Engine` seen from the event loop.

The engine's callbacks run on its worker thread; here they are handed to the event loop with
``call_soon_threadsafe`` into one :class:`asyncio.Queue` per request, which the route reads.  Nothing
waits on a client: a slow reader only slows its own response, and a request whose client went away
(or whose deadline passed) is cancelled and stops generating at the next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from curator.llm.continuous import Engine, GenRequest, SamplingParams
from curator.serve.app import ApiError, Completion, ServedModel

__all__ = ["LocalBackend"]


class _LocalHandle:
    def __init__(self, req: GenRequest, queue: asyncio.Queue[str | Completion]) -> None:
        self.req = req
        self.queue = queue

    async def events(self) -> AsyncIterator[str | Completion]:
        while True:
            ev = await self.queue.get()
            yield ev
            if isinstance(ev, Completion):
                return

    def cancel(self) -> None:
        self.req.cancel()


class LocalBackend:
    """Generation on this machine (CPU or one CUDA device) with the batching engine."""

    name = "transformers"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def start(self, messages: list[dict[str, Any]], served: ServedModel, params: SamplingParams,
                    deadline: float, stream: bool) -> _LocalHandle:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[str | Completion] = asyncio.Queue()
        try:
            prompt = self.engine.encode(messages)
        except Exception as e:  # a chat template that rejects the roles or their order
            raise ApiError(400, f"messages: the model's chat template rejected them: {e}", param="messages",
                           code="invalid_value") from None

        def on_delta(text: str) -> None:
            loop.call_soon_threadsafe(q.put_nowait, text)

        def on_done(r: GenRequest) -> None:
            meta: dict[str, Any] = {"batch_size": r.batch_size}
            if r.started_at is not None:
                meta["queue_ms"] = round((r.started_at - r.queued_at) * 1000, 2)
            if r.error is not None:
                meta["error"] = f"{type(r.error).__name__}: {r.error}"
            done = Completion(r.text, len(r.prompt_ids), len(r.tokens), r.finish_reason or "error", meta)
            loop.call_soon_threadsafe(q.put_nowait, done)

        req = GenRequest(prompt, params, adapter=served.adapter, stream=stream, deadline=deadline,
                         on_delta=on_delta if stream else None, on_done=on_done)
        try:
            self.engine.submit(req)
        except ValueError as e:
            raise ApiError(400, str(e), param="messages", code="context_length_exceeded") from None
        return _LocalHandle(req, q)

    def describe(self) -> dict[str, Any]:
        e = self.engine
        return {"max_batch": e.max_batch, "mixed_adapter_batches": e.mixed, "batches": e.batches,
                "generated_tokens": e.generated_tokens, "queued": e.queued}

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.engine.stop)

"""Anthropic's Messages API through the official ``anthropic.AsyncAnthropic`` client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
from anthropic.types import Message

from curator.errors import MissingKeyError, ProviderError
from curator.llm.providers.base import (
    BatchItem,
    BatchState,
    Completion,
    GenParams,
    MalformedResponseError,
    Provider,
    error_for_status,
    transport_error,
    usage_count,
)
from curator.llm.providers.http import http_client

__all__ = ["AnthropicProvider", "to_anthropic_messages"]

KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return list(content)
    raise ProviderError(f"anthropic: message content must be text or a list of blocks, got {type(content)}")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [b.get("text", "") for b in _blocks(content) if isinstance(b, dict) and b.get("type") == "text"]
    return "".join(parts)


def to_anthropic_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Split chat messages into Anthropic's ``(system, messages)``.

    Every ``system`` message moves into the system prompt (joined by blank lines); consecutive
    messages of the same role merge into one (text joined by blank lines, block lists concatenated).
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        content = m.get("content", "")
        if role == "system":
            text = _text_of(content)
            if text:
                system.append(text)
            continue
        if role not in ("user", "assistant"):
            raise ProviderError(f"anthropic: unsupported message role {role!r}")
        if out and out[-1]["role"] == role:
            prev = out[-1]["content"]
            if isinstance(prev, str) and isinstance(content, str):
                out[-1]["content"] = prev + "\n\n" + content
            else:
                out[-1]["content"] = _blocks(prev) + _blocks(content)
        else:
            out.append({"role": role, "content": content})
    return ("\n\n".join(system) if system else None), out


class AnthropicProvider(Provider):
    """``anthropic:MODEL``; key from ``api_key`` or ``$ANTHROPIC_API_KEY``.

    The Messages API of this SDK takes no temperature, top_p or seed: only ``max_tokens`` and
    ``stop`` (as ``stop_sequences``) of :class:`GenParams` are sent.
    """

    name = "anthropic"
    remote = True
    batch_api = True
    batch_limits = (100_000, 240 * 2**20)  # Message Batches take 100,000 requests and 256 MB per batch

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        if not model:
            raise ProviderError("anthropic: a model name is required")
        self.model = model
        key = api_key if api_key is not None else os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise MissingKeyError(KEY_ENV, self.name)
        self.base_url = base_url or os.environ.get(BASE_URL_ENV) or None
        self._client = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout,
            default_headers=default_headers,
            http_client=http_client(anthropic),
        )

    def _request(self, messages: list[dict[str, Any]], params: GenParams) -> dict[str, Any]:
        system, msgs = to_anthropic_messages(messages)
        if not msgs:
            raise ProviderError(f"{self.spec}: no user or assistant message to send")
        req: dict[str, Any] = {"model": self.model, "messages": msgs, "max_tokens": params.max_tokens}
        if system is not None:
            req["system"] = system
        if params.stop:
            req["stop_sequences"] = list(params.stop)
        return req

    async def complete(self, messages: list[dict[str, Any]], params: GenParams) -> Completion:
        req = self._request(messages, params)
        try:
            resp = await self._client.messages.create(**req)
        except anthropic.APIStatusError as e:
            raise error_for_status(self.spec, e.status_code, e.message, e.response.headers) from e
        except anthropic.APIConnectionError as e:  # timeouts included
            raise transport_error(self.spec, e, isinstance(e, anthropic.APITimeoutError)) from e
        except anthropic.AnthropicError as e:
            raise ProviderError(f"{self.spec}: {type(e).__name__}: {e}") from e
        except ValueError as e:  # a JSON body that does not parse
            raise MalformedResponseError(f"{self.spec}: malformed response: {e}") from e
        return self._to_completion(resp)

    def _to_completion(self, resp: object) -> Completion:
        if not isinstance(resp, Message):
            raise MalformedResponseError(f"{self.spec}: malformed response: expected a JSON message")
        try:
            text = "".join(b.text for b in resp.content if b.type == "text")
            stop = resp.stop_reason
            finish = _FINISH.get(stop, stop) if stop else "unknown"
            raw = resp.model_dump(mode="json", warnings=False)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise MalformedResponseError(f"{self.spec}: malformed response: {type(e).__name__}: {e}") from e
        usage = getattr(resp, "usage", None)  # a bad usage never loses the reply (runner.py)
        input_tokens = usage_count(getattr(usage, "input_tokens", None))
        output_tokens = usage_count(getattr(usage, "output_tokens", None))
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            finish_reason=str(finish),
            raw=raw,
        )

    def secrets(self) -> list[str]:
        return [str(self._client.api_key or "")]

    # -- Message Batches: /v1/messages/batches, then a JSONL of results -------------------------------------------
    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """The SDK's errors of a batch call as RetryableError / ProviderError (as :meth:`complete` maps them)."""
        try:
            yield
        except anthropic.APIStatusError as e:
            raise error_for_status(f"{self.spec} ({what})", e.status_code, e.message, e.response.headers) from e
        except anthropic.APIConnectionError as e:
            raise transport_error(f"{self.spec} ({what})", e, isinstance(e, anthropic.APITimeoutError)) from e
        except anthropic.AnthropicError as e:
            raise ProviderError(f"{self.spec} ({what}): {type(e).__name__}: {e}") from e

    async def submit_batch(self, items: list[BatchItem], tag: str) -> tuple[str, str | None]:
        """One Message Batch (``tag`` is not sent: the API has no field for it, see :meth:`find_batch`)."""
        requests: Any = [{"custom_id": cid, "params": self._request(messages, params)} for cid, messages, params in items]
        with self._errors("batch create"):
            batch = await self._client.messages.batches.create(requests=requests)
        return batch.id, None

    async def poll_batch(self, batch_id: str) -> BatchState:
        with self._errors("batch poll"):
            b = await self._client.messages.batches.retrieve(batch_id)
        c = b.request_counts
        done = c.succeeded + c.errored + c.canceled + c.expired
        return BatchState(b.id, b.processing_status, b.processing_status == "ended", done, done + c.processing,
                          b.model_dump(mode="json", warnings=False))

    async def batch_results(self, state: BatchState) -> dict[str, Completion | ProviderError]:
        out: dict[str, Completion | ProviderError] = {}
        with self._errors("batch results"):
            async for item in await self._client.messages.batches.results(state.id):
                result = item.result
                if result.type == "succeeded":
                    try:
                        out[item.custom_id] = self._to_completion(result.message)
                    except ProviderError as e:
                        out[item.custom_id] = e
                elif result.type == "errored":
                    err = result.error.error
                    out[item.custom_id] = ProviderError(f"{self.spec}: batch request errored: "
                                                        f"{getattr(err, 'type', 'error')}: {getattr(err, 'message', '')}")
                else:  # canceled, expired
                    out[item.custom_id] = ProviderError(f"{self.spec}: batch request {result.type}")
        return out

    async def aclose(self) -> None:
        await self._client.close()

"""OpenAI chat completions through the official ``openai.AsyncOpenAI`` client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import orjson

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

__all__ = ["OpenAIProvider"]


class OpenAIProvider(Provider):
    """``openai:MODEL``: the OpenAI API (or any base URL speaking it).

    The key comes from ``api_key`` or ``$OPENAI_API_KEY`` (MissingKeyError if neither);
    the base URL from ``base_url`` or ``$OPENAI_BASE_URL``.  The SDK's own retries are off:
    failures surface at once as RetryableError / ProviderError.
    """

    name = "openai"
    remote = True
    batch_api = True
    batch_limits = (50_000, 190 * 2**20)  # the Batch API takes 50,000 requests and 200 MB per input file
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    # OpenAI deprecated ``max_tokens`` for chat completions; servers that copy the API still want it.
    max_tokens_field = "max_completion_tokens"

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
            raise ProviderError(f"{self.name}: a model name is required")
        self.model = model
        key = api_key if api_key is not None else self._key_from_env()
        self.base_url = base_url or os.environ.get(self.base_url_env) or None
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout,
            default_headers=default_headers,
            http_client=http_client(openai),
        )

    def _key_from_env(self) -> str:
        key = os.environ.get(self.key_env, "").strip()
        if not key:
            raise MissingKeyError(self.key_env, self.name)
        return key

    def _request(self, messages: list[dict[str, Any]], params: GenParams) -> dict[str, Any]:
        req: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            self.max_tokens_field: params.max_tokens,
        }
        if params.seed is not None:
            req["seed"] = params.seed
        if params.stop:
            req["stop"] = list(params.stop)
        return req

    async def complete(self, messages: list[dict[str, Any]], params: GenParams) -> Completion:
        # ``client.post`` is the SDK's documented way to send a body as it is: the typed
        # ``chat.completions.create`` walks every message through its TypedDict transform and builds
        # pydantic models of the reply, about 1.4 ms of CPU per request here (profiled at 32 in
        # flight, where the client's CPU is what limits throughput).  Errors, headers, timeouts and
        # the base URL are the SDK's all the same.
        try:
            content = await self._client.post("/chat/completions", body=self._request(messages, params),
                                              cast_to=bytes)
            body = orjson.loads(content)
        except openai.APIStatusError as e:
            raise error_for_status(self.spec, e.status_code, e.message, e.response.headers) from e
        except openai.APIConnectionError as e:  # timeouts included
            raise transport_error(self.spec, e, isinstance(e, openai.APITimeoutError)) from e
        except openai.OpenAIError as e:  # response validation and the like
            raise ProviderError(f"{self.spec}: {type(e).__name__}: {e}") from e
        except orjson.JSONDecodeError as e:  # a body that does not parse (an HTML page, a cut-off body)
            start = " ".join(content[:60].decode("utf-8", "replace").split()) if isinstance(content, bytes) else ""
            raise MalformedResponseError(f"{self.spec}: malformed response: not JSON ({e})"
                                         + (f"; it starts {start!r}" if start else "")) from e
        return self._to_completion(body)

    def _to_completion(self, resp: object) -> Completion:
        if not isinstance(resp, dict) or not isinstance(resp.get("choices"), list):
            raise MalformedResponseError(f"{self.spec}: malformed response: expected a JSON chat completion")
        if not resp["choices"]:
            raise MalformedResponseError(f"{self.spec}: malformed response: no choices in the reply")
        try:
            choice = resp["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
            finish = choice.get("finish_reason") or "unknown"
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
            raise MalformedResponseError(f"{self.spec}: malformed response: {type(e).__name__}: {e}") from e
        if not isinstance(text, str):
            raise MalformedResponseError(f"{self.spec}: malformed response: message content is not text")
        usage = resp.get("usage")
        usage = usage if isinstance(usage, dict) else {}  # a bad usage never loses the reply (runner.py)
        input_tokens = usage_count(usage.get("prompt_tokens"))
        output_tokens = usage_count(usage.get("completion_tokens"))
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            finish_reason=str(finish),
            raw=resp,
        )

    def secrets(self) -> list[str]:
        return [str(self._client.api_key or "")]

    # -- the Batch API: an input file of requests, /v1/batches, an output file of replies -------------------------
    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """The SDK's errors of a batch call as RetryableError / ProviderError (as :meth:`complete` maps them)."""
        try:
            yield
        except openai.APIStatusError as e:
            raise error_for_status(f"{self.spec} ({what})", e.status_code, e.message, e.response.headers) from e
        except openai.APIConnectionError as e:
            raise transport_error(f"{self.spec} ({what})", e, isinstance(e, openai.APITimeoutError)) from e
        except openai.OpenAIError as e:
            raise ProviderError(f"{self.spec} ({what}): {type(e).__name__}: {e}") from e

    async def submit_batch(self, items: list[BatchItem], tag: str) -> tuple[str, str | None]:
        lines = b"".join(orjson.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                                       "body": self._request(messages, params)}) + b"\n"
                         for cid, messages, params in items)
        with self._errors("batch input upload"):
            upload = await self._client.files.create(file=(f"curator-{tag}.jsonl", lines, "application/jsonl"),
                                                     purpose="batch")
        with self._errors("batch create"):
            batch = await self._client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                      completion_window="24h", metadata={"curator_batch": tag})
        return batch.id, upload.id

    async def find_batch(self, tag: str) -> str | None:
        """The batch whose metadata carries ``tag``, among the 500 newest (a kill between create and record)."""
        seen = 0
        with self._errors("batch list"):
            async for b in self._client.batches.list(limit=100):
                if (b.metadata or {}).get("curator_batch") == tag:
                    return str(b.id)
                seen += 1
                if seen >= 500:
                    break
        return None

    async def poll_batch(self, batch_id: str) -> BatchState:
        with self._errors("batch poll"):
            b = await self._client.batches.retrieve(batch_id)
        counts = b.request_counts
        done, total = (counts.completed + counts.failed, counts.total) if counts is not None else (0, 0)
        ended = b.status in ("completed", "failed", "expired", "cancelled")
        return BatchState(b.id, b.status, ended, done, total, b.model_dump(mode="json", warnings=False))

    async def batch_results(self, state: BatchState) -> dict[str, Completion | ProviderError]:
        out: dict[str, Completion | ProviderError] = {}
        for field in ("output_file_id", "error_file_id"):
            fid = state.raw.get(field)
            if not fid:
                continue
            with self._errors("batch results"):
                content = (await self._client.files.content(fid)).content
            for n, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                    cid = str(rec["custom_id"])
                except (orjson.JSONDecodeError, KeyError, TypeError) as e:
                    raise MalformedResponseError(f"{self.spec}: batch {state.id} {field} line {n}: {e}") from e
                out[cid] = self._batch_line(rec)
        errors = (state.raw.get("errors") or {}).get("data") or []
        if state.status == "failed" and errors:  # the input was refused as a whole: no file, one reason
            why = "; ".join(str(e.get("message", "")) for e in errors[:3])
            out.setdefault("*", ProviderError(f"{self.spec}: batch {state.id} failed: {why}"))
        return out

    def _batch_line(self, rec: dict[str, Any]) -> Completion | ProviderError:
        """One line of an output or error file: the completion, or the request's error."""
        resp = rec.get("response") or {}
        status = resp.get("status_code")
        if rec.get("error"):
            err = rec["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            return ProviderError(f"{self.spec}: batch request failed: {msg}")
        body = resp.get("body")
        if status != 200:
            msg = ((body or {}).get("error") or {}).get("message", "") if isinstance(body, dict) else str(body)
            return error_for_status(self.spec, int(status or 0), str(msg))
        try:
            return self._to_completion(body)
        except ProviderError as e:
            return e

    async def aclose(self) -> None:
        await self._client.close()

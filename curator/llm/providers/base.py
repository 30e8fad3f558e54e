"""The small async interface every teacher / judge provider implements.

A provider turns a chat (``[{"role": ..., "content": ...}, ...]``) plus :class:`GenParams`
into one :class:`Completion`.  Providers never retry: they raise :class:`RetryableError`
for failures that may pass (429, 5xx, timeouts, dropped connections) and a plain
:class:`~curator.errors.ProviderError` for those that will not (other 4xx, malformed
responses).  Curator's own retry loop decides what to do with them.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from curator.errors import ProviderError

__all__ = [
    "PROVIDER_KINDS",
    "SPEC_FORMS",
    "BatchItem",
    "BatchState",
    "Completion",
    "GenParams",
    "MalformedResponseError",
    "Provider",
    "RetryableError",
    "error_for_status",
    "failure_reason",
    "is_retryable_status",
    "parse_retry_after",
    "parse_spec",
    "usage_count",
]

PROVIDER_KINDS = ("openai", "anthropic", "compatible", "local")

SPEC_FORMS = (
    "openai:MODEL",
    "anthropic:MODEL",
    "compatible:BASE_URL:MODEL (BASE_URL starts with http:// or https://)",
    "local:NAME|PATH",
)


class RetryableError(ProviderError):
    """A provider failure that may pass on a later try (429, 5xx, 408/409, timeout, connection).

    ``retry_after`` is the server's ``Retry-After`` hint in seconds when it sent one;
    ``status`` is the HTTP status, ``None`` for timeouts and connection errors.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.reason = reason or (f"http-{status}" if status is not None else "connection")


class MalformedResponseError(ProviderError):
    """A reply that is not a usable chat completion (not JSON, HTML, truncated, no choices...)."""

    reason = "malformed-response"


def failure_reason(err: BaseException) -> str:
    """A short word for why a request failed, to count failures by: ``http-429``, ``timeout``,
    ``deadline``, ``connection``, ``malformed-response``, ``http-400``... (``error`` otherwise)."""
    reason = getattr(err, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    m = re.search(r": HTTP (\d{3})\b", str(err))
    return f"http-{m.group(1)}" if m else "error"


def usage_count(value: object) -> int | None:
    """A token count from a reply's ``usage``: a non-negative whole number, else None (missing or invalid).

    Servers send what they like: negative counts, strings, floats, ``1e30``; none of it may reach
    the budget as it is (see :meth:`curator.llm.runner.Runner` for how None is charged).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0 or value != int(value):
            return None
        value = int(value)
    if not isinstance(value, int) or value < 0:
        return None
    return value


@dataclass
class Completion:
    """One reply of a provider."""

    text: str
    input_tokens: int | None  # None: the reply's usage is missing or invalid (see usage_count)
    output_tokens: int | None
    finish_reason: str  # "stop", "length", "content_filter", "tool_calls" or the provider's own word
    raw: dict[str, Any] = field(repr=False)


@dataclass
class GenParams:
    """Sampling parameters; a provider ignores those its API lacks."""

    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["stop"] is not None:
            d["stop"] = list(d["stop"])
        return d


#: One request of a provider batch: (custom id, the chat, its parameters).
BatchItem = tuple[str, list[dict[str, Any]], GenParams]


@dataclass
class BatchState:
    """A provider batch as one poll saw it.

    ``status`` is the provider's own word (``validating``, ``in_progress``, ``completed``, ``ended``...);
    ``ended``: processing is over and the results can be collected (they may be partial: an expired or
    cancelled batch); ``done`` / ``total``: requests processed so far, as far as the provider says.
    """

    id: str
    status: str
    ended: bool
    done: int
    total: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


class Provider(ABC):
    """A teacher or judge model behind an async ``complete``.

    Subclasses set ``name`` (e.g. ``"openai"``), ``model`` and ``remote`` and may override
    ``spec`` (default ``"NAME:MODEL"``).  Use as ``async with provider: ...`` or call
    :meth:`aclose` when done.

    A provider with a batch API (``batch_api = True``: OpenAI's Batch API, Anthropic's Message Batches)
    also implements :meth:`submit_batch`, :meth:`poll_batch` and :meth:`batch_results`
    (:mod:`curator.llm.batch` drives them); ``batch_limits`` is (requests, bytes) per batch.
    """

    name: str = ""
    model: str = ""
    remote: bool = True
    batch_api: bool = False
    batch_limits: tuple[int, int] = (0, 0)

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.model}"

    @abstractmethod
    async def complete(self, messages: list[dict[str, Any]], params: GenParams) -> Completion:
        """Return the model's reply to ``messages``; raise RetryableError or ProviderError."""

    def secrets(self) -> list[str]:
        """The credentials this provider sends (scrubbed from everything stored, with the known keys)."""
        return []

    # -- batch API (providers with ``batch_api = True``) ----------------------------------------------------
    async def submit_batch(self, items: list[BatchItem], tag: str) -> tuple[str, str | None]:
        """Submit ``items`` as one batch; ``(batch id, input file id or None)``.  ``tag`` is curator's own id
        of the batch, attached where the API allows (see :meth:`find_batch`)."""
        raise ProviderError(f"{self.spec}: this provider has no batch API")

    async def find_batch(self, tag: str) -> str | None:
        """The id of the batch submitted with ``tag``, when the API can tell (None: not found, or cannot say)."""
        return None

    async def poll_batch(self, batch_id: str) -> BatchState:
        """The batch's state now."""
        raise ProviderError(f"{self.spec}: this provider has no batch API")

    async def batch_results(self, state: BatchState) -> dict[str, Completion | ProviderError]:
        """The results of an ended batch by custom id: a completion, or why that request failed."""
        raise ProviderError(f"{self.spec}: this provider has no batch API")

    async def aclose(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release network clients or models."""

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


def is_retryable_status(status: int) -> bool:
    """True for statuses worth another try: 408, 409, 429 and every 5xx (529 overloaded included)."""
    return status in (408, 409, 429) or status >= 500


def error_for_status(
    spec: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The error to raise for an HTTP error status: RetryableError (with Retry-After) or ProviderError."""
    detail = " ".join(str(message).split())
    if len(detail) > 300:
        detail = detail[:297] + "..."
    text = f"{spec}: HTTP {status}: {detail}" if detail else f"{spec}: HTTP {status}"
    if is_retryable_status(status):
        return RetryableError(text, retry_after=parse_retry_after(headers), status=status)
    if 200 <= status < 300:  # an SDK that refused a 2xx body (an HTML page, say)
        return MalformedResponseError(text)
    return ProviderError(text)


def transport_error(spec: str, exc: BaseException, sdk_says_timeout: bool) -> RetryableError:
    """The error for a request that got no HTTP status: it timed out, or the connection failed.

    Judged by the innermost cause, not only by the SDK's class: the aiohttp transport reports a
    dropped connection as a connect *timeout* (its ``ClientConnectionError`` maps to httpx's
    ``ConnectTimeout``), and "request timed out" would send a user looking in the wrong place.
    Timeouts end in a ``TimeoutError`` (aiohttp, asyncio) or in one of httpcore's ``...Timeout``.
    """
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    if isinstance(root, TimeoutError) or type(root).__name__.endswith("Timeout") or (sdk_says_timeout and root is exc):
        return RetryableError(f"{spec}: request timed out", reason="timeout")
    detail = " ".join(str(root).split()) or type(root).__name__
    if "content length" in detail.lower() or "payload" in type(root).__name__.lower():
        return RetryableError(f"{spec}: truncated response: {detail}", reason="truncated-response")
    return RetryableError(f"{spec}: connection failed: {detail}", reason="connection")


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    ra = ra.strip()
    try:
        value = float(ra)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# scheme://host[:port][/path-without-colons]:MODEL — the port is taken possessively so that
# "http://h:8000" (no model) is rejected instead of read as host "h", model "8000".
_COMPATIBLE_RE = re.compile(
    r"(?P<url>https?://(?:\[[0-9A-Fa-f:.]+\]|[^/:\[\]\s]+)(?::\d+(?=[/:]|$))?+(?:/[^:\s]*)?):(?P<model>\S+)"
)


def _bad_spec(spec: str, why: str) -> ProviderError:
    forms = "; ".join(SPEC_FORMS)
    return ProviderError(f"bad provider spec {spec!r}: {why}. Accepted forms: {forms}")


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """Split a provider spec into ``(kind, model, base_url)``.

    * ``openai:MODEL`` and ``anthropic:MODEL`` -> ``(kind, MODEL, None)``; MODEL may hold colons
      (``openai:ft:gpt-4o-mini:org::abc``).
    * ``compatible:BASE_URL:MODEL`` -> ``("compatible", MODEL, BASE_URL)``.  BASE_URL is
      ``http(s)://HOST[:PORT][/PATH]`` and its path may not contain ``:``; everything after the
      colon that ends it is the model, so Ollama tags work:
      ``compatible:http://127.0.0.1:11434/v1:llama3:8b`` -> model ``llama3:8b``.
    * ``local:NAME|PATH`` -> ``("local", NAME|PATH, None)``.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise _bad_spec(str(spec), "expected KIND:...")
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in PROVIDER_KINDS:
        raise _bad_spec(spec, f"unknown provider {kind!r}")
    if kind == "compatible":
        if not rest.startswith(("http://", "https://")):
            raise _bad_spec(spec, "the base URL must start with http:// or https://")
        m = _COMPATIBLE_RE.fullmatch(rest)
        if m is None:
            raise _bad_spec(spec, "expected compatible:BASE_URL:MODEL (is the :MODEL part missing?)")
        return kind, m.group("model"), m.group("url").rstrip("/")
    model = rest.strip()
    if not model:
        raise _bad_spec(spec, "the model is missing")
    return kind, model, None

"""Teacher / judge providers behind one async interface, and the spec factory.

The SDK-backed classes (``OpenAIProvider``, ``CompatibleProvider``, ``AnthropicProvider``) are
imported on first use: the ``openai`` and ``anthropic`` SDKs take a second or more to import, and
every ``curator`` command would otherwise pay for it at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from curator.errors import require
from curator.llm.providers.base import (
    PROVIDER_KINDS,
    SPEC_FORMS,
    BatchItem,
    BatchState,
    Completion,
    GenParams,
    MalformedResponseError,
    Provider,
    RetryableError,
    error_for_status,
    failure_reason,
    is_retryable_status,
    parse_retry_after,
    parse_spec,
    usage_count,
)

if TYPE_CHECKING:
    from curator.llm.providers.anthropic import AnthropicProvider
    from curator.llm.providers.compatible import CompatibleProvider
    from curator.llm.providers.openai import OpenAIProvider

_LAZY = {"AnthropicProvider": ".anthropic", "CompatibleProvider": ".compatible", "OpenAIProvider": ".openai"}
_SDK = {"anthropic": "anthropic", "compatible": "openai", "openai": "openai"}  # each in the [synth] extra


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        require(_SDK[_LAZY[name][1:]], "synth", name)
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "PROVIDER_KINDS",
    "SPEC_FORMS",
    "AnthropicProvider",
    "BatchItem",
    "BatchState",
    "CompatibleProvider",
    "Completion",
    "GenParams",
    "MalformedResponseError",
    "OpenAIProvider",
    "Provider",
    "RetryableError",
    "error_for_status",
    "failure_reason",
    "is_retryable_status",
    "make_provider",
    "parse_retry_after",
    "parse_spec",
    "usage_count",
]


def make_provider(spec: str, **kw: Any) -> Provider:
    """Build the provider a spec names; ``kw`` goes to its constructor (api_key, timeout, ...).

    ``openai:MODEL``, ``anthropic:MODEL``, ``compatible:BASE_URL:MODEL``, ``local:NAME|PATH``.
    For ``local`` the module ``.local`` is imported only now and called as
    ``LocalProvider("NAME|PATH", **kw)``; without torch and transformers that raises
    :class:`~curator.errors.MissingDependency` (the ``pip install`` line of the extra), never a fallback.
    """
    kind, model, base_url = parse_spec(spec)
    if kind in _SDK:
        require(_SDK[kind], "synth", f"the {kind} provider")
    if kind == "openai":
        from curator.llm.providers.openai import OpenAIProvider

        return OpenAIProvider(model, **kw)
    if kind == "anthropic":
        from curator.llm.providers.anthropic import AnthropicProvider

        return AnthropicProvider(model, **kw)
    if kind == "compatible":
        from curator.llm.providers.compatible import CompatibleProvider

        assert base_url is not None
        return CompatibleProvider(base_url, model, **kw)
    from curator.llm.providers.local import LocalProvider

    return LocalProvider(model, **kw)

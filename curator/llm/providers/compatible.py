"""Any server with an OpenAI-style ``/chat/completions`` (vLLM, Ollama, llama.cpp, TGI...)."""

from __future__ import annotations

import os

from curator.errors import ProviderError
from curator.llm.providers.openai import OpenAIProvider

__all__ = ["CompatibleProvider"]

KEY_ENV = "CURATOR_COMPATIBLE_API_KEY"
PLACEHOLDER_KEY = "not-needed"


class CompatibleProvider(OpenAIProvider):
    """``compatible:BASE_URL:MODEL``; the key is ``$CURATOR_COMPATIBLE_API_KEY`` or a placeholder."""

    name = "compatible"
    key_env = KEY_ENV
    batch_api = False  # OpenAI's Batch API is OpenAI's: servers that copy the chat API do not have it
    max_tokens_field = "max_tokens"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ProviderError(f"compatible: base URL must start with http:// or https://, got {base_url!r}")
        super().__init__(
            model,
            api_key=api_key,
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            default_headers=default_headers,
        )

    def _key_from_env(self) -> str:
        return os.environ.get(KEY_ENV, "").strip() or PLACEHOLDER_KEY

    @property
    def spec(self) -> str:
        return f"compatible:{self.base_url}:{self.model}"

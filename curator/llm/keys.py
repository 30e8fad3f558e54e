"""API keys: where they come from, and keeping them out of everything curator stores or prints.

A provider's key is its environment variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
``CURATOR_COMPATIBLE_API_KEY``), else the same name in the keys file (``$CURATOR_KEYS_FILE``, default
``~/.config/curator/keys.yaml``, lines ``VARIABLE: key``).  :func:`known_secrets` lists every key
found in either place; :func:`scrub` and :func:`scrub_value` replace them with ``[REDACTED]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from curator.errors import ConfigError
from curator.yamlfile import read_yaml

__all__ = ["KEYS_FILE_ENV", "KEY_VARS", "REDACTED", "api_key", "keys_file", "known_secrets", "scrub", "scrub_value"]

KEYS_FILE_ENV = "CURATOR_KEYS_FILE"
KEY_VARS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "compatible": "CURATOR_COMPATIBLE_API_KEY"}
REDACTED = "[REDACTED]"
_MIN_SECRET = 6  # shorter "keys" ("x", "none") would redact ordinary words


def keys_file() -> Path:
    """``$CURATOR_KEYS_FILE`` or ``~/.config/curator/keys.yaml``."""
    return Path(os.environ.get(KEYS_FILE_ENV) or Path.home() / ".config" / "curator" / "keys.yaml")


def _file_keys() -> dict[str, str]:
    """``VARIABLE: key`` lines of the keys file; a key must be text (a number is taken as its digits)."""
    path = keys_file()
    if not path.exists():
        return {}
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError("expected lines of VARIABLE: key (e.g. OPENAI_API_KEY: sk-...)", str(path))
    out: dict[str, str] = {}
    for k, v in data.items():
        if v is None or v == "":
            continue
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise ConfigError(f"{k}: a key must be text, got {type(v).__name__}", str(path))
        key = str(v).strip()
        if not (key.isascii() and key.isprintable()):
            raise ConfigError(f"{k}: the key holds a line break, a control character or a non-ASCII character "
                              "(API keys are printable ASCII)", str(path))
        out[str(k)] = key
    return out


def api_key(kind: str) -> str | None:
    """The key of provider ``kind`` from the keys file, when its environment variable is not set.

    None when the variable is set (the provider reads it itself), when the file has none, or for a
    provider without keys (``local``).
    """
    var = KEY_VARS.get(kind)
    if var is None or os.environ.get(var, "").strip():
        return None
    return _file_keys().get(var) or None


def known_secrets(*extra: str | None) -> list[str]:
    """Every API key in the environment and the keys file (and ``extra``), longest first."""
    found = [os.environ.get(v, "").strip() for v in KEY_VARS.values()]
    found += [k for k in (api_key(kind) for kind in KEY_VARS) if k]
    found += [s.strip() for s in extra if s]
    return sorted({s for s in found if len(s) >= _MIN_SECRET}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``[REDACTED]``."""
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def scrub_value(value: Any, secrets: list[str]) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every secret in its strings (keys too) redacted."""
    if not secrets:
        return value
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {scrub(k, secrets) if isinstance(k, str) else k: scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, secrets) for v in value]
    return value

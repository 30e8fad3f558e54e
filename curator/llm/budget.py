"""Prices, cost bounds and the spend cap of a generation run.

The price table is ``curator/llm/prices.yaml`` (USD per 1M input / output tokens), with the
user's own entries merged over it from ``--prices FILE``, ``$CURATOR_PRICES`` or
``WORKSPACE/prices.yaml``.

:class:`Budget` is a hard cap: before a request starts, the most it could cost is *reserved*
(its input at the byte bound of :func:`max_input_tokens`, its output at ``max_tokens``); a request
whose reservation would take ``spent + reserved`` over the cap does not start *yet*: it waits until
a request in flight settles (its reservation released, its real cost counted) and tries again.
The run stops only when nothing is in flight and the next request still could cross the cap, so
a job spends up to its cap (less at most one request's bound) and never over it.  A reply's cost
is counted from its ``usage``, which the runner clamps into ``[0, bound]`` (a missing or invalid
count is charged at the bound): whatever the replies say, spending never crosses the cap.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from curator.errors import ConfigError, CuratorError

__all__ = [
    "Budget",
    "Price",
    "PriceTable",
    "PriceUnknownError",
    "estimate_input_tokens",
    "load_prices",
    "max_input_tokens",
]

PRICES_ENV = "CURATOR_PRICES"
_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$")


class PriceUnknownError(CuratorError):
    """A budget was asked for, but a model of the run has no price."""


@dataclass(frozen=True)
class Price:
    """USD per one million input and output tokens."""

    input_per_m: float
    output_per_m: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1e6


FREE = Price(0.0, 0.0)


class PriceTable:
    """``provider -> model -> Price``, with the lookup rules of the price file."""

    def __init__(self, entries: dict[str, dict[str, Price]], sources: list[str]) -> None:
        self.entries = entries
        self.sources = sources

    def lookup(self, kind: str, model: str) -> Price | None:
        """The price of ``model`` at provider ``kind``; None when unknown.  Local models are free."""
        if kind == "local":
            return FREE
        table = self.entries.get(kind, {})
        candidates = [model]
        if model.startswith("ft:"):
            base = model.split(":")[1] if len(model.split(":")) > 1 else ""
            candidates.append(f"ft:{base}")
            candidates.append(f"ft:{_SUFFIX.sub('', base)}")
        candidates.append(_SUFFIX.sub("", model))
        for name in candidates:
            if name in table:
                return table[name]
        return None

    def where(self) -> str:
        """Where a user adds a price (for error messages)."""
        return self.sources[-1] if len(self.sources) > 1 else f"a prices file (--prices FILE or ${PRICES_ENV})"


def _parse(data: Any, source: str) -> dict[str, dict[str, Price]]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected PROVIDER: {MODEL: {input: N, output: N}}", source)
    out: dict[str, dict[str, Price]] = {}
    problems: list[str] = []
    for kind, models in data.items():
        if models is None:
            models = {}
        if not isinstance(models, dict):
            problems.append(f"{kind}: expected a mapping of models")
            continue
        table: dict[str, Price] = {}
        for model, p in models.items():
            if not isinstance(p, dict) or "input" not in p or "output" not in p:
                problems.append(f"{kind}.{model}: expected {{input: USD per 1M, output: USD per 1M}}")
                continue
            try:
                inp, outp = float(p["input"]), float(p["output"])
            except (TypeError, ValueError):
                problems.append(f"{kind}.{model}: input and output must be numbers")
                continue
            if inp < 0 or outp < 0:
                problems.append(f"{kind}.{model}: prices cannot be negative")
                continue
            table[str(model)] = Price(inp, outp)
        out[str(kind)] = table
    if problems:
        raise ConfigError(problems, source)
    return out


@functools.cache
def _bundled_prices() -> dict[str, dict[str, Price]]:
    """The bundled table, parsed once per process (12 ms of YAML otherwise, on every generate call)."""
    bundled = resources.files("curator.llm").joinpath("prices.yaml").read_text(encoding="utf-8")
    return _parse(yaml.safe_load(bundled), "curator/llm/prices.yaml")


def load_prices(path: str | Path | None = None, workspace_dir: str | Path | None = None) -> PriceTable:
    """The bundled price table with, merged over it, ``WORKSPACE/prices.yaml``, ``$CURATOR_PRICES`` and ``path``."""
    entries = {kind: dict(models) for kind, models in _bundled_prices().items()}
    sources = ["curator/llm/prices.yaml"]
    extra: list[Path] = []
    if workspace_dir is not None and (Path(workspace_dir) / "prices.yaml").is_file():
        extra.append(Path(workspace_dir) / "prices.yaml")
    if os.environ.get(PRICES_ENV):
        extra.append(Path(os.environ[PRICES_ENV]))
    if path is not None:
        extra.append(Path(path))
    for p in extra:
        if not p.is_file():
            raise ConfigError(f"prices file {p} not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"not valid YAML: {e}", str(p)) from None
        for kind, models in _parse(data, str(p)).items():
            entries.setdefault(kind, {}).update(models)
        sources.append(str(p))
    return PriceTable(entries, sources)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)


def max_input_tokens(messages: list[dict[str, Any]]) -> int:
    """A hard upper bound on the input tokens of a chat: its UTF-8 bytes plus per-message overhead.

    No byte-level BPE tokenizer makes more tokens than bytes; 8 tokens per message and 32 per request
    cover the role markers and framing the APIs add.
    """
    return 32 + sum(8 + len(_content_text(m.get("content", "")).encode("utf-8")) for m in messages)


def estimate_input_tokens(messages: list[dict[str, Any]]) -> int:
    """A typical count (about 4 characters a token), for dry-run estimates, not for the cap."""
    return 8 + sum(4 + len(_content_text(m.get("content", ""))) // 4 for m in messages)


class Budget:
    """Spend so far, reservations of requests in flight, and the cap (None: no cap, just counting)."""

    def __init__(self, cap: float | None, already_spent: float = 0.0) -> None:
        if cap is not None and (not math.isfinite(cap) or cap < 0):
            raise ConfigError(f"--budget must be a number >= 0, got {cap!r}")
        self.cap = cap
        self.spent = float(already_spent)  # done: earlier runs of the job and this one
        self.spent_this_run = 0.0
        self.reserved = 0.0  # in flight, at their worst case
        self.holds = 0  # reservations in flight (free requests count too)
        self.exhausted = False  # the run stopped at the cap (set by the runner)

    def fits(self, amount: float) -> bool:
        """Whether a request that could cost ``amount`` may start now (``spent + reserved + amount <= cap``)."""
        return self.cap is None or self.spent + self.reserved + amount <= self.cap + 1e-12

    def try_reserve(self, amount: float) -> bool:
        """Reserve ``amount`` for a request about to start; False when it does not :meth:`fits` now."""
        if not self.fits(amount):
            return False
        self.reserved += amount
        self.holds += 1
        return True

    def settle(self, reserved: float, actual: float) -> None:
        """Swap a reservation for what the request really cost (0 when it failed).

        The runner's clamped usage keeps ``actual`` within ``[0, reserved]``; a negative or NaN
        cost is charged at the reservation here as well, so it never buys room under the cap.
        """
        if not math.isfinite(actual) or actual < 0:
            actual = reserved
        self.holds = max(0, self.holds - 1)
        self.reserved = max(0.0, self.reserved - reserved) if self.holds else 0.0  # no float residue
        self.spent += actual
        self.spent_this_run += actual

    @property
    def left(self) -> float | None:
        return None if self.cap is None else max(0.0, self.cap - self.spent)

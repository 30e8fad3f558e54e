"""Prices, cost bounds and the spend cap of a generation run.

The price table is ``curator/llm/prices.yaml`` (USD per 1M input / output tokens), with the
user's own entries merged over it from ``--prices FILE``, ``$CURATOR_PRICES`` or
``WORKSPACE/prices.yaml``.  Batch APIs (``curator generate --batch``) have prices of their own: a
model's ``batch_input`` / ``batch_output`` when its entry gives them, else its list price times the
provider's ``batch_discount`` (0.5 at OpenAI and Anthropic); ``lookup(kind, model, batch=True)``.

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
from curator.yamlfile import read_yaml

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
#: The highest price accepted, USD per 1M tokens (a typo such as 1e308 would make every cost infinite).
MAX_PRICE = 1e6
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


#: The key of ``prices.yaml`` that holds the batch discount per provider (not a provider itself).
BATCH_DISCOUNT_KEY = "batch_discount"


class PriceTable:
    """``provider -> model -> Price``, with the lookup rules of the price file.

    ``batch``: the explicit batch prices (``batch_input`` / ``batch_output`` of an entry);
    ``batch_discount``: provider -> the factor of the list price its batch API bills.
    """

    def __init__(self, entries: dict[str, dict[str, Price]], sources: list[str],
                 batch: dict[str, dict[str, Price]] | None = None,
                 batch_discount: dict[str, float] | None = None) -> None:
        self.entries = entries
        self.sources = sources
        self.batch = batch or {}
        self.batch_discount = batch_discount or {}

    @staticmethod
    def _candidates(model: str) -> list[str]:
        """The names ``model`` may be listed under, most specific first."""
        out = [model]
        if model.startswith("ft:"):
            base = model.split(":")[1] if len(model.split(":")) > 1 else ""
            out.append(f"ft:{base}")
            out.append(f"ft:{_SUFFIX.sub('', base)}")
        out.append(_SUFFIX.sub("", model))
        return out

    def lookup(self, kind: str, model: str, *, batch: bool = False) -> Price | None:
        """The price of ``model`` at provider ``kind``; None when unknown.  Local models are free.

        ``batch=True``: the price through the provider's batch API: the entry's own batch prices, else
        its list price times the provider's ``batch_discount``; None when neither is known.
        """
        if kind == "local":
            return FREE
        table, own, factor = self.entries.get(kind, {}), self.batch.get(kind, {}), self.batch_discount.get(kind)
        for name in self._candidates(model):
            if batch and name in own:
                return own[name]
            if name in table:
                if not batch:
                    return table[name]
                if factor is None:
                    return None
                return Price(table[name].input_per_m * factor, table[name].output_per_m * factor)
        return None

    def where(self) -> str:
        """Where a user adds a price (for error messages)."""
        return self.sources[-1] if len(self.sources) > 1 else f"a prices file (--prices FILE or ${PRICES_ENV})"


@dataclass
class _Parsed:
    entries: dict[str, dict[str, Price]]
    batch: dict[str, dict[str, Price]]
    discount: dict[str, float]


def _number(value: Any) -> float:
    """A price: a number (or a number written as text); never a boolean; finite and within MAX_PRICE."""
    if isinstance(value, bool):
        raise TypeError
    x = float(value)
    if not math.isfinite(x) or x > MAX_PRICE:
        raise OverflowError
    return x


def _parse(data: Any, source: str) -> _Parsed:
    parsed = _Parsed({}, {}, {})
    if data is None:
        return parsed
    if not isinstance(data, dict):
        raise ConfigError("expected PROVIDER: {MODEL: {input: N, output: N}}", source)
    out = parsed.entries
    problems: list[str] = []
    discounts = data.get(BATCH_DISCOUNT_KEY)
    if discounts is not None:
        if not isinstance(discounts, dict):
            problems.append(f"{BATCH_DISCOUNT_KEY}: expected {{PROVIDER: factor of the list price, 0-1}}")
        else:
            for kind, factor in discounts.items():
                try:
                    f = _number(factor)
                except (TypeError, ValueError, OverflowError):
                    f = -1.0
                if not 0 <= f <= 1:
                    problems.append(f"{BATCH_DISCOUNT_KEY}.{kind}: expected a number from 0 to 1, got {factor!r}")
                    continue
                parsed.discount[str(kind)] = f
    for kind, models in data.items():
        if kind == BATCH_DISCOUNT_KEY:
            continue
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
            try:  # YAML reads 1e-6 (no dot) as text: a number written as text is taken too, true/false are not
                if isinstance(p["input"], bool) or isinstance(p["output"], bool):
                    raise TypeError
                inp, outp = float(p["input"]), float(p["output"])
            except (TypeError, ValueError):
                problems.append(f"{kind}.{model}: input and output must be numbers")
                continue
            if not (math.isfinite(inp) and math.isfinite(outp)) or max(inp, outp) > MAX_PRICE:
                problems.append(f"{kind}.{model}: prices must be finite numbers of at most {MAX_PRICE:g} USD per 1M tokens")
                continue
            if inp < 0 or outp < 0:
                problems.append(f"{kind}.{model}: prices cannot be negative")
                continue
            table[str(model)] = Price(inp, outp)
            if "batch_input" in p or "batch_output" in p:
                try:
                    b_in, b_out = _number(p.get("batch_input")), _number(p.get("batch_output"))
                    if b_in < 0 or b_out < 0:
                        raise ValueError
                except (TypeError, ValueError, OverflowError):
                    problems.append(f"{kind}.{model}: batch_input and batch_output go together, as numbers >= 0 "
                                    f"of at most {MAX_PRICE:g} USD per 1M tokens")
                    continue
                parsed.batch.setdefault(str(kind), {})[str(model)] = Price(b_in, b_out)
        out[str(kind)] = table
    if problems:
        raise ConfigError(problems, source)
    return parsed


@functools.cache
def _bundled_prices() -> _Parsed:
    """The bundled table, parsed once per process (12 ms of YAML otherwise, on every generate call)."""
    bundled = resources.files("curator.llm").joinpath("prices.yaml").read_text(encoding="utf-8")
    return _parse(yaml.safe_load(bundled), "curator/llm/prices.yaml")


def load_prices(path: str | Path | None = None, workspace_dir: str | Path | None = None) -> PriceTable:
    """The bundled price table with, merged over it, ``WORKSPACE/prices.yaml``, ``$CURATOR_PRICES`` and ``path``."""
    bundled = _bundled_prices()
    entries = {kind: dict(models) for kind, models in bundled.entries.items()}
    batch = {kind: dict(models) for kind, models in bundled.batch.items()}
    discount = dict(bundled.discount)
    sources = ["curator/llm/prices.yaml"]
    extra: list[Path] = []
    if workspace_dir is not None and (Path(workspace_dir) / "prices.yaml").is_file():
        extra.append(Path(workspace_dir) / "prices.yaml")
    if os.environ.get(PRICES_ENV):
        extra.append(Path(os.environ[PRICES_ENV]))
    if path is not None:
        extra.append(Path(path))
    for p in extra:
        if not p.exists():
            raise ConfigError(f"prices file {p} not found")
        parsed = _parse(read_yaml(p), str(p))
        for kind, models in parsed.entries.items():
            entries.setdefault(kind, {}).update(models)
            for model in models:  # a user's list price replaces the bundled batch price of that model
                batch.get(kind, {}).pop(model, None)
        for kind, models in parsed.batch.items():
            batch.setdefault(kind, {}).update(models)
        discount.update(parsed.discount)
        sources.append(str(p))
    return PriceTable(entries, sources, batch, discount)


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

    def hold(self, amount: float) -> None:
        """Reserve ``amount`` whatever the cap says: money committed already (a provider batch that an
        earlier, interrupted run submitted and whose results are still to come)."""
        self.reserved += amount
        self.holds += 1

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

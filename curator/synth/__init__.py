"""Synthetic generation: teacher providers, prompt templates, the request cache, budget and filters.

``generate(ws, GenerateOptions(mode=..., teacher=..., n=...))`` (or ``generate(ws, mode=..., ...)``) is the
entry point; ``curator generate`` its command.  The request runner (retries, rate limits, cache, budget)
lives in :mod:`curator.llm`; ``RetryPolicy`` and ``RateLimiter`` are re-exported here.
"""

from __future__ import annotations

from curator.llm.budget import Budget, Price, PriceTable, PriceUnknownError, load_prices
from curator.llm.limits import RateLimiter, RetryPolicy
from curator.llm.providers import GenParams
from curator.synth.filters import FILTER_NAMES, FilterConfig
from curator.synth.generate import (
    DEFAULT_TEACHER,
    MODES,
    GenerateOptions,
    GenerateReport,
    Judge,
    Weakness,
    generate,
    load_questions,
    load_weaknesses,
)

__all__ = [
    "DEFAULT_TEACHER",
    "FILTER_NAMES",
    "MODES",
    "Budget",
    "FilterConfig",
    "GenParams",
    "GenerateOptions",
    "GenerateReport",
    "Judge",
    "Price",
    "PriceTable",
    "PriceUnknownError",
    "RateLimiter",
    "RetryPolicy",
    "Weakness",
    "generate",
    "load_prices",
    "load_questions",
    "load_weaknesses",
]

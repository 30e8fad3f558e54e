"""How hard the request runner may push a provider: retries with capped backoff, and rate limits.

:class:`RetryPolicy` decides how often a failing request is tried again and how long to wait in
between; :class:`RateLimiter` keeps requests and tokens per minute under the provider's quota.
Both are used by :mod:`curator.llm.runner`, for generation and for the judge alike.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass

from curator.errors import ConfigError

__all__ = ["DEFAULT_DEADLINE", "RateLimiter", "RetryPolicy"]

DEFAULT_DEADLINE = 300.0  # seconds one try of one request may take, end to end


@dataclass
class RetryPolicy:
    """Retries of one request on 429 / 5xx / timeouts / dropped connections, and its deadline.

    The wait is the server's ``Retry-After`` when it sends one, else ``base_delay * 2**(attempt-1)``
    times a random factor in [0.5, 1) (jitter); either way at most ``max_delay`` (a ``Retry-After``
    of an hour waits ``max_delay``, and the run says so).  ``deadline``: the most seconds one try
    may take from sending to the last byte of the reply (a server that drips a byte now and then
    never trips a read timeout, which restarts on every byte); a try past it counts as a timeout and
    is retried.  After ``max_attempts`` the request is recorded as failed and the run goes on;
    ``stop_after_failures`` failed requests in a row (no success in between) stop the run, since the
    provider is then down or the key is wrong.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    stop_after_failures: int = 10
    deadline: float = DEFAULT_DEADLINE

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts must be >= 1")
        for name in ("base_delay", "max_delay", "deadline"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0 or (name == "deadline" and v == 0):
                raise ConfigError(f"retry policy: {name} must be a positive number of seconds, got {v!r}")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before try ``attempt + 1`` (never more than ``max_delay``)."""
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, 0.0) * rng.uniform(1.0, 1.1), self.max_delay)
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)

    def caps(self, retry_after: float | None) -> bool:
        """Whether a server's ``Retry-After`` asks for longer than this policy waits."""
        return retry_after is not None and retry_after > self.max_delay


class RateLimiter:
    """Requests-per-minute and tokens-per-minute token buckets (None: no limit)."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._req = self._req_cap = max(1.0, (rpm or 0) / 60.0)
        self._tok = self._tok_cap = max(1.0, (tpm or 0) / 60.0)
        self._t = time.monotonic()

    async def acquire(self, tokens: int) -> None:
        """Wait until one more request of about ``tokens`` tokens fits in the limits."""
        if not self.rpm and not self.tpm:
            return
        while True:
            now = time.monotonic()
            dt, self._t = now - self._t, now
            if self.rpm:
                self._req = min(self._req_cap, self._req + dt * self.rpm / 60.0)
            if self.tpm:
                self._tok = min(self._tok_cap, self._tok + dt * self.tpm / 60.0)
            need_tok = min(tokens, self._tok_cap)  # a request bigger than a second's worth waits for a full bucket
            ok_req = not self.rpm or self._req >= 1.0
            ok_tok = not self.tpm or self._tok >= need_tok
            if ok_req and ok_tok:
                if self.rpm:
                    self._req -= 1.0
                if self.tpm:
                    self._tok -= tokens  # may go negative: later requests wait it off
                return
            wait = 0.0
            if self.rpm and not ok_req:
                wait = max(wait, (1.0 - self._req) * 60.0 / self.rpm)
            if self.tpm and not ok_tok:
                wait = max(wait, (need_tok - self._tok) * 60.0 / self.tpm)
            await asyncio.sleep(min(max(wait, 0.001), 5.0))

"""How hard the request runner may push a provider: retries with capped backoff, and rate limits.

:class:`RetryPolicy` decides how often a failing request is tried again and how long to wait in
between; :class:`RateLimiter` keeps requests and tokens per minute under the provider's quota.
Both are used by :mod:`curator.llm.runner`, for generation and for the judge alike.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

__all__ = ["RateLimiter", "RetryPolicy"]


@dataclass
class RetryPolicy:
    """Retries of one request on 429 / 5xx / timeouts / dropped connections.

    The wait is the server's ``Retry-After`` when it sends one (capped at ``10 * max_delay``), else
    ``base_delay * 2**(attempt-1)`` (capped at ``max_delay``) times a random factor in [0.5, 1)
    (jitter).  After ``max_attempts`` the request is recorded as failed and the run goes on;
    ``stop_after_failures`` failed requests in a row (no success in between) stop the run, since the
    provider is then down or the key is wrong.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    stop_after_failures: int = 10

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before try ``attempt + 1``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), 10 * self.max_delay) * rng.uniform(1.0, 1.1)
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


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

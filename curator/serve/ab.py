"""A/B routing in production: ``--ab champion=RUN_A,challenger=RUN_B:0.2``.

Requests for the model name ``champion`` go to the run of the challenger arm with probability 0.2 and
to the champion's run otherwise.  With a ``user`` field the choice is sticky: the arm is a hash of the
route name and the user (sha256, so it is the same on every server and after a restart); without one it
is drawn at random per request.  Every trace records the route (``ab_name``) and the arm (``ab_arm``);
``curator traces stats`` reports each arm's positive-feedback rate with a 95 % Wilson interval.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from curator.errors import CuratorError

__all__ = ["ABRoute", "parse_ab"]


@dataclass(frozen=True)
class ABRoute:
    """A served name split between two runs: ``arm_b`` gets ``fraction`` of the requests."""

    name: str
    run_a: str
    arm_b: str
    run_b: str
    fraction: float

    def pick(self, user: str | None = None, rng: random.Random | None = None) -> tuple[str, str]:
        """(arm label, run ref) for one request."""
        if user:
            digest = hashlib.sha256(f"{self.name}\x1f{user}".encode()).digest()
            u = int.from_bytes(digest[:8], "big") / 2**64
        else:
            u = (rng or random).random()
        return (self.arm_b, self.run_b) if u < self.fraction else (self.name, self.run_a)


def parse_ab(spec: str) -> ABRoute:
    """``NAME=RUN_A,ARM=RUN_B:FRACTION`` (e.g. ``champion=r-1,challenger=r-2:0.2``) -> :class:`ABRoute`."""
    usage = f"--ab {spec!r}: expected NAME=RUN_A,ARM=RUN_B:FRACTION, e.g. champion=r-1,challenger=r-2:0.2"
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2 or any("=" not in p for p in parts):
        raise CuratorError(usage)
    name, run_a = (s.strip() for s in parts[0].split("=", 1))
    arm_b, rest = (s.strip() for s in parts[1].split("=", 1))
    if ":" not in rest:
        raise CuratorError(usage + " (the fraction after ':' is missing)")
    run_b, frac = (s.strip() for s in rest.rsplit(":", 1))
    try:
        fraction = float(frac)
    except ValueError:
        raise CuratorError(usage + f" ({frac!r} is not a number)") from None
    if not 0.0 < fraction < 1.0:
        raise CuratorError(f"--ab {spec!r}: the fraction must be between 0 and 1 (exclusive), got {fraction:g}")
    if not name or not run_a or not arm_b or not run_b:
        raise CuratorError(usage)
    if name == arm_b:
        raise CuratorError(f"--ab {spec!r}: the two arms need different names")
    return ABRoute(name, run_a, arm_b, run_b, fraction)

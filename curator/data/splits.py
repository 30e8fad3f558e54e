"""Deterministic split assignment.

* A file ingested with ``--split S`` pins every example in it to ``S`` (how users bring their
  own held-out test set).
* Otherwise an example joins the split its *group* already has (the group is the normalised
  first user turn, so one prompt never sits in two splits; when a group spans several splits
  the most held-out one wins: test, then eval, then train); a new group is placed by a hash of
  its key against the workspace ratios (default 80/10/10).
* Splits are written once, when an example is stored, and never change afterwards, so the test
  split of earlier snapshots stays held out as the workspace grows.
"""

from __future__ import annotations

import hashlib
import math
import re

from curator.errors import CuratorError

__all__ = ["DEFAULT_RATIOS", "SPLITS", "check_ratios", "hash_split", "parse_ratios"]

SPLITS = ("train", "eval", "test")
DEFAULT_RATIOS = (0.8, 0.1, 0.1)
_SALT = "curator-split-v1:"
_HEX15 = re.compile(r"[0-9a-f]{15}")


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"80/10/10"``, ``"0.8,0.1,0.1"`` -> fractions summing to 1."""
    parts = [p for p in text.replace("/", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise CuratorError(f"split ratios {text!r}: expected three numbers like 80/10/10") from None
    if len(values) != 3:
        raise CuratorError(f"split ratios {text!r}: expected three non-negative numbers like 80/10/10")
    try:
        return check_ratios((values[0], values[1], values[2]))
    except CuratorError:
        raise CuratorError(f"split ratios {text!r}: expected three finite non-negative numbers with a "
                           "positive sum, like 80/10/10") from None


def check_ratios(values: tuple[float, float, float]) -> tuple[float, float, float]:
    """Three finite non-negative numbers with a positive sum, normalised to fractions summing to 1."""
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise CuratorError(f"split ratios {values!r}: expected three finite non-negative numbers with a positive sum")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def hash_split(group: str, ratios: tuple[float, float, float] = DEFAULT_RATIOS) -> str:
    """The split of a new group: a uniform number from its key, cut at the ratios.

    Group keys are already sha256 hex digests, so their leading digits are uniform; any other key is
    hashed first.
    """
    key = group if _HEX15.match(group) else hashlib.sha256((_SALT + group).encode()).hexdigest()
    u = int(key[:15], 16) / 16**15
    if u < ratios[0]:
        return "train"
    if u < ratios[0] + ratios[1]:
        return "eval"
    return "test"

"""The one text fold: what "the same text" and "a word" mean for dedup, leakage and every gate.

Two texts are exact duplicates when :func:`fold` maps them to the same string, and the words
that MinHash shingles and leakage n-grams are built from are the space-separated words of that
same string (:func:`words`), so exact dedup, near dedup, leakage, the feedback gates and the
generation filters never disagree about a text.

Folding, in order:

1. Unicode NFKC (full-width letters, ligatures, compatibility forms -> plain forms; skipped
   for ASCII, where it is the identity);
2. ``str.casefold`` (stronger than ``lower``: ``"Straße"`` -> ``"strasse"``);
3. apostrophes (``'``, ``’``, ``‘``, ``ʼ``) are deleted, so ``"don't"`` -> ``"dont"``
   and ``"it’s"`` == ``"its"``: an apostrophe joins a word, it does not split it;
4. every other character of a Unicode punctuation category (``Pc Pd Ps Pe Pi Pf Po``) becomes
   a space, so ``"top-up"``, ``"top up"`` and ``"Top up!"`` all fold to ``"top up"``
   (deleting it would make ``"topup"``, a different word: on BANKING77 the space rule finds
   25 test texts that equal a train text, deletion 11, and with the apostrophe rule 26, the
   26th being ``"My top-up isn't working."`` == ``"My top up isnt working"``); symbols (``$ + < = > ^ | ~``,
   category ``S*``) are kept, so ``"a+b"`` and ``"a b"`` stay apart;
5. runs of whitespace (NUL included: the shingler's text separator) become one space; leading
   and trailing whitespace is stripped.

:func:`char_classes` is the same rule as a per-code-point table, for the vectorised shingling
in :mod:`curator.quality.dedup.minhash` (which folds whole batches in numpy and must agree with
:func:`fold` exactly; ``tests/quality/test_fold.py`` checks it). Everything here is pure and
deterministic across processes and machines.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

import numpy as np

__all__ = ["APOSTROPHES", "DELETE", "KEEP", "SPACE", "ascii_fold_table", "char_classes", "fold", "words"]

#: Deleted by the fold (they join the parts of a word: ``don't`` -> ``dont``).
APOSTROPHES = "'\u2018\u2019\u02bc"
#: :func:`char_classes` values: keep the code point, delete it, or turn it into a space.
KEEP, DELETE, SPACE = 0, 1, 2


def _is_punctuation(cp: int) -> bool:
    return unicodedata.category(chr(cp)).startswith("P")


@cache
def _ascii_table() -> dict[int, str | None]:
    """``str.translate`` table for ASCII text: apostrophe deleted, other punctuation -> space."""
    table: dict[int, str | None] = {cp: " " for cp in range(128) if _is_punctuation(cp)}
    table[ord("'")] = None
    return table


@cache
def _punct_re() -> re.Pattern[str]:
    """A character class of every Unicode ``P*`` code point except the apostrophes, as ranges."""
    skip = {ord(c) for c in APOSTROPHES}
    cps = [cp for cp in range(sys.maxunicode + 1) if _is_punctuation(cp) and cp not in skip]
    ranges: list[str] = []
    start = prev = cps[0]
    for cp in [*cps[1:], -2]:
        if cp != prev + 1:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = cp
        prev = cp
    return re.compile("[" + "".join(ranges) + "]")


def fold(text: str) -> str:
    """The folded form of ``text`` (see the module docstring).

    >>> fold("  Is there an auto TOP-UP option?? Don't  wait. ")
    'is there an auto top up option dont wait'
    """
    if "\x00" in text:
        text = text.replace("\x00", " ")
    if text.isascii():
        return " ".join(text.lower().translate(_ascii_table()).split())
    text = unicodedata.normalize("NFKC", text).casefold()
    for a in APOSTROPHES:  # str.replace: a dict-table translate is slow on non-ASCII text
        if a in text:
            text = text.replace(a, "")
    return " ".join(_punct_re().sub(" ", text).split())


def words(text: str) -> list[str]:
    """The words of :func:`fold` (``[]`` for an empty or punctuation-only text)."""
    return fold(text).split()


@cache
def char_classes() -> np.ndarray:
    """Per code point (``0x110000`` uint8): :data:`KEEP`, :data:`DELETE` (apostrophes) or
    :data:`SPACE` (other punctuation and whitespace), applied after NFKC and casefold.

    NUL is :data:`KEEP` here: the shingler uses it as its text separator and turns a NUL inside
    a text into a space itself, as :func:`fold` does. Read-only: cached and shared.
    """
    cls = np.zeros(sys.maxunicode + 1, dtype=np.uint8)
    cls[[cp for cp in range(sys.maxunicode + 1) if _is_punctuation(cp) or chr(cp).isspace()]] = SPACE
    cls[[ord(c) for c in APOSTROPHES]] = DELETE
    cls.setflags(write=False)
    return cls


@cache
def ascii_fold_table() -> tuple[bytes, bytes]:
    """``bytes.translate`` arguments that fold lower-cased ASCII like :func:`char_classes`: (table, deletions).

    Punctuation and whitespace become a space, apostrophes are deleted; what the fast ASCII paths of the
    exact keys and the near-duplicate shingler apply to a whole block of texts at once.
    """
    cls = char_classes()[:128]
    table = bytes(0x20 if cls[b] == SPACE else b for b in range(128)) + bytes(range(128, 256))
    return table, bytes(b for b in range(128) if cls[b] == DELETE)

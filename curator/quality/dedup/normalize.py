"""Text folding for dedup keys and the word tokeniser used by shingling.

:func:`fold_text` is the one canonical form: two texts that fold to the same string are
exact duplicates, and :func:`words` (the tokens MinHash shingles are built from) splits
that same folded form, so exact and near dedup never disagree about what a "word" is.

Folding, in order:

1. Unicode NFKC (full-width letters, ligatures, compatibility forms -> plain forms);
2. ``str.casefold`` (stronger than ``lower``: ``"Straße"`` -> ``"strasse"``);
3. every character of a Unicode punctuation category (``Pc Pd Ps Pe Pi Pf Po``) deleted,
   so ``"don't"`` -> ``"dont"``; symbols (``$ + < = > ^ | ~``, category ``S*``) are kept;
4. runs of whitespace folded to one space, leading and trailing whitespace stripped.

All functions are pure and deterministic across processes and machines (no ``hash()``).
"""

from __future__ import annotations

import hashlib
import sys
import unicodedata
from functools import cache

__all__ = ["exact_key", "fold_text", "words"]


@cache
def _punctuation_table() -> dict[int, None]:
    """A ``str.translate`` table deleting every code point of a Unicode ``P*`` category."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)).startswith("P")}


def fold_text(text: str) -> str:
    """Return the canonical folded form of ``text`` used for exact-duplicate keys.

    >>> fold_text("  Hello,\\tWORLD!!  It's   me. ")
    'hello world its me'
    """
    if not text.isascii():
        # NFKC is the identity on ASCII, and casefold equals lower there.
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold().translate(_punctuation_table())
    return " ".join(text.split())


def exact_key(text: str) -> str:
    """Return the sha256 hex digest of :func:`fold_text` (UTF-8), the exact-dup key."""
    return hashlib.sha256(fold_text(text).encode("utf-8")).hexdigest()


def words(text: str) -> list[str]:
    """Tokenise ``text`` for shingling: :func:`fold_text`, then split on spaces.

    An empty or punctuation-only text yields ``[]``.
    """
    return fold_text(text).split()

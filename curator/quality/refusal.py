"""The one refusal detector: boilerplate refusals and "as an AI language model" disclaimers.

Used by the audit (:mod:`curator.quality.audit`, the ``refusals`` section and metric) and by the
generation filters (:func:`curator.synth.filters.check_text`, rejection reason ``refusal``), so
a reply that generation accepted is never flagged by the next audit, and the other way round.

What it catches (case-insensitive; typographic apostrophes read as ``'``):

* AI disclaimers: "as an AI", "as a (large) language model", "I'm (just) an AI";
* a refusal after an apology: "I'm sorry, but I can't / cannot / won't / am unable / am not
  able", "I'm afraid, but I ...", "I apologise, but";
* "I cannot / can't / can not / won't / will not / am unable to / am not able to" and
  "I'm unable to / I'm not able to" followed by help (not "help but"), assist, provide, fulfil,
  comply, answer, browse, access, generate, create or "do that";
* model limitations: "my knowledge cutoff / training data", "I don't have personal opinions /
  the ability / access to the internet / real-time ...".

What it leaves alone, on purpose: an apology that goes on to help ("I'm sorry to hear that;
here is how to fix it", "I apologise for the delay", "Sorry for the delay"), "I can't help but
...", and a support answer that cannot find something ("I can't find that order, please check
the number"). Those are normal answers, not refusals.
"""

from __future__ import annotations

import re

__all__ = ["REFUSAL_PATTERNS", "find_refusal", "is_refusal"]

_VERBS = r"(?:help(?! but)|assist|provide|fulfil+|comply|answer|browse|access|generate|create|do that)\b"

#: Phrases of boilerplate refusals and AI disclaimers (matched case-insensitively).
REFUSAL_PATTERNS = (
    r"\bas an ai\b",
    r"\bas a (?:large )?language model\b",
    r"\bi(?:'m| am) (?:just |only )?an ai\b",
    r"\bi(?:'m| am) (?:sorry|afraid),? but i (?:can(?:'t|not| not)|am unable|'m unable|am not able|'m not able"
    r"|won't|will not)\b",
    r"\bi (?:cannot|can't|can not|won't|will not|am unable to|am not able to) " + _VERBS,
    r"\bi(?:'m| am) (?:unable|not able) to " + _VERBS,
    r"\bi apologi[sz]e,? but\b",
    r"\bmy (?:knowledge|training) (?:cutoff|cut-off|data)\b",
    r"\bi do(?: not|n't) have (?:personal (?:opinions|experiences|feelings)|the ability"
    r"|access to (?:the internet|real-time))\b",
)
_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\uff07": "'"})


def find_refusal(text: str) -> str | None:
    """The first refusal phrase in ``text`` (as written there), or None."""
    m = _REFUSAL.search(text.translate(_APOSTROPHES))
    return text[m.start() : m.end()] if m else None


def is_refusal(text: str) -> bool:
    """Whether ``text`` reads like a boilerplate refusal or an "as an AI language model" disclaimer."""
    return find_refusal(text) is not None

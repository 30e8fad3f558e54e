"""Detect and scrub personally identifiable information (PII) and secrets in free text.

Two backends:

* ``"patterns"`` (the default): the standard library only (``re``, ``ipaddress``).  Every kind
  is found by a precompiled pattern pass anchored on a literal or a digit, and every candidate is
  then validated by a checksum, a structural rule or a nearby cue word, so that look-alikes stay
  untouched.  Fast (megabytes per second), no model.
* ``"presidio"`` (the ``[pii]`` extra, :mod:`curator.quality.pii_presidio`): the patterns first,
  then Microsoft Presidio with the small English spaCy pipeline adds the ``PERSON`` and
  ``LOCATION`` spans the patterns did not find (names without a cue, cities, countries).  Loaded
  once per process, offline; more than a hundred times slower than the patterns.

=================  ====================  =======================================================
kind               placeholder           validation
=================  ====================  =======================================================
EMAIL              ``[EMAIL]``           local part (plain or ``"quoted"``) + dotted domain with an
                                         alphabetic TLD; internationalised domains (``bücher.de``,
                                         ``xn--bcher-kva.de``); ``jane dot doe at example dot com``
                                         and ``jane [at] example [dot] com``
PHONE              ``[PHONE]``           ``+``/``00`` international, ``(area)`` prefix, NANP
                                         ``3-3-4`` or trunk-``0`` national grouping; 7-15 digits
CREDIT_CARD        ``[CREDIT_CARD]``     13-19 digits, card-like grouping, issuer prefix, Luhn
IP_ADDRESS         ``[IP_ADDRESS]``      IPv4 / IPv6 parsed by :mod:`ipaddress`, not a version
IBAN               ``[IBAN]``            ISO 13616 country length + mod-97 check
API_KEY            ``[API_KEY]``         OpenAI, AWS (key ids, and 40-character secret keys after
                                         an AWS secret cue), GitHub, Slack, Stripe, Google,
                                         Hugging Face, JWT, ``Bearer <token>``, ``api_key=<token>``
URL_CREDENTIALS    ``[URL_CREDENTIALS]`` ``scheme://user:password@host...``
SSN                ``[SSN]``             US ``AAA-GG-SSSS``: area not 000/666/9xx, group not 00,
                                         serial not 0000; other shapes and invalid numbers only
                                         next to a cue (``SSN``, ``social security``)
ADDRESS            ``[ADDRESS]``         house number + street name + street type (``221B Baker
                                         Street``, ``1600 Pennsylvania Ave NW``), then unit, city,
                                         state, ZIP / UK postcode; ``Hauptstraße 5, 10115 Berlin``;
                                         ``PO Box 123``
PERSON             ``[PERSON]``          patterns: only after a strong cue (``my name is``,
                                         ``Name:``, ``Mr``/``Dr``..., ``Dear``, a sign-off line such
                                         as ``Regards,`` followed by the name); presidio: any name
                                         spaCy's NER tags
LOCATION           ``[LOCATION]``        presidio backend only: cities, countries, places
=================  ====================  =======================================================

Decisions worth knowing:

* ``URL_CREDENTIALS`` replaces the **whole URL** (scheme, userinfo, host, path and query),
  because the query string of such a URL frequently carries more secrets.
* ``Bearer <token>`` keeps the word ``Bearer``; only the token becomes ``[API_KEY]``.
  The same holds for ``api_key=<token>`` style assignments (only the value is replaced).
* A valid dotted quad is an IP address, except as a version: after a version cue, possibly
  with a word or two between (``v1.2.3.4``, ``version is 1.2.3.4``, ``release 10.2.0.1``,
  ``firmware 10.2.0.1``, ``kernel``, ``build``, ``upgraded to``, ``__version__ = "1.2.3.4"``,
  ``Chrome/120.0.0.0``, ``iOS 10.2.0.1``) or before one (``10.2.0.1 release``).
* ``::1`` / ``::`` and other tiny IPv6 forms (fewer than 3 groups and 5 hex digits) are
  not reported: they are loopback/unspecified or too ambiguous (``1::2`` slices).
* Credit cards also need a known issuer prefix (Visa, Mastercard, Amex, Discover, JCB,
  Diners, UnionPay, Maestro, Mir) with a matching length; this keeps Luhn-valid
  tracking numbers (USPS ``94...``) and ids out.
* IBANs are recognised compact or with single spaces, in upper or lower case (the
  country code must be all upper or all lower case); dashes inside an IBAN are not.
* Phones need phone structure: a ``+``/``00``/``(+44)`` international prefix, a
  parenthesised area code, a North American ``3-3-4`` / ``3-4`` grouping, or a trunk-``0``
  national grouping (``020 7946 0958``, ``030/1234567``).  Unseparated national numbers
  (``4155550132``) are not reported: they are indistinguishable from ids.
* SSNs: a dashed ``AAA-GG-SSSS`` number that passes the structural rules is reported on its
  own.  Well-known example numbers (``123-45-6789``, ``078-05-1120``, ``219-09-9999``),
  structurally invalid ones (``000-12-3456``, ``666-...``, ``9xx-...``, which also covers
  ITINs), spaced (``123 45 6789``) and unseparated (``123456789``) ones are reported only when
  an SSN cue (``SSN``, ``SS#``, ``social security``, ``soc sec``, ``ITIN``, ``taxpayer id``)
  is within 40 characters before or 24 after: a person who wrote the example number as their
  SSN in a ticket still expects it scrubbed, while ``123-45-6789`` alone is a placeholder.
* Street addresses need a house number, capitalised street-name words and a street-type
  word.  Types that are also ordinary words (``Drive``, ``Way``, ``Place``, ``Court``,
  ``Square``, ``Park``...) count only at the end of a phrase or before a city/postcode, so
  ``3 Google Drive files`` is not an address.  Lower-case addresses, addresses without a
  house number, and other countries' formats (``12 rue de Rivoli``) are not found.
* Obfuscated emails: bracketed forms (``[at]``, ``(at)``, ``{dot}``) are reported with any
  alphabetic TLD; the plain-word form (``jane at example dot com``) needs a common TLD and a
  local part that is not an everyday word (``look at example dot com`` stays).
* Person names are the one kind patterns cannot find in general: without a cue a name is
  just capitalised words.  Only names after the cues above are reported (capitalised words,
  up to four, stopping at words such as ``Team`` or ``Support``); use the ``presidio``
  backend for names in running text.
* On overlap the longest span wins; equal lengths are broken by specificity
  (URL_CREDENTIALS > API_KEY > IBAN > CREDIT_CARD > SSN > EMAIL > IP_ADDRESS > PHONE >
  ADDRESS > PERSON > LOCATION).  The presidio backend adds only spans that overlap no
  pattern span.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from curator.errors import ConfigError

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "KINDS",
    "PATTERN_KINDS",
    "PII_BACKEND_SETTING",
    "PLACEHOLDERS",
    "PiiMatch",
    "check_backend",
    "find_pii",
    "prepare_backend",
    "scrub",
]

KINDS: tuple[str, ...] = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "IBAN",
    "API_KEY",
    "URL_CREDENTIALS",
    "SSN",
    "ADDRESS",
    "PERSON",
    "LOCATION",
)
"""Every kind :func:`find_pii` can report, in documentation order (``LOCATION``: presidio only)."""

PATTERN_KINDS: tuple[str, ...] = KINDS[:-1]
"""The kinds the default ``"patterns"`` backend reports."""

BACKENDS: tuple[str, ...] = ("patterns", "presidio")
"""The detection backends: the stdlib patterns (default) and patterns + Presidio (the ``[pii]`` extra)."""

DEFAULT_BACKEND = "patterns"

PII_BACKEND_SETTING = "pii_backend"
"""The workspace setting that names the backend feedback ingest and ``curator serve`` use by default."""

PLACEHOLDERS: dict[str, str] = {kind: f"[{kind}]" for kind in KINDS}
"""The replacement text :func:`scrub` uses for each kind."""

# Lower rank = more specific; used only to break ties between equally long spans.
_RANK: dict[str, int] = {
    "URL_CREDENTIALS": 0,
    "API_KEY": 1,
    "IBAN": 2,
    "CREDIT_CARD": 3,
    "SSN": 4,
    "EMAIL": 5,
    "IP_ADDRESS": 6,
    "PHONE": 7,
    "ADDRESS": 8,
    "PERSON": 9,
    "LOCATION": 10,
}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One detected span: ``text[start:end] == self.text`` is of kind ``kind``."""

    kind: str
    start: int
    end: int
    text: str


_Span = tuple[str, int, int]


def _fold(text: str) -> str:
    """``text`` in lower case with every character at its original index.

    Case-insensitive cues are searched in this copy with lower-case literal patterns, which ``re``
    finds far faster than ``(?i:...)`` alternations.  ``"İ"`` is the one character whose lower
    case is two characters long; it is folded to ``"i"`` first.
    """
    return (text.replace("İ", "i") if "İ" in text else text).lower()

# --------------------------------------------------------------------------- EMAIL
# Anchored on the literal "@" (fast), the local part is found by scanning backwards.  Labels and
# local parts may be non-ASCII (internationalised domains and addresses); a TLD is letters or an
# ACE label (``xn--p1ai``).
_EMAIL_AT = re.compile(
    r"@((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|[Xx][Nn]--[A-Za-z0-9-]{1,59}))"
    r"(?![\w-]|\.\w)"
)
_EMAIL_LOCAL = re.compile(r"[\w.%+\-]{1,64}\Z")


def _find_email(text: str) -> Iterator[_Span]:
    for m in _EMAIL_AT.finditer(text):
        at = m.start()
        if at >= 3 and text[at - 1] == '"':  # a quoted local part: "Jane Smith"@example.com
            open_quote = text.rfind('"', max(0, at - 66), at - 1)
            if open_quote >= 0 and at - 1 - open_quote >= 1 and "\n" not in text[open_quote:at]:
                yield ("EMAIL", open_quote, m.end())
            continue
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        if local is None:
            continue
        start = local.start()
        while start < at and text[start] in ".-":
            start += 1
        if start < at and text[at - 1] != "." and text[max(0, start - 3) : start] != "://":
            yield ("EMAIL", start, m.end())  # (user@host right after "://" is URL userinfo)
    yield from _find_obfuscated_email(text)


# "jane dot doe at example dot com", "jane [at] example [dot] com", "jane(at)example(dot)com".
# Anchored on the "at" separator; the domain is matched forwards and the local part backwards.
# Two anchors, each with a literal or a rare first character: " at " / " AT " and "[at]", "(at)", "{at}", "<at>".
_OB_AT_WORDS = (re.compile(r"at(?<=[ \t]at)[ \t]+"), re.compile(r"AT(?<=[ \t]AT)[ \t]+"))
_OB_AT_BRACKET = re.compile(r"[\[({<][ \t]*(?:[Aa][Tt]|@)[ \t]*[\])}>][ \t]*")
_OB_DOT = r"(?:[ \t]*[\[({<][ \t]*(?:[Dd][Oo][Tt]|\.)[ \t]*[\])}>][ \t]*|[ \t]+(?:dot|DOT)[ \t]+|\.)"
_OB_DOMAIN = re.compile(
    rf"[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?(?:{_OB_DOT}[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?){{1,4}}"
    r"(?![\w-]|\.\w)"
)
_OB_LOCAL = re.compile(rf"(?<![\w.@+-])[A-Za-z0-9][\w%+-]{{0,63}}(?:{_OB_DOT}[A-Za-z0-9][\w%+-]{{0,63}}){{0,4}}\Z")
_OB_DOT_SPLIT = re.compile(_OB_DOT)
_OB_WORD_DOT = re.compile(r"[ \t]+(?:dot|DOT)[ \t]+|[\[({<]")
_LOCAL_MARK = re.compile(r"[\d_%+-]")
# TLDs accepted after the plain-word form ("jane at example dot com"); brackets accept any TLD.
_COMMON_TLDS = frozenset(
    "com org net edu gov mil int io co ai app dev info biz me us uk de fr es it nl be ch at se no dk fi pl pt ie "
    "ca au nz jp cn in br mx ru za eu tv xyz online tech".split()
)
# Everyday words that precede " at " in prose ("look at example dot com", "meet us at ...").
_OB_STOP_LOCAL = frozenset(
    "a an the i me us you him her it them we they he she one be is am are was were been being look looking "
    "looked arrive arrived arriving stay stayed meet met work works worked working live lives lived living "
    "find found reach reached contact email mail write wrote here there home this that what who where when "
    "which available stuck fail failed fails failing point pointed points aim aimed hosted located based "
    "go goes went see seen saw check checked try tried now up down out in on off all not only just still "
    "site page docs login signup online apply applied registered signed sign logged log".split()
)


def _find_obfuscated_email(text: str) -> Iterator[_Span]:
    for bracket, anchor in ((False, _OB_AT_WORDS[0]), (False, _OB_AT_WORDS[1]), (True, _OB_AT_BRACKET)):
        for m in anchor.finditer(text):
            dom = _OB_DOMAIN.match(text, m.end())
            if dom is None:
                continue
            at = m.start()
            while at > 0 and text[at - 1] in " \t":
                at -= 1
            local = _OB_LOCAL.search(text, max(0, at - 160), at)
            if local is None:
                continue
            tld = _OB_DOT_SPLIT.split(dom.group())[-1]
            if not (tld.isascii() and tld.isalpha() and 2 <= len(tld) <= 24):
                continue
            if not bracket:
                pieces = _OB_DOT_SPLIT.split(local.group())
                if tld.lower() not in _COMMON_TLDS:
                    continue
                if len(pieces) == 1 and pieces[0].lower() in _OB_STOP_LOCAL:
                    continue
                # "jane at example.com" (real dots, plain "at"): only with a local part that looks like one
                if not _OB_WORD_DOT.search(dom.group()) and len(pieces) == 1 and not _LOCAL_MARK.search(pieces[0]):
                    continue
            yield ("EMAIL", local.start(), dom.end())


# --------------------------------------------------------------- URL_CREDENTIALS
_URL_CRED = re.compile(r"://([^\s/?#@:\"'<>]*):([^\s/?#\"'<>]*)@([^\s/?#\"'<>@]+)(?:[/?#][^\s\"'<>`]*)?")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,31}\Z")
_TRAILING_PUNCT = ".,;:!?)]}'\""


def _find_url_credentials(text: str) -> Iterator[_Span]:
    for m in _URL_CRED.finditer(text):
        if not (m.group(1) or m.group(2)):
            continue
        scheme = _URL_SCHEME.search(text, max(0, m.start() - 32), m.start())
        if scheme is None:
            continue
        end = m.end()
        while end > m.start(3) and text[end - 1] in _TRAILING_PUNCT:
            # keep a closing bracket that belongs to the URL, e.g. an IPv6 host
            if text[end - 1] == "]" and "[" in text[m.start(3) : end - 1]:
                break
            end -= 1
        yield ("URL_CREDENTIALS", scheme.start(), end)


# ------------------------------------------------------------------------ API_KEY
def _has_digit_and_letter(token: str) -> bool:
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


def _looks_random(token: str) -> bool:
    """A token that is plausibly random: a digit and a letter, or mixed case and long."""
    if _has_digit_and_letter(token):
        return True
    return len(token) >= 24 and any(c.isupper() for c in token) and any(c.islower() for c in token)


# Every pattern starts with a literal so that ``re`` can skip ahead with a fast substring
# search; word-boundary checks therefore come *after* the literal as fixed-width lookbehinds.
# Entries: (pattern, group holding the secret, validator or None).
_API_PATTERNS: tuple[tuple[re.Pattern[str], int, Callable[[str], bool] | None], ...] = (
    # OpenAI / Anthropic style: sk-..., sk-proj-..., sk-ant-api03-...
    (re.compile(r"sk-(?<![\w-]sk-)[A-Za-z0-9_\-]{20,}"), 0, _has_digit_and_letter),
    # AWS access key ids (AKIA, ASIA, AGPA, AIDA, AROA, ANPA, ANVA, AIPA)
    (
        re.compile(r"A(?<![A-Za-z0-9]A)(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        0,
        None,
    ),
    # GitHub tokens
    (re.compile(r"gh(?<![A-Za-z0-9_]gh)[pousr]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9_])"), 0, None),
    (re.compile(r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,255}"), 0, None),
    # Slack tokens
    (re.compile(r"xox(?<![\w-]xox)[abposr]-[A-Za-z0-9\-]{10,}"), 0, _has_digit_and_letter),
    # Stripe secret / restricted keys
    (re.compile(r"sk_(?<![\w]sk_)(?:live|test)_[A-Za-z0-9]{16,}"), 0, None),
    (re.compile(r"rk_(?<![\w]rk_)(?:live|test)_[A-Za-z0-9]{16,}"), 0, None),
    # Google API keys
    (re.compile(r"AIza(?<![\w-]AIza)[0-9A-Za-z_\-]{35}(?![\w-])"), 0, None),
    # Hugging Face tokens
    (re.compile(r"hf_(?<![\w-]hf_)[A-Za-z0-9]{30,}(?![\w-])"), 0, None),
    # JSON Web Tokens
    (re.compile(r"eyJ(?<![\w-]eyJ)[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"), 0, None),
    # Authorization: Bearer <token>   (only the token is reported)
    (
        re.compile(
            r"earer(?<=[Bb]earer)(?<![\w][Bb]earer)[ \t]+([A-Za-z0-9\-._~+/]{16,}=*)"
            r"(?![A-Za-z0-9\-._~+/=])"
        ),
        1,
        _looks_random,
    ),
    (
        re.compile(
            r"EARER(?<=BEARER)(?<![\w]BEARER)[ \t]+([A-Za-z0-9\-._~+/]{16,}=*)(?![A-Za-z0-9\-._~+/=])"
        ),
        1,
        _looks_random,
    ),
)

# api_key = "<token>", "access_token": "<token>", clientSecret: <token>, ...  Anchored on the
# ":"/"=" (fast), the key name before it is checked separately; only the value is reported.
_ASSIGNMENT = re.compile(r"[:=][ \t]*[\"']?([A-Za-z0-9\-._~+/]{16,}=*)(?![A-Za-z0-9\-._~+/=])")
_SECRET_NAME = re.compile(
    r"(?i:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|token|secret)[\"']?[ \t]*\Z"
)


# AWS secret access keys: 40 base64 characters with no fixed prefix, so only after a cue
# ("aws_secret_access_key", "AWS Secret Access Key", "SecretAccessKey", "aws secret") on the same line.
_AWS_SECRET_CUES = (re.compile(r"secret[ _-]?access[ _-]?key"), re.compile(r"aws[ _-]?secret(?:[ _-]?key)?"))
_AWS_SECRET_VALUE = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")


def _aws_secret_ok(token: str) -> bool:
    upper = any(c.isupper() for c in token)
    lower = any(c.islower() for c in token)
    return upper and lower and any(c.isdigit() or c in "/+" for c in token)


def _find_api_keys(text: str) -> Iterator[_Span]:
    for pattern, group, validator in _API_PATTERNS:
        for m in pattern.finditer(text):
            token = m.group(group)
            if validator is not None and not validator(token):
                continue
            yield ("API_KEY", m.start(group), m.end(group))
    for m in _ASSIGNMENT.finditer(text):
        start = m.start()
        if _SECRET_NAME.search(text, max(0, start - 48), start) and _has_digit_and_letter(m.group(1)):
            yield ("API_KEY", m.start(1), m.end(1))
    folded = _fold(text)
    for cue in _AWS_SECRET_CUES:
        for m in cue.finditer(folded):
            line_end = text.find("\n", m.end())
            limit = min(m.end() + 64, len(text) if line_end < 0 else line_end)
            value = _AWS_SECRET_VALUE.search(text, m.end(), limit)
            if value is not None and _aws_secret_ok(value.group()):
                yield ("API_KEY", value.start(), value.end())


# -------------------------------------------------------------------- CREDIT_CARD
# A run of digit groups joined by "-" or 1-2 spaces; a trailing group that starts a date or a
# time ("... 1111 12/26", "... 1111 10:30") is not part of the run.
# The right-hand boundary is checked in Python (``_run_end_ok``) rather than by a lookahead:
# a failed lookahead after a possessive run would make ``re`` retry from every later group
# of the same run, which is quadratic on long runs of numbers.
_CARD_RUN = re.compile(r"\d(?<![\w.,$€£¥+/\\-]\d)\d*+(?:(?: {1,2}|-)\d++(?![/:]\d))*+")
_RUN_END_BAD = re.compile(r"\w|[.,/:-]\d")


def _run_end_ok(text: str, end: int) -> bool:
    return _RUN_END_BAD.match(text, end) is None


_IDENTIFIER_GLUE = frozenset("=#_-/\\@")


def _continues_identifier(text: str, start: int) -> bool:
    """True when the run at ``start`` follows "<digits> " that are glued to an identifier.

    ``request_id=3012 086446 8253``: the run regex refuses to start at ``3012`` (it follows
    ``=``) and would then start at ``086446``; the whole number belongs to ``request_id``.
    """
    if start < 2 or text[start - 1] not in " -" or not text[start - 2].isdigit():
        return False
    i = start - 2
    while i > 0 and text[i - 1].isdigit():
        i -= 1
    return i > 0 and (text[i - 1].isalpha() or text[i - 1] in _IDENTIFIER_GLUE)


_DIGIT_GROUP = re.compile(r"\d+")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        x = ord(ch) - 48
        if i & 1:
            x *= 2
            if x > 9:
                x -= 9
        total += x
    return total % 10 == 0


def _issuer_ok(d: str) -> bool:
    """Known issuer prefix (IIN) with a length that issuer uses."""
    n = len(d)
    first = d[0]
    if first == "4":
        return n in (13, 16, 19)
    p2, p3, p4, p6 = int(d[:2]), int(d[:3]), int(d[:4]), int(d[:6])
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if 2200 <= p4 <= 2204:  # Mir
        return 16 <= n <= 19
    if p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925:
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39):  # Diners
        return 14 <= n <= 19
    if p2 in (62, 81):  # UnionPay
        return 16 <= n <= 19
    if p2 == 50 or 56 <= p2 <= 69:  # Maestro
        return 13 <= n <= 19
    return False


def _card_shape_ok(lengths: list[int]) -> bool:
    if len(lengths) == 1:
        return 13 <= lengths[0] <= 19
    if lengths in ([4, 6, 5], [4, 6, 4]):
        return True
    # 4-4-4-4, 4-4-4-1, 4-4-4-4-3, ...: all groups of 4 except a shorter last one
    return len(lengths) >= 4 and all(x == 4 for x in lengths[:-1]) and 1 <= lengths[-1] <= 4


def _card_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _issuer_ok(digits) and _luhn_ok(digits)


def _find_cards(text: str) -> Iterator[_Span]:
    for m in _CARD_RUN.finditer(text):
        run = m.group()
        if len(run) < 13 or not _run_end_ok(text, m.end()) or _continues_identifier(text, m.start()):
            continue
        if m.start() >= 5 and _CODE_BLOCKS_BEFORE.search(text, max(0, m.start() - 40), m.start()):
            continue
        groups = [(g.start(), g.end()) for g in _DIGIT_GROUP.finditer(run)]
        if sum(e - s for s, e in groups) < 13:
            continue
        base = m.start()
        if len(groups) == 1:
            if _card_ok(run):
                yield ("CREDIT_CARD", base, m.end())
            continue
        seps = [run[groups[k][1]] for k in range(len(groups) - 1)]  # " " or "-" (a double space is " ")
        # The run must split completely into cards ("4111 1111 1111 1111 5555 5555 5555 4444"):
        # "9400 <16 digits> 12" is a tracking number, and a Luhn-valid prefix of a longer run
        # is chance.
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(groups):
            found = -1
            for j in range(min(len(groups) - 1, i + 5), i - 1, -1):
                if j > i and len(set(seps[i:j])) != 1:
                    continue
                lengths = [e - s for s, e in groups[i : j + 1]]
                if not 13 <= sum(lengths) <= 19 or not _card_shape_ok(lengths):
                    continue
                digits = "".join(run[s:e] for s, e in groups[i : j + 1])
                if _card_ok(digits):
                    found = j
                    break
            if found < 0:
                spans = []
                break
            spans.append((base + groups[i][0], base + groups[found][1]))
            i = found + 1
        for start, end in spans:
            yield ("CREDIT_CARD", start, end)


# --------------------------------------------------------------------------- IBAN
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
# Anchored on the first check digit (a digit is a cheap first character for ``re``).
_IBAN_START = re.compile(r"\d(?<=[A-Za-z]{2}\d)(?<![A-Za-z0-9][A-Za-z]{2}\d)\d ?[A-Za-z0-9]")


def _iban_checksum_ok(compact: str) -> bool:
    if compact[2:4] in ("00", "01", "99"):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _find_ibans(text: str) -> Iterator[_Span]:
    n = len(text)
    for m in _IBAN_START.finditer(text):
        start = m.start() - 2
        country = text[start : start + 2]
        if not (country.isupper() or country.islower()):
            continue
        length = _IBAN_LENGTHS.get(country.upper())
        if length is None:
            continue
        chars: list[str] = []
        pos = start
        while pos < n and len(chars) < length:
            c = text[pos]
            if c.isascii() and c.isalnum():
                chars.append(c)
                pos += 1
            elif c == " " and chars and pos + 1 < n and text[pos + 1].isascii() and text[pos + 1].isalnum():
                pos += 1
            else:
                break
        if len(chars) != length or (pos < n and text[pos].isalnum()):
            continue
        if _iban_checksum_ok("".join(chars).upper()):
            yield ("IBAN", start, pos)


# --------------------------------------------------------------------- IP_ADDRESS
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d|-[A-Za-z])")
# A version cue, then at most two filler words ("version is", "build number", "upgraded to"),
# then ":", "=", "#", a quote or a bracket: the dotted quad after it is a version, not an address.
_VERSION_CUE = re.compile(
    r"(?<![A-Za-z])(?i:v\.?|version|ver\.?|releases?|released|rel\.?|build|firmware|fw|sdk|driver|kernel"
    r"|patch|revision|rev\.?|upgraded?|updated?|downgraded?|rolled[ \t]+back|hotfix|ios|ipados|android|macos"
    r"|windows|chrome|firefox|safari)_*"
    r"(?:[ \t]+(?i:is|was|number|no\.?|nr\.?|to|of|now|currently|string|tag|id)){0,2}"
    r"[ \t]*[:#=]?[ \t]*[\"'(\[]?[ \t]*\Z"
)
_VERSION_AFTER = re.compile(r"[ \t]+(?i:release|build|update|upgrade|version|patch|firmware|hotfix)\b")
# IPv6 is anchored on a literal ":" followed by a second ":" within a few characters, then
# grown to the full token in both directions and handed to :mod:`ipaddress`.
_V6_SEED = re.compile(r":[0-9A-Fa-f.]{0,15}:")
_V6_TAIL = re.compile(r"[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_.]+)?")
_HEX = frozenset("0123456789abcdefABCDEF")
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]+")


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _find_ips(text: str) -> Iterator[_Span]:
    for m in _IPV4.finditer(text):
        start = m.start()
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if start >= 2 and text[start - 1] == "/" and text[start - 2].isalpha():
            continue  # product token such as Chrome/120.0.0.0
        if _VERSION_CUE.search(text, max(0, start - 40), start) or _VERSION_AFTER.match(text, m.end()):
            continue
        yield ("IP_ADDRESS", start, m.end())
    n = len(text)
    pos = 0
    while True:
        seed = _V6_SEED.search(text, pos)
        if seed is None:
            return
        start = seed.start()
        while start > 0 and start > seed.start() - 4 and text[start - 1] in _HEX:
            start -= 1
        tail = _V6_TAIL.match(text, seed.end())
        end = tail.end() if tail else seed.end()
        pos = max(end, seed.end())
        while end > start and text[end - 1] in ".:" and text[end - 2 : end] != "::":
            end -= 1  # sentence punctuation, "addr:port" separators
        if start > 0 and (_word_char(text[start - 1]) or text[start - 1] in ":."):
            continue
        if end < n and _word_char(text[end]):
            continue
        cand = text[start:end]
        colons = cand.count(":")
        if colons < 2 or ("::" not in cand and colons != 7 and not (colons == 6 and "." in cand)):
            continue
        try:
            ipaddress.IPv6Address(cand)
        except ValueError:
            continue
        groups = _HEX_GROUP.findall(cand.split("%", 1)[0])
        if len(groups) < 3 and sum(len(g) for g in groups) < 5:
            continue
        yield ("IP_ADDRESS", start, end)


# -------------------------------------------------------------------------- PHONE
# A maximal run of digit groups joined by single separators, optionally "+"-prefixed,
# with parenthesised groups such as "(415)" or "(0)".  Classification happens in Python.
_PHONE_LB = r"\w#$€£¥.,/+=@\\-"
_PHONE_RUN = re.compile(
    rf"(?:\+(?<![{_PHONE_LB}]\+)(?<!\d:\+) ?(?:\(\d{{1,5}}\)|\d++)"
    rf"|\((?<![{_PHONE_LB}]\()(?<!\d:\()\+?\d{{1,5}}\)"
    rf"|\d(?<![{_PHONE_LB}]\d)(?<!\d:\d)\d*+)"
    r"(?:[ ./-]?(?:\(\d{1,5}\)|\d++))*+"
)
_PHONE_TOKEN = re.compile(r"\(\+?\d{1,5}\)|\d+")
_PHONE_DROP = str.maketrans("", "", "0123456789()+")
# "GB82 WEST 1234 " / "DE89 3704 " before a run: the run is the tail of an IBAN-like code.
_CODE_BLOCKS_BEFORE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d\d(?: [A-Z0-9]{4})* \Z")


def _is_date_shape(lengths: list[int]) -> bool:
    return len(lengths) == 3 and (
        (lengths[0] == 4 and lengths[1] <= 2 and lengths[2] <= 2)
        or (lengths[0] <= 2 and lengths[1] <= 2 and lengths[2] == 4)
    )


def _phone_ok(run: str) -> bool:
    intl = run.startswith(("+", "(+"))
    tokens = _PHONE_TOKEN.findall(run)
    digits = [t.strip("()+") for t in tokens]
    lengths = [len(t) for t in digits]
    total = sum(lengths)
    paren = [t.startswith("(") for t in tokens]
    seps = set(run.translate(_PHONE_DROP))
    if len(seps) > 2:
        return False
    if "/" in seps:
        # only "030/1234567"-style national numbers (dates use "/" too: 05/01/2024)
        return (
            len(tokens) == 2
            and not any(paren)
            and digits[0][0] == "0"
            and digits[0][1] != "0"
            and 2 <= lengths[0] <= 5
            and 9 <= total <= 12
        )
    if intl:
        return 8 <= total <= 15 and digits[0][0] != "0"
    four_blocks = len(lengths) >= 3 and all(x == 4 for x in lengths)  # 4-4-4 blocks: ids, tracking
    if lengths == [3, 2, 4] and seps == {"-"}:
        return False  # the shape of a US social security number (SSN decides), not a phone grouping
    if lengths[0] >= 3 and digits[0].startswith("00") and digits[0][2] != "0" and not paren[0]:
        return len(tokens) >= 2 and 10 <= total <= 17 and not four_blocks
    # North American 3-3-4, optionally preceded by a 1 trunk prefix: 1 (800) 555-0199.
    if lengths == [1, 3, 3, 4] and digits[0] == "1" and not paren[0] and not any(paren[2:]):
        return True
    if any(paren[1:]):
        return False
    if paren[0]:
        return len(tokens) >= 2 and 9 <= total <= 13 and lengths[0] >= 2
    if lengths == [3, 3, 4]:
        return True
    # 7-digit local number 555-0132 (exchange codes never start with 0 or 1)
    if lengths == [3, 4] and seps <= {"-", "."} and digits[0][0] not in "01":
        return True
    if len(seps) != 1:
        return False
    # Trunk-prefix national numbers: 020 7946 0958, 07700 900123, 06 12 34 56 78, 030 123456.
    if (
        digits[0][0] == "0"
        and lengths[0] >= 2
        and digits[0][1] != "0"
        and len(tokens) >= 2
        and 9 <= total <= 12
        and all(2 <= x <= 8 for x in lengths)
        and not _is_date_shape(lengths)
        and not four_blocks
    ):
        return True
    return False


def _find_phones(text: str) -> Iterator[_Span]:
    for m in _PHONE_RUN.finditer(text):
        run = m.group()
        if len(run) < 7 or not _run_end_ok(text, m.end()) or _continues_identifier(text, m.start()):
            continue
        start, end = m.start(), m.end()
        if run.count("(") != run.count(")"):
            continue
        if not _phone_ok(run):
            continue
        if (
            start >= 5
            and text[start - 1] == " "
            and _CODE_BLOCKS_BEFORE.search(text, max(0, start - 40), start)
        ):
            continue
        yield ("PHONE", start, end)


# ---------------------------------------------------------------------------- SSN
# AAA-GG-SSSS, AAA GG SSSS or AAAGGSSSS (the separators of one number agree).
_SSN = re.compile(r"\d(?<![\w.,/+$€£#:-]\d)\d\d([- ]?)\d\d\1\d{4}(?!\w|[-.,/:]\d)")
_SSN_CUE = re.compile(
    r"(?i:(?<![a-z])ssns?(?![a-z])|(?<![a-z])ss[ \t]*(?:#|no\b\.?|num(?:ber)?\b)|(?<![a-z])s\.s\.n\.?"
    r"|social[ \t-]*security|(?<![a-z])soc\.?[ \t]*sec(?![a-z])|(?<![a-z])itin(?![a-z])|taxpayer[ \t]+id)"
)
# Numbers printed in advertising, on sample cards and in documentation: placeholders unless a cue says otherwise.
_SSN_EXAMPLES = frozenset({"123456789", "078051120", "219099999", "457555462"}) | frozenset(
    str(d) * 9 for d in range(10)
)


def _ssn_structure_ok(d: str) -> bool:
    """Area not 000/666/900-999, group not 00, serial not 0000 (the SSA's rules since 2011)."""
    area = int(d[:3])
    return area != 0 and area != 666 and area < 900 and d[3:5] != "00" and d[5:] != "0000"


def _ssn_cue_near(text: str, start: int, end: int) -> bool:
    """An SSN cue up to 40 characters before ``start`` or 24 after ``end``, on the same line.

    A number that starts its line may take its cue from the end of the line before ("SSN:\\n123-...").
    """
    lo = max(0, start - 40)
    line_start = text.rfind("\n", lo, start)
    if line_start >= 0 and text[line_start + 1 : start].strip(" \t"):
        lo = line_start + 1
    line_end = text.find("\n", end, end + 24)
    hi = line_end if line_end >= 0 else min(len(text), end + 24)
    return _SSN_CUE.search(text, lo, start) is not None or _SSN_CUE.search(text, end, hi) is not None


def _find_ssns(text: str) -> Iterator[_Span]:
    for m in _SSN.finditer(text):
        digits = m.group().replace("-", "").replace(" ", "")
        plain = m.group(1) == "-" and _ssn_structure_ok(digits) and digits not in _SSN_EXAMPLES
        if plain or _ssn_cue_near(text, m.start(), m.end()):
            yield ("SSN", m.start(), m.end())


# ------------------------------------------------------------------------ ADDRESS
def _both_cases(words: str) -> str:
    return "|".join(w for word in words.split() for w in (word, word.upper()))


# Street types that are rarely anything else, and those that are also everyday words ("Drive",
# "Way", "Park"): a weak one ends an address only at the end of a phrase or before a city/postcode.
_STRONG_TYPES = _both_cases(
    "Street St Avenue Ave Road Rd Lane Ln Boulevard Blvd Terrace Crescent Cres Parkway Pkwy Highway Hwy "
    "Expressway Expy Freeway Turnpike"
)
_WEAK_TYPES = _both_cases(
    "Drive Dr Court Ct Place Pl Square Sq Way Close Row Walk Circle Cir Trail Trl Grove Gardens Mews Hill Park "
    "Plaza Alley Green Path Crossing Loop View Rise Yard Wharf Quay Parade"
)
_ABBREVIATED_TYPES = frozenset("st ave av rd ln blvd cres pkwy hwy expy dr ct pl sq cir trl".split())
_UPPER = "A-ZÀ-ÖØ-Þ"
_NAME_WORD = rf"(?:[{_UPPER}][\w'’]*(?:-[\w'’]+)*\.?|\d{{1,3}}(?:st|nd|rd|th|ST|ND|RD|TH))"
_ADDR_CORE = re.compile(
    rf"\d(?<![\w.,/$€£#+:=-]\d)\d{{0,4}}[A-Za-z]?(?:[-–/]\d{{1,5}}[A-Za-z]?)?,?[ \t]+"
    rf"(?:{_NAME_WORD}[ \t]+){{1,4}}"
    rf"(?:(?P<strong>{_STRONG_TYPES})|(?P<weak>{_WEAK_TYPES}))(?![\w'’-])\.?"
    r"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)(?![\w'’-])\.?)?"
)
# German style, number after the name: "Hauptstraße 5", "Karl-Marx-Allee 12a".  Anchored on the suffix
# (literal patterns in the case-folded text); the capitalised word it ends is found backwards.
_DE_SUFFIXES = tuple(
    re.compile(suffix + r"[ \t]+\d{1,4}[a-z]?(?:[-/]\d{1,4}[a-z]?)?(?![\w.,]\w|\w)")
    for suffix in ("straße", "strasse", r"str\.", "weg", "allee", "platz", "gasse", "damm", "ufer", "chaussee")
)
_PO_BOX = re.compile(r"P(?<![\w.]P)(?:\.?[ \t]?O\.?[ \t]?|ost[ \t]+Office[ \t]+)(?:Box|BOX|box)[ \t]+\d{1,6}(?!\w)")
_SEP = r"(?:,[ \t]*\n?[ \t]*|[ \t]*\n[ \t]*|[ \t]+)"
_ADDR_UNIT = re.compile(
    rf"{_SEP}(?:(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl|Floor|Room|Rm|Bldg|Building)\.?[ \t]*#?[ \t]*|#[ \t]*)"
    r"[A-Za-z0-9][A-Za-z0-9-]{0,5}(?!\w)"
)
_US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR"
).split()
_POSTAL = (
    r"(?:\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}"  # US ZIP, UK postcode
    r"|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d)(?![\w-])"  # Canadian postal code
)
_END_OF_PHRASE = r"[ \t]*(?:[,.;:!?)\]\n]|\Z)"
_CITY = rf"[{_UPPER}][\w'’.-]*(?:[ \t]+[{_UPPER}][\w'’.-]*){{0,2}}"
_ADDR_CITY = re.compile(
    rf"{_SEP}(?:\d{{4,5}}[ \t]+)?(?P<city>{_CITY})"
    rf"(?=(?:,[ \t]*|[ \t]+)(?:(?:{'|'.join(_US_STATES)})(?![\w-])|{_POSTAL})|{_END_OF_PHRASE})"
)
# "Springfield, Illinois 62704": a region name only when a postcode follows
_ADDR_REGION = re.compile(rf",[ \t]*[{_UPPER}][\w'’.-]*(?:[ \t]+[{_UPPER}][\w'’.-]*)?(?=(?:,[ \t]*|[ \t]+){_POSTAL})")
_ADDR_STATE = re.compile(rf"(?:,[ \t]*|[ \t]+)(?:{'|'.join(_US_STATES)})(?![\w-])")
_ADDR_POSTAL = re.compile(rf"(?:,[ \t]*|[ \t]*\n[ \t]*|[ \t]+){_POSTAL}")
_ADDR_COUNTRY = re.compile(
    r"(?:,[ \t]*|[ \t]+)(?:USA|U\.S\.A\.|US|UK|U\.K\.|United States(?: of America)?|United Kingdom|England|Scotland"
    r"|Wales|Ireland|Canada|Australia|Germany|Deutschland|France|Spain|Italy|Netherlands)(?![\w-])"
)
# Capitalised words that end an address rather than name its city.
_NOT_A_CITY = frozenset(
    "Thanks Thank Regards Best Cheers Please Hi Hello Hey Dear Sincerely Yours Kind Sent From The A An I I'm "
    "We My Our It This That Is Are Was And Or But Also Sorry Ok OK Yes No Can Could Would Will".split()
)


def _address_tail(text: str, pos: int) -> tuple[int, bool]:
    """Extend an address that ends at ``pos`` by unit, city, state, postcode and country; (end, extended)."""
    start = pos
    m = _ADDR_UNIT.match(text, pos)
    if m:
        pos = m.end()
    m = _ADDR_CITY.match(text, pos)
    if m and m.group("city").split()[0].rstrip(".,") not in _NOT_A_CITY:
        # a city on the next line must be the whole line, or be followed by a state or postcode
        if "\n" not in text[pos : m.start("city")] or _LINE_END.match(text, m.end()) or _ADDR_STATE.match(
            text, m.end()
        ) or _ADDR_POSTAL.match(text, m.end()):
            pos = m.end()
    m = _ADDR_STATE.match(text, pos) or _ADDR_REGION.match(text, pos)
    if m:
        pos = m.end()
    for pattern in (_ADDR_POSTAL, _ADDR_COUNTRY):
        m = pattern.match(text, pos)
        if m:
            pos = m.end()
    while pos > start and text[pos - 1] in " \t\n,":
        pos -= 1
    return pos, pos > start


_PHRASE_END = re.compile(_END_OF_PHRASE)
_LINE_END = re.compile(r"[ \t]*(?:\n|\Z)")
_NEXT_CAPITALISED = re.compile(rf"[ \t]+[{_UPPER}]")


def _find_addresses(text: str) -> Iterator[_Span]:
    for m in _ADDR_CORE.finditer(text):
        core_end = m.end()
        street_type = m.group("strong") or m.group("weak")
        if text[core_end - 1] == "." and street_type.lower() not in _ABBREVIATED_TYPES and text[core_end - 2] != ".":
            core_end -= 1  # "42 Maple Drive." ends a sentence; "12 Oak St." keeps its abbreviation's dot
        end, extended = _address_tail(text, core_end)
        if not extended and _NEXT_CAPITALISED.match(text, core_end):
            continue  # a title or a name that goes on: "the 2019 Wall Street Journal report"
        if m.group("weak") and not extended and not _PHRASE_END.match(text, core_end):
            continue  # "3 Google Drive files"
        yield ("ADDRESS", m.start(), end if extended else core_end)
    folded = _fold(text)
    for pattern in _DE_SUFFIXES:
        for m in pattern.finditer(folded):
            start = m.start()
            while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "-"):
                start -= 1
            if start < m.start() and text[start].isupper():
                yield ("ADDRESS", start, _address_tail(text, m.end())[0])
    for m in _PO_BOX.finditer(text):
        yield ("ADDRESS", m.start(), _address_tail(text, m.end())[0])


# ------------------------------------------------------------------------- PERSON
# Without a model, a name is only recognisable by what introduces it.  Each cue is followed by
# capitalised words (up to four; "van", "de"... may join them; "A." initials too); the name stops
# at a stop word.  The cues are found in the case-folded text with literal-prefixed patterns.
# "name is" / "name's" / "name:" / "name =" / "name -"; who the name belongs to is read from what precedes it.
_NAME_CUE = re.compile(r"name(?:(?P<is>[ \t]+is|['’]s)|[\"']?(?P<sep>[ \t]*[:=]|[ \t]+-))[ \t]*[\"']?[ \t]*")
_MY_NAME = re.compile(r"(?<![a-z])my[ \t]+(?:(?:full|real|legal|first|last|given)[ \t]+)?\Z")
_FIELD_PREFIX = re.compile(
    r"(?<![a-z])(?:(?:full|customer|contact|first|last|given|family|legal|sender|recipient|patient|employee"
    r"|account[ _-]?holder|card[ _-]?holder|client)[ _-]?|sur)\Z"
)
_GREETINGS = (
    re.compile(r"h(?:i|ello|ey)[,!]?[ \t]+(?P<im>this[ \t]+is|it['’]s|i['’]m|i[ \t]+am)[ \t]+"),
    re.compile(r"good[ \t]+(?:morning|afternoon|evening)[,!]?[ \t]+(?P<im>this[ \t]+is|it['’]s|i['’]m|i[ \t]+am)[ \t]+"),
)
_DEAR = re.compile(r"dear[ \t]+")
_TITLE = re.compile(r"(?:M(?:rs?|s|iss|x)|Dr|Prof|Sir|Dame)\.?[ \t]+")  # in the original text: case matters
_SIGNOFF_TAIL = r"(?:[ \t]*[,!.]?[ \t]*\n[ \t]*|[ \t]*[,!][ \t]+)"
_SIGNOFFS = tuple(
    re.compile(word + _SIGNOFF_TAIL)
    for word in (r"regards", r"thank(?:s|[ \t]+you)", r"cheers", r"sincerely", r"best(?:[ \t]+wishes)?",
                 r"respectfully", r"yours(?:[ \t]+(?:truly|sincerely|faithfully))?", r"--")
)
_SIGNOFF_ADJECTIVE = re.compile(r"(?:^|(?<=[ \t]))(?:best|kind|warm|warmest|kindest|many|with)[ \t]*\Z")
_SIGNOFF_LINE_END = re.compile(r"[ \t]*(?:[,|(–-]|\n|\Z)")
_NAME_TOKEN = re.compile(r"[^\W\d_][\w'’]*(?:-[^\W\d_][\w'’]*)*")
_BLANKS = re.compile(r"[ \t]+")
_AFTER_NAME = re.compile(r"[\s,.;:!?)\]}\"'’|(–-]|\Z")
_PARTICLES = frozenset("van von de da del della der di du la le bin ibn al ter den dos das".split())
_NOT_A_NAME = frozenset(
    "the a an i i'm it this that team support customer customers service services sales billing department dept "
    "staff everyone all sir madam madame admin administrator manager agent hi hello hey thanks thank regards best "
    "cheers sent from not very really just and or but also please kind dear user users friend friends colleague "
    "colleagues valued member members there here is am are was will would can could have has had my your our "
    "their order account email phone address date ticket ref id number no so yes ok okay sorry again everybody "
    "folks guys you we they he she sender recipient none unknown name test hr ops helpdesk mr mrs ms miss mx dr "
    "prof on in at for to of with by n/a assistant human bot ai self future diary landlord tenant neighbor "
    "neighbour mom mum dad mother father sister brother grandma grandpa".split()
)


def _starts_word(text: str, i: int) -> bool:
    return i == 0 or not text[i - 1].isalpha()


def _person_end(text: str, pos: int, allow_upper: bool) -> tuple[int, int]:
    """(end, words) of the capitalised name that starts at ``pos`` on this line; ``(pos, 0)`` when none."""
    end, count, i = pos, 0, pos
    while count < 4:
        m = _NAME_TOKEN.match(text, i)
        if m is None:
            break
        word, after = m.group(), m.end()
        if word[-2:] in ("'s", "’s") or word[-1] in "'’":  # "Leprino's residence", "{'name': 'John'}"
            word = word[: -2 if word[-1] == "s" else -1]
            after = m.start() + len(word)
            if not word:
                break
        low = word.lower()
        if low in _PARTICLES:  # "van der Berg": particles join a name, they do not end it
            gap = _BLANKS.match(text, after)
            if gap is None:
                break
            i = gap.end()
            continue
        if count and len(word) == 1 and word.isupper() and text[after : after + 1] == ".":
            after += 1  # a middle initial: "Jane A. Smith"
        elif not word[0].isupper() or low in _NOT_A_NAME or (word.isupper() and len(word) > 1 and not allow_upper):
            break
        elif not _AFTER_NAME.match(text, after):
            break  # glued to something that is not a name: "N/A", "Jane_Doe", "Ana@"
        end, count = after, count + 1
        gap = _BLANKS.match(text, end)
        if gap is None:
            break
        i = gap.end()
    return end, count


def _person_cues(text: str, folded: str) -> Iterator[tuple[int, str]]:
    """(where the name would start, which cue) for every cue in ``text``."""
    for m in _NAME_CUE.finditer(folded):
        before = folded[max(0, m.start() - 40) : m.start()]
        if _MY_NAME.search(before):
            yield m.end(), "intro"
        elif m.group("sep") and "-" not in m.group("sep"):
            if _FIELD_PREFIX.search(before):
                yield m.end(), "field"
            else:  # a bare "name:" names a person at the start of a line or of a field, not in "product name:"
                line = before.rsplit("\n", 1)[-1].rstrip(" \t\"'")
                if not line or not line[-1].isalnum():
                    yield m.end(), "field"
    for pattern in _GREETINGS:
        for m in pattern.finditer(folded):
            if _starts_word(folded, m.start()):
                yield m.end(), "im" if m.group("im").startswith("i") else "greet"
    for m in _DEAR.finditer(folded):
        if _starts_word(folded, m.start()):
            yield m.end(), "dear"
    for m in _TITLE.finditer(text):
        if _starts_word(text, m.start()):
            yield m.end(), "title"
    for pattern in _SIGNOFFS:
        for m in pattern.finditer(folded):
            line = folded[folded.rfind("\n", 0, m.start()) + 1 : m.start()].rstrip(" \t")
            line = _SIGNOFF_ADJECTIVE.sub("", line).rstrip(" \t")
            if not line or line[-1] in ".!?":  # the sign-off starts its line or follows a sentence
                yield m.end(), "signoff"


def _find_persons(text: str) -> Iterator[_Span]:
    for start, cue in _person_cues(text, _fold(text)):
        end, words = _person_end(text, start, allow_upper=cue == "field")
        if not words:
            continue
        if cue == "signoff" and not _SIGNOFF_LINE_END.match(text, end):
            continue  # the name must be the rest of its line ("Regards,\nJane Smith")
        if cue == "im" and words < 2:
            continue  # "Hi, I'm Jane Smith" is a name; "Hi, I'm Stuck" is not
        yield ("PERSON", start, end)


# ------------------------------------------------------------------- resolution
_DETECTORS = (
    _find_url_credentials,
    _find_api_keys,
    _find_ibans,
    _find_cards,
    _find_ssns,
    _find_email,
    _find_ips,
    _find_phones,
    _find_addresses,
    _find_persons,
)


def _resolve(cluster: list[_Span]) -> list[_Span]:
    """Pick non-overlapping spans from one cluster of overlapping candidates, best first."""
    if len(cluster) <= 1:
        return cluster
    chosen: list[_Span] = []
    for cand in sorted(cluster, key=lambda c: (c[1] - c[2], _RANK[c[0]], c[1])):
        if all(cand[2] <= c[1] or c[2] <= cand[1] for c in chosen):
            chosen.append(cand)
    chosen.sort(key=lambda c: c[1])
    return chosen


def check_backend(backend: str) -> str:
    """``backend`` if it names a backend (:data:`BACKENDS`), else :class:`~curator.errors.ConfigError`."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown PII backend {backend!r} (choose one of: {', '.join(BACKENDS)})")
    return backend


def prepare_backend(backend: str) -> str:
    """Check ``backend`` and load what it needs now (Presidio's analyzer), so that a missing extra fails early.

    Raises :class:`~curator.errors.MissingDependency` with the pip line when ``presidio`` is asked for and the
    ``[pii]`` extra is not installed.  Returns ``backend``.
    """
    check_backend(backend)
    if backend == "presidio":
        from curator.quality.pii_presidio import analyzer

        analyzer()
    return backend


def _pattern_spans(text: str) -> list[_Span]:
    candidates: list[_Span] = []
    for detector in _DETECTORS:
        candidates.extend(detector(text))
    if not candidates:
        return []
    candidates.sort(key=lambda c: (c[1], c[2]))
    kept: list[_Span] = []
    cluster: list[_Span] = []
    cluster_end = -1
    for cand in candidates:
        if cand[1] >= cluster_end:
            kept.extend(_resolve(cluster))
            cluster = []
        cluster.append(cand)
        cluster_end = max(cluster_end, cand[2])
    kept.extend(_resolve(cluster))
    return kept


def _merge(patterns: list[_Span], extra: list[_Span]) -> list[_Span]:
    """``patterns`` (non-overlapping) plus every span of ``extra`` that overlaps none of the kept spans."""
    starts = [s for _, s, _ in patterns]  # kept spans never overlap, so their starts and ends are both sorted
    ends = [e for _, _, e in patterns]
    out = list(patterns)
    for span in sorted(extra, key=lambda c: (c[1], c[1] - c[2])):
        _, start, end = span
        i = bisect.bisect_left(starts, end)  # spans [0, i) start before our end; ends[i - 1] is the latest end
        if i and ends[i - 1] > start:
            continue
        starts.insert(i, start)
        ends.insert(i, end)
        out.append(span)
    out.sort(key=lambda c: c[1])
    return out


def find_pii(text: str, backend: str = DEFAULT_BACKEND) -> list[PiiMatch]:
    """Return the PII spans in ``text``, sorted by position and never overlapping.

    ``backend``: ``"patterns"`` (stdlib, the default) or ``"presidio"`` (the patterns, then the
    ``PERSON`` and ``LOCATION`` spans Presidio finds where no pattern matched; needs the ``[pii]`` extra).
    When pattern candidates of different kinds overlap, the longest span wins; equal lengths are
    broken by specificity (URL_CREDENTIALS, API_KEY, IBAN, CREDIT_CARD, SSN, EMAIL, IP_ADDRESS, PHONE,
    ADDRESS, PERSON).
    """
    check_backend(backend)
    kept = _pattern_spans(text)
    if backend == "presidio" and text.strip():
        from curator.quality.pii_presidio import find_entities

        kept = _merge(kept, find_entities(text))
    return [PiiMatch(kind, start, end, text[start:end]) for kind, start, end in kept]


def scrub(text: str, backend: str = DEFAULT_BACKEND) -> tuple[str, dict[str, int]]:
    """Replace every PII span of ``text`` with its placeholder (``"[EMAIL]"``, ...).

    Returns the scrubbed text and a count of replacements for every kind in
    :data:`KINDS` (kinds that did not occur count 0).  ``backend`` as in :func:`find_pii`.
    """
    counts = dict.fromkeys(KINDS, 0)
    matches = find_pii(text, backend)
    if not matches:
        return text, counts
    parts: list[str] = []
    pos = 0
    for m in matches:
        parts.append(text[pos : m.start])
        parts.append(PLACEHOLDERS[m.kind])
        counts[m.kind] += 1
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts), counts

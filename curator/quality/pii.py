"""Detect and scrub personally identifiable information (PII) and secrets in free text.

Stdlib only (``re``, ``ipaddress``).  Every kind is found by one precompiled pattern pass
(or a small fixed set of passes for ``API_KEY``), and every candidate is then validated
by a checksum or a structural rule so that look-alikes stay untouched:

=================  ====================  =======================================================
kind               placeholder           validation
=================  ====================  =======================================================
EMAIL              ``[EMAIL]``           local part + dotted domain with an alphabetic TLD
PHONE              ``[PHONE]``           ``+``/``00`` international, ``(area)`` prefix, NANP
                                         ``3-3-4`` or trunk-``0`` national grouping; 7-15 digits
CREDIT_CARD        ``[CREDIT_CARD]``     13-19 digits, card-like grouping, issuer prefix, Luhn
IP_ADDRESS         ``[IP_ADDRESS]``      IPv4 / IPv6 parsed by :mod:`ipaddress`
IBAN               ``[IBAN]``            ISO 13616 country length + mod-97 check
API_KEY            ``[API_KEY]``         OpenAI, AWS, GitHub, Slack, Stripe, Google, Hugging Face,
                                         JWT, ``Bearer <token>``, ``api_key=<token>``
URL_CREDENTIALS    ``[URL_CREDENTIALS]`` ``scheme://user:password@host...``
=================  ====================  =======================================================

Decisions worth knowing:

* ``URL_CREDENTIALS`` replaces the **whole URL** (scheme, userinfo, host, path and query),
  because the query string of such a URL frequently carries more secrets.
* ``Bearer <token>`` keeps the word ``Bearer``; only the token becomes ``[API_KEY]``.
  The same holds for ``api_key=<token>`` style assignments (only the value is replaced).
* A valid dotted quad is an IP address, except right after a version cue
  (``v1.2.3.4``, ``version 1.2.3.4``, ``build 1.2.3.4``, ``Chrome/120.0.0.0``).
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
* On overlap the longest span wins; equal lengths are broken by specificity
  (URL_CREDENTIALS > API_KEY > IBAN > CREDIT_CARD > EMAIL > IP_ADDRESS > PHONE).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["KINDS", "PLACEHOLDERS", "PiiMatch", "find_pii", "scrub"]

KINDS: tuple[str, ...] = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "IBAN",
    "API_KEY",
    "URL_CREDENTIALS",
)
"""Every kind :func:`find_pii` can report, in documentation order."""

PLACEHOLDERS: dict[str, str] = {kind: f"[{kind}]" for kind in KINDS}
"""The replacement text :func:`scrub` uses for each kind."""

# Lower rank = more specific; used only to break ties between equally long spans.
_RANK: dict[str, int] = {
    "URL_CREDENTIALS": 0,
    "API_KEY": 1,
    "IBAN": 2,
    "CREDIT_CARD": 3,
    "EMAIL": 4,
    "IP_ADDRESS": 5,
    "PHONE": 6,
}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One detected span: ``text[start:end] == self.text`` is of kind ``kind``."""

    kind: str
    start: int
    end: int
    text: str


_Span = tuple[str, int, int]

# --------------------------------------------------------------------------- EMAIL
# Anchored on the literal "@" (fast), the local part is found by scanning backwards.
_EMAIL_AT = re.compile(
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
    r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
)
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")


def _find_email(text: str) -> Iterator[_Span]:
    for m in _EMAIL_AT.finditer(text):
        at = m.start()
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        if local is None:
            continue
        start = local.start()
        while start < at and text[start] in ".-":
            start += 1
        if start < at and text[at - 1] != "." and text[max(0, start - 3) : start] != "://":
            yield ("EMAIL", start, m.end())  # (user@host right after "://" is URL userinfo)


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
_VERSION_CUE = re.compile(
    r"(?i:\bv|\bversion|\bver\.?|\brelease|\brel\.?|\bbuild|\bfirmware|\bfw|\bsdk|\bdriver|\bkernel"
    r"|\bpatch|\brevision|\brev\.?)\s*[:#=]?\s*\Z"
)
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
        if _VERSION_CUE.search(text, max(0, start - 16), start):
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


# ------------------------------------------------------------------- resolution
_DETECTORS = (
    _find_url_credentials,
    _find_api_keys,
    _find_ibans,
    _find_cards,
    _find_email,
    _find_ips,
    _find_phones,
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


def find_pii(text: str) -> list[PiiMatch]:
    """Return the PII spans in ``text``, sorted by position and never overlapping.

    When candidates of different kinds overlap, the longest span wins; equal lengths are
    broken by specificity (URL_CREDENTIALS, API_KEY, IBAN, CREDIT_CARD, EMAIL,
    IP_ADDRESS, PHONE).
    """
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
    return [PiiMatch(kind, start, end, text[start:end]) for kind, start, end in kept]


def scrub(text: str) -> tuple[str, dict[str, int]]:
    """Replace every PII span of ``text`` with its placeholder (``"[EMAIL]"``, ...).

    Returns the scrubbed text and a count of replacements for every kind in
    :data:`KINDS` (kinds that did not occur count 0).
    """
    counts = dict.fromkeys(KINDS, 0)
    matches = find_pii(text)
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

"""Recall / precision / throughput benchmark for :mod:`curator.quality.pii`.

Run ``.venv/bin/python benchmarks/pii.py`` (add ``--json`` for machine-readable output).

The generator below is deliberately independent of ``pii.py``: it shares no regexes with it
and builds its PII from first principles (Luhn check digits, ISO 13616 mod-97 check digits,
national phone numbering shapes, random tokens in each vendor's documented format).  With a
fixed seed it plants at least 30 strings per kind and at least 300 look-alikes (version
numbers, dates, order ids, prices, tracking numbers, UUIDs, SHAs, Luhn-failing card numbers,
IBANs with wrong check digits, ...) inside support-chat sentences, runs ``find_pii`` once over
the whole corpus and scores it:

* a detection is a true positive when its kind matches a planted string and its span covers
  that planted string; every other detection is a false positive;
* recall is per planted string, precision per detection.

A few planted phones are deliberately written without any separator (``4155550132``,
``07700900123``); ``pii.py`` does not report those (they look like ids), so PHONE recall
below 1.0 is expected and honest.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import random
import string
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curator.quality.pii import KINDS, PiiMatch, find_pii  # noqa: E402

SEED = 1305
PER_KIND = 50
N_LOOKALIKES = 360
TARGET_RECALL = 0.95
TARGET_PRECISION = 0.90

DIGITS = string.digits
UPPER = string.ascii_uppercase
ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# ----------------------------------------------------------------------------- cards
def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def make_card_digits(rng: random.Random) -> tuple[str, str]:
    brand = rng.choice(
        ["visa", "visa", "visa19", "mc", "mc2", "amex", "discover", "jcb", "diners", "unionpay"]
    )
    if brand == "visa":
        prefix, length = "4", 16
    elif brand == "visa19":
        prefix, length = "4", 19
    elif brand == "diners":
        prefix, length = rng.choice(["36", "38", "300", "305"]), 14
    elif brand == "unionpay":
        prefix, length = "62" + str(rng.randint(1, 9)), rng.choice([16, 19])
    elif brand == "mc":
        prefix, length = str(rng.randint(51, 55)), 16
    elif brand == "mc2":
        prefix, length = str(rng.randint(2221, 2720)), 16
    elif brand == "amex":
        prefix, length = rng.choice(["34", "37"]), 15
    elif brand == "discover":
        prefix, length = "6011", 16
    else:
        prefix, length = str(rng.randint(3528, 3589)), 16
    body = prefix + _rand(rng, DIGITS, length - len(prefix) - 1)
    return brand, body + luhn_check_digit(body)


def format_card(rng: random.Random, digits: str) -> str:
    sep = rng.choice(["", " ", "-", " "])
    if not sep:
        return digits
    if len(digits) == 15:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    if len(digits) == 14:  # Diners 4-6-4
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


def gen_card(rng: random.Random) -> str:
    digits = make_card_digits(rng)[1]
    if rng.random() < 0.1:
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4)).replace(
            " ", "  ", 1
        )  # typo: 2 spaces
    return format_card(rng, digits)


def gen_bad_card(rng: random.Random) -> str:
    _, digits = make_card_digits(rng)
    wrong = str((int(digits[-1]) + rng.randint(1, 9)) % 10)
    return format_card(rng, digits[:-1] + wrong)


# ----------------------------------------------------------------------------- IBANs
# BBAN structure per country: (count, class) with class n = digit, a = upper letter, c = alnum.
IBAN_FORMATS: dict[str, list[tuple[int, str]]] = {
    "GB": [(4, "a"), (14, "n")],
    "DE": [(18, "n")],
    "FR": [(10, "n"), (11, "c"), (2, "n")],
    "ES": [(20, "n")],
    "IT": [(1, "a"), (10, "n"), (12, "c")],
    "NL": [(4, "a"), (10, "n")],
    "BE": [(12, "n")],
    "CH": [(5, "n"), (12, "c")],
    "PL": [(24, "n")],
    "AT": [(16, "n")],
    "SE": [(20, "n")],
    "NO": [(11, "n")],
    "PT": [(21, "n")],
    "IE": [(4, "a"), (14, "n")],
}


def _mod97(s: str) -> int:
    rem = 0
    for ch in s:
        value = ch if ch.isdigit() else str(ord(ch) - ord("A") + 10)
        for d in value:
            rem = (rem * 10 + int(d)) % 97
    return rem


def make_iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(sorted(IBAN_FORMATS))
    bban = ""
    for count, cls in IBAN_FORMATS[country]:
        alphabet = {"n": DIGITS, "a": UPPER, "c": UPPER + DIGITS}[cls]
        bban += _rand(rng, alphabet, count)
    check = 98 - _mod97(bban + country + "00")
    if not valid:
        check = (check + rng.randint(1, 40)) % 97 + 2
        if _mod97(bban + country + f"{check:02d}") == 1:
            check = check + 1 if check < 98 else 2
    iban = f"{country}{check:02d}{bban}"
    if rng.random() < 0.08:
        iban = iban.lower()
    if rng.random() < 0.55:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


# ----------------------------------------------------------------------------- phones
def _d(rng: random.Random, n: int, first: str = DIGITS) -> str:
    return rng.choice(first) + _rand(rng, DIGITS, n - 1)


def gen_phone(rng: random.Random) -> str:
    area = _d(rng, 3, "23456789")
    exch = _d(rng, 3, "23456789")
    line = _d(rng, 4)
    shapes = [
        lambda: f"+1 ({area}) {exch}-{line}",
        lambda: f"({area}) {exch}-{line}",
        lambda: f"({area}) {exch} {line}",
        lambda: f"{area}-{exch}-{line}",
        lambda: f"{area}.{exch}.{line}",
        lambda: f"+1-{area}-{exch}-{line}",
        lambda: f"1-800-{exch}-{line}",
        lambda: f"1 (888) {exch}-{line}",
        lambda: f"+1 {area} {exch} {line}",
        lambda: f"+1{area}{exch}{line}",
        lambda: f"+44 20 {_d(rng, 4, '3789')} {_d(rng, 4)}",
        lambda: f"+44 (0)20 {_d(rng, 4, '3789')} {_d(rng, 4)}",
        lambda: f"020 {_d(rng, 4, '3789')} {_d(rng, 4)}",
        lambda: f"07{_d(rng, 3)} {_d(rng, 6)}",
        lambda: f"0044 20 {_d(rng, 4, '3789')} {_d(rng, 4)}",
        lambda: f"+44 7{_d(rng, 3)} {_d(rng, 6)}",
        lambda: f"+49 30 {_d(rng, rng.choice([6, 7, 8]), '123456789')}",
        lambda: f"+49 (0)89 {_d(rng, 7, '123456789')}",
        lambda: f"030 {_d(rng, 7, '123456789')}",
        lambda: f"+49 15{_d(rng, 1)} {_d(rng, 8)}",
        lambda: f"0049 89 {_d(rng, 8, '123456789')}",
        lambda: "+33 " + rng.choice("1234567") + " " + " ".join(_d(rng, 2) for _ in range(4)),
        lambda: "06 " + " ".join(_d(rng, 2) for _ in range(4)),
        lambda: "01." + ".".join(_d(rng, 2) for _ in range(4)),
        lambda: f"+91 {_d(rng, 5, '6789')} {_d(rng, 5)}",
        lambda: f"+81 3-{_d(rng, 4)}-{_d(rng, 4)}",
        lambda: f"+61 2 {_d(rng, 4)} {_d(rng, 4)}",
        lambda: f"+61 4{_d(rng, 2)} {_d(rng, 3)} {_d(rng, 3)}",
        lambda: f"+55 11 9{_d(rng, 4)}-{_d(rng, 4)}",
        lambda: f"+34 6{_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)}",
        lambda: f"+31 6 {_d(rng, 8)}",
        lambda: f"+353 1 {_d(rng, 3)} {_d(rng, 4)}",
        lambda: f"+86 10 {_d(rng, 4)} {_d(rng, 4)}",
        lambda: f"+7 495 {_d(rng, 3)}-{_d(rng, 2)}-{_d(rng, 2)}",
        # harder, still common in the wild
        lambda: f"{exch}-{line}",  # 7-digit local number
        lambda: f"030/{_d(rng, 7, '123456789')}",  # German slash style
        lambda: f"(+44) 20 {_d(rng, 4, '3789')} {_d(rng, 4)}",
        lambda: f"+44 020 {_d(rng, 4, '3789')} {_d(rng, 4)}",  # trunk 0 wrongly kept
        lambda: f"+91-{_d(rng, 5, '6789')}-{_d(rng, 5)}",
        lambda: f"+1.{area}.{exch}.{line}",
        lambda: f"{area} {exch} {line}",
        lambda: f"+49 (0) 30 {_d(rng, 3)} {_d(rng, 4)}",
        # known-hard: no separators at all (indistinguishable from ids without context)
        lambda: f"07{_d(rng, 3)}{_d(rng, 6)}",
        lambda: f"{area}{exch}{line}",
    ]
    return rng.choice(shapes)()


# ----------------------------------------------------------------------------- emails
FIRST = [
    "john",
    "maria",
    "wei",
    "aisha",
    "lars",
    "priya",
    "diego",
    "fatima",
    "oliver",
    "yuki",
    "chloe",
    "ahmed",
]
LAST = [
    "smith",
    "garcia",
    "chen",
    "okafor",
    "nilsson",
    "patel",
    "rossi",
    "haddad",
    "brown",
    "tanaka",
    "o-neil",
]
DOMAINS = [
    "gmail.com", "outlook.com", "yahoo.co.uk", "acme-corp.io", "mail.example.org", "web.de",
    "company.com.au", "support.bigshop.fr", "protonmail.ch", "uni-heidelberg.de", "startup.ai",
]  # fmt: skip


def gen_email(rng: random.Random) -> str:
    f, la = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([
        f"{f}.{la}", f"{f}_{la}", f"{f[0]}{la}", f"{f}{rng.randint(1, 99)}", f"{f}.{la}+{rng.choice(['orders', 'spam', 'x'])}",
        f"{f.capitalize()}.{la.capitalize()}", f"{f}-{la}{rng.randint(1970, 2005)}",
    ])  # fmt: skip
    domain = rng.choice(DOMAINS)
    if rng.random() < 0.15:
        domain = domain.upper()
    return f"{local}@{domain}"


# ----------------------------------------------------------------------------- IPs
def gen_ip(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.55:
        first = rng.choice([10, 172, 192, 203, 198, 81, 145, 52, 8, 100])
        return ".".join(
            str(x) for x in [first, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)]
        )
    addr = ipaddress.IPv6Address(rng.getrandbits(128))
    if r < 0.65:
        return addr.exploded
    if r < 0.75:
        return str(ipaddress.IPv6Address(f"2001:db8::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"))
    if r < 0.85:
        return f"fe80::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"
    if r < 0.92:
        return f"::ffff:192.0.2.{rng.randint(1, 254)}"
    if r < 0.96:
        return str(addr).upper()
    return str(addr)


# ----------------------------------------------------------------------------- API keys
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def gen_jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    payload = _b64url(
        json.dumps(
            {"sub": str(rng.randint(10**6, 10**9)), "name": rng.choice(FIRST), "iat": 1714567890}
        ).encode()
    )
    return f"{header}.{payload}.{_rand(rng, B64URL, 43)}"


def gen_api_key(rng: random.Random) -> tuple[str, str]:
    """Returns (planted secret, surrounding form) where form contains ``{}`` for the secret."""
    kind = rng.randrange(14)
    if kind == 10:
        return _rand(rng, ALNUM + "/+", 40), "aws_secret_access_key = {}"
    if kind == 11:
        return "sk_live_" + _rand(rng, ALNUM, 24), "{}"
    if kind == 12:
        return _rand(rng, "0123456789abcdef", 32), "x-api-key: {}"
    if kind == 13:
        return _rand(rng, ALNUM, 40), "authorization: bearer {}"
    if kind == 0:
        return "sk-" + _rand(rng, ALNUM, 48), "{}"
    if kind == 1:
        return "sk-proj-" + _rand(rng, B64URL, 120), "{}"
    if kind == 2:
        return "AKIA" + _rand(rng, UPPER + DIGITS, 16), "{}"
    if kind == 3:
        return rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + _rand(rng, ALNUM, 36), "{}"
    if kind == 4:
        token = f"{rng.choice(['xoxb', 'xoxp', 'xoxa', 'xoxr', 'xoxs'])}-{_d(rng, 12)}-{_d(rng, 13)}-"
        return token + _rand(rng, ALNUM, 24), "{}"
    if kind == 5:
        return _rand(rng, ALNUM + "-._~", 40), "Authorization: Bearer {}"
    if kind == 6:
        return gen_jwt(rng), "Authorization: Bearer {}"
    if kind == 7:
        return gen_jwt(rng), "{}"
    if kind == 8:
        return "sk-ant-api03-" + _rand(rng, B64URL, 90), "{}"
    return "AIza" + _rand(rng, B64URL, 35), "{}"


# ----------------------------------------------------------------------------- URL creds
def gen_url_credentials(rng: random.Random) -> str:
    scheme = rng.choice(
        ["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp", "https", "ftp", "smtp", "sftp"]
    )
    user = rng.choice(["admin", "app_user", "deploy", "svc-backup", rng.choice(FIRST)])
    password = _rand(rng, ALNUM, rng.randint(8, 20)) + rng.choice(["", "!", "%40x", "~9", "-_", "@1", "$"])
    if scheme == "redis" and rng.random() < 0.5:
        user = ""
    host = rng.choice(
        ["db.internal", "10.2.3.4", "cluster0.ab1cd.mongodb.net", "mq.example.com", "files.acme.io"]
    )
    port = rng.choice(["", ":5432", ":6379", ":5672", ":21"])
    path = rng.choice(["", "/app", "/prod?sslmode=require", "/vhost", "/exports/2024/"])
    return f"{scheme}://{user}:{password}@{host}{port}{path}"


# ----------------------------------------------------------------------------- look-alikes
def gen_lookalike(rng: random.Random) -> tuple[str, str]:
    """Returns (category, string) for a non-PII look-alike."""
    c = rng.randrange(26)
    if c == 20:
        body = "35" + _rand(rng, DIGITS, 12)
        return "imei", "IMEI " + body + luhn_check_digit(body)  # Luhn-valid but not a card
    if c == 21:
        body = "8944" + _rand(rng, DIGITS, 14)
        return "iccid", body + luhn_check_digit(body)  # SIM ICCID, Luhn-valid
    if c == 22:
        return "order_id", f"{rng.randint(100, 999)}-{_rand(rng, DIGITS, 7)}-{_rand(rng, DIGITS, 7)}"
    if c == 23:
        return "request_id", rng.choice(["request_id=", "trace: ", "X-Request-Id: "]) + _rand(
            rng, "0123456789abcdef", 32
        )
    if c == 24:
        return "coordinates", f"{rng.uniform(-80, 80):.4f}, {rng.uniform(-170, 170):.4f}"
    if c == 25:
        y, m, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
        return "timestamp", rng.choice([f"{m:02d}/{d:02d}/{y} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                                        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}",
                                        f"{y}{m:02d}{d:02d}-{rng.randint(0, 235959):06d}"])  # fmt: skip
    if c == 0:
        parts = [rng.randint(0, 20), rng.randint(0, 30), rng.randint(0, 200), rng.randint(0, 250)]
        return "version", rng.choice(["v", "version ", "build ", "firmware "]) + ".".join(map(str, parts))
    if c == 1:
        return "version", f"{rng.randint(1, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 40)}"
    if c == 2:
        return "version", f"Chrome/{rng.randint(100, 130)}.0.{rng.randint(1000, 6999)}.{rng.randint(10, 250)}"
    if c == 3:
        y, m, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
        return "date", rng.choice([f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{d:02d}.{m:02d}.{y}"])
    if c == 4:
        y, m, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
        return (
            "timestamp",
            f"{y}-{m:02d}-{d:02d}{rng.choice(['T', ' '])}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        )  # noqa: E501
    if c == 5:
        return "order_id", rng.choice([
            f"ORD-{rng.randint(2019, 2026)}-{rng.randint(0, 999999):06d}", f"#{rng.randint(10**8, 10**9 - 1)}",
            f"INV-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}", f"order {rng.randint(10**9, 10**10 - 1)}",
        ])  # fmt: skip
    if c == 6:
        return "price", rng.choice([
            f"${rng.randint(1, 9)},{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}", f"€{rng.randint(1, 999)},{rng.randint(0, 99):02d}",
            f"£{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}", f"{rng.randint(1, 99)},{rng.randint(0, 999):03d}.00 USD",
        ])  # fmt: skip
    if c == 7:
        return "tracking", rng.choice([
            "1Z" + _rand(rng, UPPER + DIGITS, 16),
            "9400 " + " ".join(_rand(rng, DIGITS, 4) for _ in range(4)) + " " + _rand(rng, DIGITS, 2),
            " ".join(_rand(rng, DIGITS, 4) for _ in range(3)),
            "JD" + _rand(rng, DIGITS, 18),
        ])  # fmt: skip
    if c == 8:
        return "uuid", str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if c == 9:
        sha = _rand(rng, "0123456789abcdef", 40)
        return "sha", rng.choice([sha, sha[:7], sha[:12]])
    if c == 10:
        return "bad_luhn_card", gen_bad_card(rng)
    if c == 11:
        return "bad_iban", make_iban(rng, valid=False)
    if c == 12:
        return "isbn", rng.choice(
            ["978-3-16-148410-0", "ISBN 0-306-40615-2", "978-1-4028-9462-6", "ISBN 979-8-6022-1314-5"]
        )
    if c == 13:
        return "short_number", rng.choice([f"{rng.randint(2, 99)} items", f"ticket {rng.randint(1000, 99999)}",
                                           f"room {rng.randint(100, 999)}", f"{rng.randint(2, 60)} minutes"])  # fmt: skip
    if c == 14:
        return "epoch", str(rng.randint(1_600_000_000, 1_800_000_000)) + rng.choice(
            ["", str(rng.randint(100, 999))]
        )
    if c == 15:
        return (
            "bad_ip",
            f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}",
        )
    if c == 16:
        return "url", rng.choice([
            f"https://example.com/orders/{rng.randint(1000, 9999)}?page=2", "https://user@github.com/acme/repo.git",
            f"https://shop.example.com/p/{rng.randint(10**5, 10**6)}#reviews",
        ])  # fmt: skip
    if c == 17:
        return "mac", ":".join(_rand(rng, "0123456789ABCDEF", 2) for _ in range(6))
    if c == 18:
        return "account_ref", rng.choice([
            f"SKU {rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(10, 99)}",
            f"case {rng.randint(10**5, 10**6 - 1)}-{rng.randint(10, 99)}",
            f"ref {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        ])  # fmt: skip
    return "placeholder_secret", rng.choice([
        "sk-your-key-here", "Bearer <token>", "AKIA...", "a Bearer token", "xoxb-...", "api_key=YOUR_API_KEY",
    ])  # fmt: skip


# ----------------------------------------------------------------------------- sentences
PII_TEMPLATES: dict[str, list[str]] = {
    "EMAIL": [
        "Hi, my account email is {x} but I never got the reset link.",
        "Please send the invoice to {x}.",
        "Can you change my login from the old address to {x}? Thanks!",
        "User reported: 'contact me at <{x}>' after the outage.",
        "mailto:{x}",
        "cc: {x}, they handle billing for our team",
    ],
    "PHONE": [
        "You can call me back on {x} after 5pm.",
        "My new number is {x}.",
        "Phone: {x}",
        "Customer left a voicemail ({x}) asking about the refund.",
        "Reach our warehouse at {x}, ext. 12",
        "tel:{x}",
        "whatsapp {x} please, I am travelling",
    ],
    "CREDIT_CARD": [
        "I was charged twice on card {x}, expiry 04/27.",
        "Card number: {x}",
        "The payment with {x} keeps failing at checkout.",
        "pls refund to my visa {x} asap",
        "[payment] card={x} status=declined",
    ],
    "IP_ADDRESS": [
        "Login attempt blocked from {x} at 03:14 UTC.",
        "The API call came from IP {x}.",
        "client_ip={x} method=POST path=/v1/chat",
        "My router shows {x} as the gateway.",
        "Connection refused to [{x}]:443",
    ],
    "IBAN": [
        "Please wire the refund to IBAN {x}.",
        "My bank details: {x} (Deutsche Bank).",
        "IBAN: {x}",
        "Can you update the payout account to {x}? The old one is closed.",
    ],
    "API_KEY": [
        "I accidentally pasted my key {x} in the last message, is that a problem?",
        "Error 401 with header {x}",
        "export OPENAI_API_KEY={x}",
        "config: token = '{x}'",
        "Here is the curl: curl -H '{x}' https://api.example.com/v1/models",
    ],
    "URL_CREDENTIALS": [
        "Our connection string is {x} and it times out.",
        "DATABASE_URL={x}",
        "The worker logs show: failed to connect to {x}",
        "I set the broker to {x}, is that right?",
    ],
}

LOOKALIKE_TEMPLATES = [
    "The app is on {x} and still crashes on startup.",
    "I ordered it on {x} and it has not arrived.",
    "Reference: {x}",
    "My order {x} shows as delivered but I have nothing.",
    "It cost {x} and the box was damaged.",
    "Tracking says {x}, can you check?",
    "The log line was: request_id={x} status=500",
    "Commit {x} introduced the regression.",
    "I think the number is {x}, not sure.",
    "See {x} for details.",
]

FILLER = [
    "Thanks for getting back to me so quickly.",
    "I have restarted the app twice and cleared the cache.",
    "The agent said it would be escalated to tier 2.",
    "Is there any update on this ticket?",
    "This is the third time this week the export failed.",
    "Sure, happy to help. Could you confirm the last four digits of the order?",
    "We rolled out the fix on Tuesday; please try again and let us know.",
    "The dashboard shows 12 failed jobs and 3 retries in the last hour.",
]


@dataclass
class Planted:
    kind: str  # a KINDS entry, or "LOOKALIKE:<category>"
    start: int
    end: int
    text: str


def build_corpus(seed: int = SEED) -> tuple[str, list[Planted]]:
    rng = random.Random(seed)
    items: list[tuple[str, str, str]] = []  # (kind, planted, form)
    gens = {
        "EMAIL": gen_email,
        "PHONE": gen_phone,
        "CREDIT_CARD": gen_card,
        "IP_ADDRESS": gen_ip,
        "IBAN": make_iban,
    }
    for kind in KINDS:
        for _ in range(PER_KIND):
            if kind == "API_KEY":
                secret, form = gen_api_key(rng)
            elif kind == "URL_CREDENTIALS":
                secret, form = gen_url_credentials(rng), "{}"
            else:
                secret, form = gens[kind](rng), "{}"
            items.append((kind, secret, form))
    for _ in range(N_LOOKALIKES):
        category, text = gen_lookalike(rng)
        items.append((f"LOOKALIKE:{category}", text, "{}"))
    rng.shuffle(items)

    lines: list[str] = []
    planted: list[Planted] = []
    offset = 0
    for kind, secret, form in items:
        templates = LOOKALIKE_TEMPLATES if kind.startswith("LOOKALIKE") else PII_TEMPLATES[kind]
        template = rng.choice(templates)
        if kind == "IP_ADDRESS" and "[{x}]" in template and ":" not in secret:
            template = "Connection refused to {x}:443"
        filled_form = form.replace("{}", "\0")
        sentence = template.replace("{x}", filled_form)
        if rng.random() < 0.3:
            sentence = rng.choice(FILLER) + " " + sentence
        pos = sentence.index("\0")
        sentence = sentence.replace("\0", secret)
        planted.append(Planted(kind, offset + pos, offset + pos + len(secret), secret))
        lines.append(sentence)
        offset += len(sentence) + 1
    return "\n".join(lines) + "\n", planted


def plain_text(rng: random.Random, size: int) -> str:
    """PII-free chat text of about ``size`` characters (for throughput)."""
    parts: list[str] = []
    n = 0
    while n < size:
        s = rng.choice(FILLER)
        parts.append(s)
        n += len(s) + 1
    return "\n".join(parts)


def score(planted: list[Planted], detections: list[PiiMatch]) -> dict[str, object]:
    pii = [p for p in planted if not p.kind.startswith("LOOKALIKE")]
    by_kind: dict[str, dict[str, float]] = {}
    covered: set[int] = set()
    exact: set[int] = set()
    tp_det = [False] * len(detections)
    starts = sorted(range(len(pii)), key=lambda i: pii[i].start)
    for di, det in enumerate(detections):
        for pi in starts:
            p = pii[pi]
            if p.start >= det.end:
                break
            if p.kind == det.kind and det.start <= p.start and det.end >= p.end:
                covered.add(pi)
                tp_det[di] = True
                if det.start == p.start and det.end == p.end:
                    exact.add(pi)
    false_positives: list[dict[str, str]] = []
    for di, det in enumerate(detections):
        if not tp_det[di]:
            hit = next((p for p in planted if p.start < det.end and det.start < p.end), None)
            false_positives.append({"kind": det.kind, "text": det.text, "planted": hit.kind if hit else "-"})
    for kind in KINDS:
        idx = [i for i, p in enumerate(pii) if p.kind == kind]
        dets = [i for i, d in enumerate(detections) if d.kind == kind]
        tp = sum(1 for i in idx if i in covered)
        by_kind[kind] = {
            "planted": len(idx),
            "detected": len(dets),
            "recall": tp / len(idx) if idx else 1.0,
            "precision": (sum(1 for i in dets if tp_det[i]) / len(dets)) if dets else 1.0,
            "exact_span": sum(1 for i in idx if i in exact) / len(idx) if idx else 1.0,
        }
    missed = [{"kind": pii[i].kind, "text": pii[i].text} for i in range(len(pii)) if i not in covered]
    return {
        "per_kind": by_kind,
        "recall": len(covered) / len(pii),
        "precision": (sum(tp_det) / len(detections)) if detections else 1.0,
        "planted_pii": len(pii),
        "planted_lookalikes": len(planted) - len(pii),
        "detections": len(detections),
        "missed": missed,
        "false_positives": false_positives,
    }


def throughput(text: str, min_seconds: float = 0.5) -> float:
    """MB/s of ``find_pii`` over ``text`` (UTF-8 size), best of several runs."""
    size_mb = len(text.encode()) / 1e6
    best = float("inf")
    spent = 0.0
    runs = 0
    while spent < min_seconds or runs < 3:
        t0 = time.perf_counter()
        find_pii(text)
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        runs += 1
    return size_mb / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--show-errors", action="store_true", help="list missed PII and false positives")
    args = parser.parse_args(argv)

    corpus, planted = build_corpus(args.seed)
    detections = find_pii(corpus)
    result = score(planted, detections)
    mixed_text = corpus * max(1, 2_000_000 // len(corpus))
    plain = plain_text(random.Random(args.seed), 4_000_000)
    result["throughput_mb_s"] = {"mixed": throughput(mixed_text), "plain": throughput(plain)}
    passed = result["recall"] >= TARGET_RECALL and result["precision"] >= TARGET_PRECISION
    result["targets"] = {"recall": TARGET_RECALL, "precision": TARGET_PRECISION}
    result["pass"] = passed

    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if passed else 1

    print(
        f"corpus: {len(corpus):,} chars, {result['planted_pii']} planted PII, "
        f"{result['planted_lookalikes']} look-alikes, {result['detections']} detections (seed {args.seed})"
    )
    print(f"{'kind':<16}{'planted':>8}{'detected':>9}{'recall':>8}{'precision':>10}{'exact':>7}")
    for kind, row in result["per_kind"].items():  # type: ignore[union-attr]
        print(
            f"{kind:<16}{row['planted']:>8}{row['detected']:>9}{row['recall']:>8.3f}"
            f"{row['precision']:>10.3f}{row['exact_span']:>7.3f}"
        )
    print(
        f"{'OVERALL':<16}{result['planted_pii']:>8}{result['detections']:>9}"
        f"{result['recall']:>8.3f}{result['precision']:>10.3f}"
    )
    tp = result["throughput_mb_s"]
    print(
        f"throughput: {tp['mixed']:.1f} MB/s on the benchmark corpus, "  # type: ignore[index]
        f"{tp['plain']:.1f} MB/s on PII-free chat text"
    )  # type: ignore[index]
    if args.show_errors:
        for m in result["missed"]:  # type: ignore[union-attr]
            print(f"MISSED   {m['kind']:<16} {m['text']!r}")
        for f in result["false_positives"]:  # type: ignore[union-attr]
            print(f"FALSE+   {f['kind']:<16} {f['text']!r} (over {f['planted']})")
    print(
        f"{'PASS' if passed else 'FAIL'}: recall {result['recall']:.3f} (target >= {TARGET_RECALL}), "
        f"precision {result['precision']:.3f} (target >= {TARGET_PRECISION})"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Tests for curator.quality.pii: detection per kind, look-alikes, checksums, scrubbing, overlaps."""

from __future__ import annotations

import time

import pytest

from curator.quality.pii import KINDS, PLACEHOLDERS, PiiMatch, find_pii, scrub

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

# (sentence, kind, the exact PII substring)
POSITIVES: list[tuple[str, str, str]] = [
    # EMAIL
    ("Please reset the password for john.smith@example.com today.", "EMAIL", "john.smith@example.com"),
    (
        "cc Maria.Garcia+billing@mail.acme-corp.co.uk on the invoice",
        "EMAIL",
        "Maria.Garcia+billing@mail.acme-corp.co.uk",
    ),
    ("Contact: <wei_chen99@uni-heidelberg.de>.", "EMAIL", "wei_chen99@uni-heidelberg.de"),
    ("mailto:SUPPORT@BIGSHOP.FR", "EMAIL", "SUPPORT@BIGSHOP.FR"),
    # PHONE
    ("Call me on +44 20 7946 0958 after 5pm.", "PHONE", "+44 20 7946 0958"),
    ("My US number is +1 (415) 555-0132.", "PHONE", "+1 (415) 555-0132"),
    ("Reach the office at 415-555-0132, ext. 4", "PHONE", "415-555-0132"),
    ("Landline (415) 555 0132 works best", "PHONE", "(415) 555 0132"),
    ("Berlin office: +49 30 123456", "PHONE", "+49 30 123456"),
    ("from abroad dial 0044 20 7946 0958", "PHONE", "0044 20 7946 0958"),
    ("Paris: +33 (0)1 23 45 67 89 (mornings)", "PHONE", "+33 (0)1 23 45 67 89"),
    ("or on 020 7946 0958 in London", "PHONE", "020 7946 0958"),
    ("mobile 07700 900123 please", "PHONE", "07700 900123"),
    ("tel:+14155550132", "PHONE", "+14155550132"),
    ("toll free 1 (800) 555-0199 anytime", "PHONE", "1 (800) 555-0199"),
    ("call 415.555.0132 now", "PHONE", "415.555.0132"),
    ("India: +91 98765 43210", "PHONE", "+91 98765 43210"),
    ("Tokyo +81 3-1234-5678.", "PHONE", "+81 3-1234-5678"),
    ("Büro 030/1234567 ab 9 Uhr", "PHONE", "030/1234567"),
    ("UK (+44) 20 7946 0958", "PHONE", "(+44) 20 7946 0958"),
    # CREDIT_CARD (all Luhn-valid)
    ("I was charged twice on 4111 1111 1111 1111, expiry 04/27.", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("card=5555-5555-5555-4444 status=declined", "CREDIT_CARD", "5555-5555-5555-4444"),
    ("Amex 3782 822463 10005 was refused", "CREDIT_CARD", "3782 822463 10005"),
    ("compact 378282246310005 too", "CREDIT_CARD", "378282246310005"),
    ("Discover 6011111111111117.", "CREDIT_CARD", "6011111111111117"),
    ("card 4111 1111 1111 1111 12/26 cvv on file", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("new mastercard 2223 0031 2200 3222 arrived", "CREDIT_CARD", "2223 0031 2200 3222"),
    # IP_ADDRESS
    ("Login attempt blocked from 203.0.113.42 at 03:14 UTC.", "IP_ADDRESS", "203.0.113.42"),
    ("client_ip=10.0.0.5 method=POST", "IP_ADDRESS", "10.0.0.5"),
    ("gateway 192.168.1.1:8080 is down", "IP_ADDRESS", "192.168.1.1"),
    ("bare quad 1.2.3.4 is an address", "IP_ADDRESS", "1.2.3.4"),
    (
        "v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 seen",
        "IP_ADDRESS",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    ),
    ("compressed 2001:db8::8a2e:370:7334.", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    ("link-local fe80::1ff:fe23:4567:890a%eth0 here", "IP_ADDRESS", "fe80::1ff:fe23:4567:890a%eth0"),
    ("connect to [2001:db8::1]:443 failed", "IP_ADDRESS", "2001:db8::1"),
    ("mapped ::ffff:192.0.2.128 address", "IP_ADDRESS", "::ffff:192.0.2.128"),
    # IBAN (valid mod-97)
    ("Please wire the refund to IBAN GB82 WEST 1234 5698 7654 32.", "IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("Konto DE89370400440532013000 bitte", "IBAN", "DE89370400440532013000"),
    ("payout to FR14 2004 1010 0505 0001 3M02 606", "IBAN", "FR14 2004 1010 0505 0001 3M02 606"),
    ("NL: NL91ABNA0417164300", "IBAN", "NL91ABNA0417164300"),
    ("lower case de89 3704 0044 0532 0130 00 too", "IBAN", "de89 3704 0044 0532 0130 00"),
    # API_KEY
    (
        "I pasted sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_Q-7 by mistake",
        "API_KEY",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_Q-7",
    ),
    (
        "export OPENAI_API_KEY=sk-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa98765432",
        "API_KEY",
        "sk-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa98765432",
    ),
    ("aws key AKIAIOSFODNN7EXAMPLE leaked", "API_KEY", "AKIAIOSFODNN7EXAMPLE"),
    (
        "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 in CI",
        "API_KEY",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    ),
    (
        "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "API_KEY",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    ("Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0", "API_KEY", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    (f"the session cookie was {JWT} yesterday", "API_KEY", JWT),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "API_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "API_KEY", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    # URL_CREDENTIALS (the whole URL is reported)
    (
        "Our DSN is postgres://admin:s3cr3t@db.example.com:5432/app?sslmode=require.",
        "URL_CREDENTIALS",
        "postgres://admin:s3cr3t@db.example.com:5432/app?sslmode=require",
    ),
    (
        "broker redis://:pw123abc@cache.internal:6379 times out",
        "URL_CREDENTIALS",
        "redis://:pw123abc@cache.internal:6379",
    ),
    (
        "(see https://deploy:Tr0ub4dor@files.acme.io/exports/)",
        "URL_CREDENTIALS",
        "https://deploy:Tr0ub4dor@files.acme.io/exports/",
    ),
    (
        "mongodb+srv://app_user:p@ss@cluster0.ab1cd.mongodb.net/prod",
        "URL_CREDENTIALS",
        "mongodb+srv://app_user:p@ss@cluster0.ab1cd.mongodb.net/prod",
    ),
]

NEGATIVES: list[str] = [
    # version numbers
    "Upgraded to v1.2.3.4 and it still crashes.",
    "We are on version 10.2.0.1 of the agent.",
    "running build 4.1.2.0 from last week",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36",
    "semver 1.2.3 and 10.0.19045.3693",
    # dates and timestamps
    "It shipped on 2024-05-01 and arrived 05/01/2024.",
    "Deadline 01.05.2024, meeting 2024-05-01T12:30:45Z, log at 12:30:45.123",
    "between 2024-05-01 12:00:00 and 2024-05-02 08:15:00",
    # order ids, prices, short numbers
    "Order ORD-2024-000123 and #123456789 are missing.",
    "Amazon order 112-1234567-1234567 was cancelled.",
    "It cost $1,299.99 (or €2.499,00), plus £45.00 shipping.",
    "I have 3 items in ticket 48213, room 402, 15 minutes.",
    "INV-0042-7781 SKU 123-456-78",
    # ISBNs, UUIDs, SHAs, tracking numbers
    "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2",
    "request 123e4567-e89b-12d3-a456-426614174000 failed",
    "uuid 12345678-1234-1234-1234-123456789012",
    "commit 9fceb02d0ae598e95dc970b74dd6e1d7bb2e3ad2 (9fceb02)",
    "UPS 1Z999AA10123456784, USPS 9400 1000 0000 0000 0000 00, FedEx 7489 2746 1234",
    # Luhn-failing 16 digits, Luhn-valid non-cards
    "card 4111 1111 1111 1112 was typed wrong",
    "IMEI 356938035643809 and ICCID 8944500102198304826",
    "epoch 1714567890 and 1714567890123 ms",
    # bad IBAN check digits
    "IBAN GB83 WEST 1234 5698 7654 32 looks off",
    "DE89370400440532013001",
    # invalid IPs, MACs, code
    "999.10.2.1 and 256.1.1.1 are not addresses",
    "mac 00:1A:2B:3C:4D:5E",
    "use std::vector and a[1::2] slices; ::1 is loopback",
    # secrets-shaped prose and placeholders, URLs without passwords
    "Use a Bearer token in the Authorization header.",
    "set api_key=YOUR_API_KEY and sk-your-key-here",
    "clone https://user@github.com/acme/repo.git or https://example.com/orders/123?page=2",
    "scikit-learn and risk-assessment-2024-q3-final-v2",
    "request_id=3f9a8c0b7d6e5f4a3b2c1d0e9f8a7b6c",
    "coordinates 52.5200, 13.4050",
]


@pytest.mark.parametrize(("sentence", "kind", "expected"), POSITIVES)
def test_detects_each_kind_in_sentences(sentence: str, kind: str, expected: str) -> None:
    matches = find_pii(sentence)
    assert [(m.kind, m.text) for m in matches] == [(kind, expected)]
    m = matches[0]
    assert sentence[m.start : m.end] == m.text


def test_every_kind_has_positive_examples() -> None:
    covered = {kind for _, kind, _ in POSITIVES}
    assert covered == set(KINDS)
    for kind in KINDS:
        assert sum(1 for _, k, _ in POSITIVES if k == kind) >= 4


@pytest.mark.parametrize("sentence", NEGATIVES)
def test_lookalikes_are_not_flagged(sentence: str) -> None:
    assert find_pii(sentence) == []
    scrubbed, counts = scrub(sentence)
    assert scrubbed == sentence
    assert sum(counts.values()) == 0


def test_luhn_check_decides_credit_cards() -> None:
    valid = "4539 1488 0343 6467"
    for last in "0123456789":
        candidate = valid[:-1] + last
        found = [m.kind for m in find_pii(f"card {candidate} please")]
        assert found == (["CREDIT_CARD"] if last == "7" else []), candidate


def test_card_needs_a_known_issuer_prefix() -> None:
    # Luhn-valid but starting with 9 / 1 (tracking numbers, ids) is not a card.
    assert find_pii("ref 9400100000000000009") == []
    assert find_pii("ref 1000000000000008") == []
    assert [m.kind for m in find_pii("ref 4000000000000002")] == ["CREDIT_CARD"]


def test_iban_mod97_check_decides() -> None:
    valid = "GB82WEST12345698765432"
    assert [m.kind for m in find_pii(valid)] == ["IBAN"]
    for check in ("81", "83", "28", "00", "99"):
        bad = valid[:2] + check + valid[4:]
        assert find_pii(f"IBAN {bad}") == [], bad
    # one changed BBAN digit breaks the checksum too
    assert find_pii("IBAN GB82WEST12345698765433") == []
    # right checksum but wrong length for the country
    assert find_pii("IBAN DE8937040044053201300") == []


def test_scrub_counts_every_kind() -> None:
    text = (
        "Hi, I'm john@example.com (also jsmith@example.org), call +44 20 7946 0958. "
        "Card 4111-1111-1111-1111 from 203.0.113.7, refund to DE89 3704 0044 0532 0130 00. "
        "My key AKIAIOSFODNN7EXAMPLE and db mysql://root:hunter22@10.0.0.3/shop"
    )
    scrubbed, counts = scrub(text)
    assert counts == {
        "EMAIL": 2,
        "PHONE": 1,
        "CREDIT_CARD": 1,
        "IP_ADDRESS": 1,
        "IBAN": 1,
        "API_KEY": 1,
        "URL_CREDENTIALS": 1,
    }
    assert scrubbed == (
        "Hi, I'm [EMAIL] (also [EMAIL]), call [PHONE]. "
        "Card [CREDIT_CARD] from [IP_ADDRESS], refund to [IBAN]. "
        "My key [API_KEY] and db [URL_CREDENTIALS]"
    )


def test_scrubbed_output_contains_no_raw_pii() -> None:
    text = "\n".join(sentence for sentence, _, _ in POSITIVES)
    scrubbed, counts = scrub(text)
    for _, _, raw in POSITIVES:
        assert raw not in scrubbed
    assert sum(counts.values()) == len(POSITIVES)
    for kind in KINDS:
        assert scrubbed.count(PLACEHOLDERS[kind]) == counts[kind]
    # scrubbing is idempotent: placeholders are not PII
    assert scrub(scrubbed) == (scrubbed, dict.fromkeys(KINDS, 0))


def test_bearer_keeps_the_word_and_drops_the_token() -> None:
    scrubbed, counts = scrub(f"Authorization: Bearer {JWT}")
    assert scrubbed == "Authorization: Bearer [API_KEY]"
    assert counts["API_KEY"] == 1


def test_overlaps_resolve_to_one_longest_span() -> None:
    # URL userinfo contains an e-mail-looking "pass@host.tld" and an IPv4 host
    url = "https://ops:s3cret@203.0.113.9/admin"
    assert [(m.kind, m.text) for m in find_pii(f"go to {url} now")] == [("URL_CREDENTIALS", url)]
    url2 = "ftp://bob:pa55word@files.example.com/pub"
    assert [(m.kind, m.text) for m in find_pii(url2)] == [("URL_CREDENTIALS", url2)]
    # a spaced IBAN whose digit groups look like a phone number / card
    iban = "NL91 ABNA 0417 1643 00"
    assert [(m.kind, m.text) for m in find_pii(f"IBAN {iban}")] == [("IBAN", iban)]
    # a JWT after Bearer is reported once
    assert [m.kind for m in find_pii(f"Bearer {JWT}")] == ["API_KEY"]


def test_matches_are_sorted_and_non_overlapping() -> None:
    text = " ".join(sentence for sentence, _, _ in POSITIVES) * 3
    matches = find_pii(text)
    assert len(matches) == 3 * len(POSITIVES)
    for a, b in zip(matches, matches[1:], strict=False):
        assert a.end <= b.start
    assert all(isinstance(m, PiiMatch) and text[m.start : m.end] == m.text for m in matches)


def test_two_cards_in_one_run_and_tracking_number_around_a_card() -> None:
    found = find_pii("cards 4111 1111 1111 1111 5555 5555 5555 4444 on file")
    assert [m.text for m in found] == ["4111 1111 1111 1111", "5555 5555 5555 4444"]
    # a Luhn-valid 16-digit core inside a longer same-format run is not a card
    assert find_pii("tracking 9400 4111 1111 1111 1111 22") == []


def test_api_key_like_prose_is_not_a_key() -> None:
    assert find_pii("the sk-learn package and a bearer authentication scheme") == []
    assert find_pii("token = abcdefghijklmnopqrstuvwxyz") == []  # no digit: a word, not a secret


def test_public_api_shape() -> None:
    assert KINDS == ("EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS", "IBAN", "API_KEY", "URL_CREDENTIALS")
    assert {k: PLACEHOLDERS[k] for k in KINDS} == {k: f"[{k}]" for k in KINDS}
    assert find_pii("") == []
    assert scrub("") == ("", dict.fromkeys(KINDS, 0))
    assert scrub("nothing to see here") == ("nothing to see here", dict.fromkeys(KINDS, 0))


def test_linear_time_on_adversarial_input() -> None:
    texts = [
        "1 " * 50_000 + "9ms",
        "1-" * 50_000 + "9x",
        "@" + "a." * 50_000 + "1",
        "1:" * 50_000,
        "key=" + "a" * 100_000 + "==x",
    ]
    start = time.perf_counter()
    for text in texts:
        assert find_pii(text) == []
    assert time.perf_counter() - start < 5.0

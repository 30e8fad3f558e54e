"""Tests for curator.quality.pii (the pattern backend): detection per kind, look-alikes, checksums, cues,
scrubbing, overlaps.  The Presidio backend is tested in test_pii_presidio.py."""

from __future__ import annotations

import time

import pytest

from curator.errors import ConfigError
from curator.quality.pii import KINDS, PATTERN_KINDS, PLACEHOLDERS, PiiMatch, check_backend, find_pii, scrub

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
    # EMAIL: quoted local part, internationalised domains, at/dot obfuscation (issue 19)
    ('Reply to "Jane Smith"@example.com please', "EMAIL", '"Jane Smith"@example.com'),
    ("Kontakt: info@bücher.de bitte", "EMAIL", "info@bücher.de"),
    ("punycode user@xn--bcher-kva.de works", "EMAIL", "user@xn--bcher-kva.de"),
    ("Russian ivan@почта.рф too", "EMAIL", "ivan@почта.рф"),
    ("email me at jane dot doe at example dot com please", "EMAIL", "jane dot doe at example dot com"),
    ("write to jane [at] example [dot] com", "EMAIL", "jane [at] example [dot] com"),
    ("or j.doe(at)acme(dot)io today", "EMAIL", "j.doe(at)acme(dot)io"),
    ("mail jane.doe at example.com tomorrow", "EMAIL", "jane.doe at example.com"),
    # API_KEY: AWS secret access keys next to a cue, in the forms people paste them
    (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "API_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        '{"SecretAccessKey": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"}',
        "API_KEY",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    ),
    (
        "my AWS secret access key is Xk2p+Lq9Zr7Tb1Vn4Wm8Yc3Hd6Jf0Gs5Ae1Bo9Iu sorry",
        "API_KEY",
        "Xk2p+Lq9Zr7Tb1Vn4Wm8Yc3Hd6Jf0Gs5Ae1Bo9Iu",
    ),
    # SSN: a structurally valid dashed number alone; other shapes and example numbers after a cue
    ("The W-2 shows 536-22-1847 in box a.", "SSN", "536-22-1847"),
    ("My SSN is 123-45-6789, please update it.", "SSN", "123-45-6789"),
    ("social security number 536 22 1847", "SSN", "536 22 1847"),
    ("SSN: 536221847", "SSN", "536221847"),
    ("SS# 078-05-1120 on file", "SSN", "078-05-1120"),
    ("ITIN 912-70-1234 for the refund", "SSN", "912-70-1234"),
    ("536-22-1847 (that is my SSN)", "SSN", "536-22-1847"),
    # ADDRESS: house number + street + type, then unit, city, state, ZIP / postcode
    (
        "I live at 221B Baker Street, London NW1 6XE.",
        "ADDRESS",
        "221B Baker Street, London NW1 6XE",
    ),
    (
        "Ship to 1600 Pennsylvania Ave NW, Washington, DC 20500 asap",
        "ADDRESS",
        "1600 Pennsylvania Ave NW, Washington, DC 20500",
    ),
    ("Send it to 350 5th Avenue, Suite 200, New York, NY 10118.", "ADDRESS", "350 5th Avenue, Suite 200, New York, NY 10118"),
    ("deliver to 42 Maple Drive.", "ADDRESS", "42 Maple Drive"),
    ("Office: 10 Downing St, London SW1A 2AA, UK", "ADDRESS", "10 Downing St, London SW1A 2AA, UK"),
    ("Adresse: Hauptstraße 5, 10115 Berlin", "ADDRESS", "Hauptstraße 5, 10115 Berlin"),
    ("write to PO Box 1234, Austin, TX 78701.", "ADDRESS", "PO Box 1234, Austin, TX 78701"),
    ("We moved to 12 Elm Road, Springfield, Illinois 62704!", "ADDRESS", "12 Elm Road, Springfield, Illinois 62704"),
    # PERSON: only after a strong cue
    ("Hello, my name is Jane Smith and my order never came.", "PERSON", "Jane Smith"),
    ("Name: Oliver van der Berg", "PERSON", "Oliver van der Berg"),
    ('{"customer_name": "Priya Patel", "plan": "pro"}', "PERSON", "Priya Patel"),
    ("Thanks for the quick fix.\nBest regards,\nWei A. Chen", "PERSON", "Wei A. Chen"),
    ("Dear Ms. O'Neil, your refund was issued.", "PERSON", "O'Neil"),
    ("Hi, this is José Fernández from accounts payable.", "PERSON", "José Fernández"),
    ("All good now. Kind regards, Aisha Okafor", "PERSON", "Aisha Okafor"),
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
    # version strings are not IP addresses (issue 19: "10.2.0.1" was scrubbed)
    "release 10.2.0.1 fixed it",
    "firmware 10.2.0.1, kernel 5.15.0.1",
    "Release: 10.2.0.1",
    "v10.2.0.1 and v. 10.2.0.2",
    "the agent version is 10.2.0.1 now",
    "upgraded to 10.2.0.1 yesterday",
    "see the 10.2.0.1 release notes",
    "__version__ = '10.2.0.1'",
    "iOS 10.2.0.1 on my phone",
    # example and invalid SSNs without a cue, nine-digit ids, spaced groups
    "the docs use 123-45-6789 as the example",
    "ids 000-12-3456, 666-12-3456 and 912-34-5678",
    "order 536221847 and ref 536 22 1847",
    # words around street types, ZIPs alone
    "I have 3 Google Drive folders",
    "Windows 10 Home edition on Route 66",
    "the 5 Main Menu options and 2 Factor Authentication",
    "ZIP 90210 and 12345 units",
    # "at" and "dot" in prose
    "look at example dot com for details",
    "it arrived at example.com and Sales at Acme.com",
    "meet at noon at the front desk",
    # AWS words without a secret, a 40-character hex sha
    "rotate the AWS secret every 90 days in us-east-1",
    "the AWS secret key is rotated; sha 9fceb02d0ae598e95dc970b74dd6e1d7bb2e3ad2",
    # capitalised words and name cues without a name
    "The Export Button in Settings does nothing since Black Friday",
    "Dear Customer Support, thanks, Team",
    "Hi, I'm Stuck on step 3",
    "my name is not important here",
    "Product name: Export Pro",
    "Name: N/A",
    "Regards,\nThe Support Team",
    "Thanks, everyone!",
    '"quoted text"@mention and @channel, user@localhost',
]


@pytest.mark.parametrize(("sentence", "kind", "expected"), POSITIVES)
def test_detects_each_kind_in_sentences(sentence: str, kind: str, expected: str) -> None:
    matches = find_pii(sentence)
    assert [(m.kind, m.text) for m in matches] == [(kind, expected)]
    m = matches[0]
    assert sentence[m.start : m.end] == m.text


def test_every_kind_has_positive_examples() -> None:
    covered = {kind for _, kind, _ in POSITIVES}
    assert covered == set(PATTERN_KINDS)
    for kind in PATTERN_KINDS:
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
        "SSN": 0,
        "ADDRESS": 0,
        "PERSON": 0,
        "LOCATION": 0,
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
    text = "\n".join(sentence for sentence, _, _ in POSITIVES * 3)
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
    assert KINDS == ("EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS", "IBAN", "API_KEY", "URL_CREDENTIALS", "SSN",
                     "ADDRESS", "PERSON", "LOCATION")
    assert PATTERN_KINDS == KINDS[:-1]
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
        "a dot " * 30_000 + "at b",
        "x at " * 30_000,
        "1 Main " * 30_000,
        "my name is " + "jane " * 30_000 + "x",
        "Regards,\n" * 30_000,
        "[at] " * 30_000,
        "Hauptstraße " * 30_000,
    ]
    start = time.perf_counter()
    for text in texts:
        assert find_pii(text) == []
    assert time.perf_counter() - start < 5.0


def test_issue_17_sentence_is_scrubbed() -> None:
    text = "Hi, my SSN is 123-45-6789 and I moved to 221B Baker Street, London NW1 6XE last week."
    scrubbed, counts = scrub(text)
    assert scrubbed == "Hi, my SSN is [SSN] and I moved to [ADDRESS] last week."
    assert (counts["SSN"], counts["ADDRESS"]) == (1, 1)


def test_ssn_structure_rules_decide_without_a_cue() -> None:
    # area 000 / 666 / 9xx, group 00 and serial 0000 are never issued: not an SSN on their own ...
    for bad in ("000-22-1847", "666-22-1847", "936-22-1847", "536-00-1847", "536-22-0000"):
        assert find_pii(f"number {bad} here") == [], bad
        # ... but a person who calls it their SSN still gets it scrubbed
        assert [m.kind for m in find_pii(f"my SSN is {bad}")] == ["SSN"], bad
    assert [m.text for m in find_pii("number 536-22-1847 here")] == ["536-22-1847"]
    # the cue must be on the number's line (or the line it starts right after)
    assert find_pii("My SSN is on file.\nref 123-45-6789") == []
    assert [m.text for m in find_pii("SSN:\n123-45-6789")] == ["123-45-6789"]


def test_weak_street_types_need_the_end_of_a_phrase() -> None:
    assert find_pii("I saved 3 Google Drive files") == []
    assert [m.text for m in find_pii("Ship to 3 Google Drive, Austin, TX 78701.")] == ["3 Google Drive, Austin, TX 78701"]
    assert [m.text for m in find_pii("I live at 7 Willow Way.")] == ["7 Willow Way"]
    # a city on the next line only when the line is the city (or a state/postcode follows)
    assert [m.text for m in find_pii("221B Baker Street\nLondon\nNW1 6XE\n")] == ["221B Baker Street\nLondon\nNW1 6XE"]
    assert [m.text for m in find_pii("221B Baker Street\nSure, I can wait.")] == ["221B Baker Street"]


def test_person_names_stop_at_stop_words_and_line_ends() -> None:
    assert [m.text for m in find_pii("My name is Jane Smith I need help")] == ["Jane Smith"]
    assert [m.text for m in find_pii("Regards,\nOliver Brown\nHead of IT")] == ["Oliver Brown"]
    assert find_pii("Thanks,\nGoogle Drive works again now") == []  # the name must be the rest of its line
    assert [m.text for m in find_pii("NAME: JANE SMITH")] == ["JANE SMITH"]  # capitals only in a field


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown PII backend 'spacy'"):
        scrub("x", backend="spacy")
    assert check_backend("patterns") == "patterns"

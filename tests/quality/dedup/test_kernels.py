"""The compiled (numba) shingler and signatures give the numpy path's numbers, bit for bit."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from curator.quality.dedup import kernels, minhash
from curator.quality.fold import char_classes

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")

ALPACA = Path(__file__).resolve().parents[4] / "shared" / "data" / "instruct" / "stanford_alpaca" / "alpaca_5000.json"

HOSTILE = [
    "", " ", "a", "\x00\x00", "x" * 700 + " y", "A" * 300 + "é" * 300, "Grüße aus Köln!  ÉCOLE\x00x",
    "  two words ", "don't stop", "' '' ' x'", "a\u2019b c\u00a0d", "ǅ ﬁ ①", "İstanbul ß ΣΑΣ",
    "tab\tsep\nnew\rline\x0b\x0c\x1c end", "𝔘𝔫𝔦 emoji 😀 ok", "top-up, TOP UP; top up!",
]


def _texts() -> list[str]:
    rng = random.Random(0)
    records = json.loads(ALPACA.read_text())[:1500]
    texts = ["\n".join((r["instruction"], r["input"], r["output"])) for r in records]
    return texts + HOSTILE + [rng.choice(texts)[: rng.randint(0, 60)] for _ in range(1000)]


def _numpy_sets(texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    return minhash._shingles_from_words(*minhash._word_hashes(minhash._fold_join(texts), len(texts)), k)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_compiled_shingles_equal_the_numpy_ones(k: int) -> None:
    texts = _texts()
    for batch in (texts, *([t] for t in HOSTILE)):
        flat, offsets = kernels.shingles(kernels.nfkc_join(batch), len(batch), char_classes(), minhash._byte_table(),
                                         minhash._CONSTANTS, k)
        want_flat, want_offsets = _numpy_sets(batch, k)
        assert np.array_equal(offsets, want_offsets)
        assert np.array_equal(flat, want_flat)


def test_shingle_batch_and_signatures_take_the_compiled_path_for_large_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts()
    calls: list[str] = []
    for name in ("shingles", "signatures"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    monkeypatch.setattr(kernels, "MIN_TEXTS", 10**9)
    flat, offsets = minhash.shingle_batch(texts)
    sigs = minhash.signatures_from_shingles(flat, offsets)
    assert calls == []
    monkeypatch.setattr(kernels, "MIN_TEXTS", 100)
    flat2, offsets2 = minhash.shingle_batch(texts)
    sigs2 = minhash.signatures_from_shingles(flat2, offsets2)
    assert calls[0] == "shingles" and calls[-1] == "signatures"
    assert np.array_equal(flat, flat2) and np.array_equal(offsets, offsets2)
    assert np.array_equal(sigs, sigs2)


def test_curator_numba_0_turns_the_compiled_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts()
    compiled = minhash.shingle_batch(texts * 3)
    monkeypatch.setenv("CURATOR_NUMBA", "0")
    kernels._load.cache_clear()
    try:
        assert not kernels.available()
        plain = minhash.shingle_batch(texts * 3)
    finally:
        monkeypatch.delenv("CURATOR_NUMBA")
        kernels._load.cache_clear()
    assert kernels.available()
    assert all(np.array_equal(a, b) for a, b in zip(compiled, plain, strict=True))


@pytest.mark.parametrize("bands_rows", [(9, 13), (20, 5), (1, 128)])
def test_compiled_band_keys_equal_the_numpy_ones(monkeypatch: pytest.MonkeyPatch, bands_rows: tuple[int, int]) -> None:
    sigs = np.random.default_rng(3).integers(0, 2**32, size=(5000, 128), dtype=np.uint64).astype(np.uint32)
    monkeypatch.setattr(kernels, "MIN_TEXTS", 10**9)
    plain = minhash.band_keys(sigs, *bands_rows)
    monkeypatch.setattr(kernels, "MIN_TEXTS", 100)
    compiled = minhash.band_keys(sigs, *bands_rows)
    assert compiled.dtype == np.uint64 and np.array_equal(compiled, plain)

"""The splits an engine may make do not change the answers: shards, bands, pair blocks, query blocks, chunks."""

from __future__ import annotations

import numpy as np
import pytest

from curator.quality.dedup import near
from curator.quality.dedup.minhash import (
    band_keys,
    pairs_from_keys,
    shingle_batch,
    signatures_from_shingles,
    verify_pairs_csr,
)
from curator.quality.dedup.near import (
    concat_shards,
    near_bands,
    near_pairs,
    near_shard,
    subset_csr,
    union_pairs,
)
from curator.quality.dedup.semantic import (
    cosines,
    merge_blocks,
    prepare,
    query_blocks,
    search_block,
    semantic_index,
)

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega Straße café naïve ＦＵＬＬ").split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = [WORDS[int(j)] for j in rng.integers(len(WORDS), size=int(rng.integers(0, 30)))]
        out.append(" ".join(words))
        if i % 5 == 4:  # a near copy of the text before
            out[-1] = out[-2] + " omega"
    return out


def test_near_shards_bands_and_blocks_give_the_whole_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts(2_000)
    bands, rows = near_bands(0.8)
    whole = near_shard(texts, bands=bands, rows=rows)
    parts = concat_shards([near_shard(texts[lo : lo + 333], bands=bands, rows=rows) for lo in range(0, 2_000, 333)])
    assert np.array_equal(parts.flat, whole.flat) and np.array_equal(parts.offsets, whole.offsets)
    assert np.array_equal(parts.keys, whole.keys)
    # the signatures are made in blocks of rows: the band keys are those of the whole signature matrix
    assert np.array_equal(whole.keys, band_keys(signatures_from_shingles(whole.flat, whole.offsets), bands, rows))
    monkeypatch.setattr(near, "SIGNATURE_ROWS", 97)
    assert np.array_equal(near_shard(texts, bands=bands, rows=rows).keys, whole.keys)
    cands = pairs_from_keys(whole.keys)
    per_band = union_pairs([pairs_from_keys(whole.keys[:, [c]]) for c in range(bands)], len(texts))
    assert np.array_equal(per_band, cands) and len(cands) > 300
    want = verify_pairs_csr(whole.flat, whole.offsets, cands, 0.8)
    flat, offsets, local = subset_csr(whole.flat, whole.offsets, cands[:100])
    got = verify_pairs_csr(flat, offsets, local, 0.8)
    assert np.array_equal(np.unique(cands[:100])[got[0]], want[0][: len(got[0])])
    assert np.array_equal(got[1], want[1][: len(got[1])])
    pairs, scores = near_pairs(texts, 0.8)
    keep = want[1] >= 0.8
    assert np.array_equal(pairs, want[0][keep]) and np.array_equal(scores, want[1][keep])


def test_shingles_of_mixed_ascii_and_unicode_keep_the_input_order() -> None:
    texts = _texts(500, seed=1)
    flat, offsets = shingle_batch(texts)
    for i in (0, 1, 7, 123, 499):
        one, _ = shingle_batch([texts[i]])
        assert np.array_equal(flat[offsets[i] : offsets[i + 1]], one)


def test_query_blocks_merge_to_the_same_pairs_and_exact_cosines() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9_000, 8)).astype(np.float32)
    x[4_500:] = x[:4_500] + 0.05 * rng.standard_normal((4_500, 8)).astype(np.float32)
    xs, q, self_mode = prepare(x, None)
    index = semantic_index(xs, exact=True)
    blocks = [search_block(index, q, r0, 0.97, self_mode) for r0 in query_blocks(len(q))]
    assert len(blocks) == 3
    pairs, scores = merge_blocks(blocks, xs, q, 0.97, self_mode)
    again, again_scores = merge_blocks(blocks[::-1], xs, q, 0.97, self_mode)
    assert np.array_equal(pairs, again) and np.array_equal(scores, again_scores)
    direct = (xs[pairs[:, 0]].astype(np.float64) * xs[pairs[:, 1]].astype(np.float64)).sum(1).astype(np.float32)
    assert np.array_equal(scores, direct) and np.all(scores >= np.float32(0.97)) and len(pairs) > 4_000
    assert np.array_equal(cosines(xs, xs, pairs[:, 1], pairs[:, 0]), scores)

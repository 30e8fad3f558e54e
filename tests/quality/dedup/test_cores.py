"""Tests of the pure dedup cores: folding, shingles, MinHash/LSH, union-find, neighbours."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from curator.quality.dedup.exact import key_of
from curator.quality.dedup.minhash import (
    DEFAULT_K,
    band_keys,
    band_params,
    candidate_pairs,
    csr_to_sets,
    jaccard,
    near_duplicate_pairs,
    pairs_from_keys,
    permutations,
    shingle_batch,
    shingle_hashes,
    signatures,
    signatures_from_shingles,
    verify_pairs,
    verify_pairs_csr,
)
from curator.quality.dedup.neighbors import cosine_pairs, cosine_pairs_faiss
from curator.quality.dedup.unionfind import UnionFind, choose_keeper, clusters
from curator.quality.fold import fold, words

# ----------------------------------------------------------------------------- helpers


def _vocab_texts(n: int, length: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    return [[vocab[j] for j in rng.integers(len(vocab), size=length)] for _ in range(n)]


def _planted_corpus(n_base: int = 1500, n_dups: int = 100, seed: int = 7):
    """Random 40-word texts plus copies with one word replaced (Jaccard ~0.9 at k=2)."""
    rng = np.random.default_rng(seed)
    base = _vocab_texts(n_base, 40, seed)
    texts = [" ".join(t) for t in base]
    truth = []
    for src in rng.choice(n_base, size=n_dups, replace=False):
        toks = list(base[int(src)])
        toks[int(rng.integers(len(toks)))] = "replaced"
        truth.append((int(src), len(texts)))
        texts.append(" ".join(toks))
    return texts, truth


# ----------------------------------------------------------------------------- fold


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("  Hello,\tWORLD!!  It's   me. ", "hello world its me"),
        ("ＦＵＬＬ　ｗｉｄｔｈ", "full width"),  # NFKC: full-width letters and ideographic space
        ("Straße", "strasse"),  # casefold, not lower
        ("“Quoted” — dash… ¿qué?", "quoted dash qué"),  # Unicode P* removed
        ("$5 + 3 = 8 | ~x ^ <y>", "$5 + 3 = 8 | ~x ^ <y>"),  # symbols (S*) are kept
        ("a\u00a0b\u2028c\r\n\nd", "a b c d"),  # every Unicode whitespace folds
        ("ﬁne", "fine"),  # ligature
        ("", ""),
        ("?!...", ""),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_exact_key_and_words() -> None:
    assert key_of("Hello,   World!") == key_of("hello world")
    assert key_of("hello world") == hashlib.blake2b(b"hello world", digest_size=16).hexdigest()
    assert key_of("hello world") != key_of("hello  worlds")
    # One fold: the apostrophe joins ("dont"), the hyphen splits ("stop me", as "top-up" == "top up").
    assert words("Don't STOP-me now!") == ["dont", "stop", "me", "now"]
    assert words(" ... ") == []


# ----------------------------------------------------------------------------- shingles


def test_shingles_follow_fold_and_words() -> None:
    k = 2
    same = ["Hello, World! How are you?", "hello world how are you", "HELLO\u00a0WORLD\nhow ARE you..."]
    assert len({shingle_hashes(t, k).tobytes() for t in same}) == 1
    assert shingle_hashes("hello world how", 2).size == 2
    # Word boundaries matter, duplicates collapse, order matters.
    assert not np.array_equal(shingle_hashes("ab c d", k), shingle_hashes("a bc d", k))
    assert shingle_hashes("a b a b a b", k).size == 2  # {a b, b a}
    assert not np.array_equal(shingle_hashes("a b c", k), shingle_hashes("c b a", k))
    # Non-ASCII words hash by their UTF-8 bytes; long words (past the 256-byte table) too.
    assert not np.array_equal(shingle_hashes("naïve café", k), shingle_hashes("naive cafe", k))
    long_a, long_b = "x" * 300, "x" * 299 + "y"
    assert not np.array_equal(shingle_hashes(long_a, 1), shingle_hashes(long_b, 1))


def test_shingle_batch_matches_single_and_is_split_independent() -> None:
    texts = ["Zürich ist schön!", "", "one", "a b c d e f g", "Ünïcödé  — text\x00with nul", "x y"] * 3
    flat, offsets = shingle_batch(texts, 3)
    assert offsets.shape == (len(texts) + 1,) and offsets[0] == 0
    for i, t in enumerate(texts):
        row = flat[offsets[i] : offsets[i + 1]]
        assert np.array_equal(row, shingle_hashes(t, 3))
        assert row.dtype == np.uint32 and np.all(np.diff(row.astype(np.int64)) > 0)  # sorted, unique
    sets = csr_to_sets(flat, offsets)
    assert len(sets) == len(texts)


def test_short_texts_shorter_than_k() -> None:
    k = 5
    for text in ["", "hello", "hello world", "four words are here"]:
        assert shingle_hashes(text, k).size == 1  # one shingle of the whole text
    assert np.array_equal(shingle_hashes("Hello!", k), shingle_hashes("hello", k))
    assert not np.array_equal(shingle_hashes("hello world", k), shingle_hashes("world hello", k))
    assert not np.array_equal(shingle_hashes("", k), shingle_hashes("hello", k))
    assert shingle_hashes("one two three four five", k).size == 1
    assert shingle_hashes("one two three four five six", k).size == 2
    # Short exact copies are near-duplicates; different short texts are not.
    texts = ["Hi!", "hi", "bye", "Sort this list.", "sort this list", "sort that list"]
    pairs, scores = near_duplicate_pairs(texts, threshold=0.8, k=k)
    assert pairs.tolist() == [[0, 1], [3, 4]] and np.allclose(scores, 1.0)


def test_default_k_is_short_text_friendly() -> None:
    assert DEFAULT_K == 2
    a = "Write a short poem about the sea and the sky at night"  # 12 words
    b = "Write a short poem about the sea and the sky at night time"
    assert jaccard(shingle_hashes(a), shingle_hashes(b)) >= 0.8


# ----------------------------------------------------------------------------- signatures


def test_signatures_deterministic_within_and_across_processes() -> None:
    texts = ["The quick brown fox jumps over the lazy dog.", "Ünïcödé text", "", "x"]
    s1 = signatures(texts, num_perm=64)
    assert s1.shape == (4, 64) and s1.dtype == np.uint32
    assert np.array_equal(s1, signatures(texts, num_perm=64))
    assert np.array_equal(s1[1:2], signatures(texts[1:2], num_perm=64))  # row-wise
    assert not np.array_equal(s1, signatures(texts, num_perm=64, seed=2))
    code = (
        "import sys; from curator.quality.dedup.minhash import signatures; "
        f"sys.stdout.write(signatures({texts!r}, num_perm=64).tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == s1.tobytes().hex()


def test_signatures_match_naive_minhash() -> None:
    rng = np.random.default_rng(5)
    lengths = np.concatenate((rng.integers(1, 60, size=3000), [20_000, 5_000, 700, 700]))
    rng.shuffle(lengths)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    flat = rng.integers(0, 2**32, size=int(offsets[-1]), dtype=np.uint64).astype(np.uint32)
    sigs = signatures_from_shingles(flat, offsets, num_perm=32, seed=9)
    a, b = permutations(32, seed=9)
    assert np.all(a % 2 == 1)
    for i in range(lengths.size):
        x = flat[offsets[i] : offsets[i + 1]]
        assert np.array_equal(sigs[i], (x[:, None] * a + b).min(axis=0))
    assert signatures([]).shape == (0, 128)


def test_jaccard_estimate_matches_true_jaccard() -> None:
    rng = np.random.default_rng(3)
    num_perm, errors, texts, true_j = 128, [], [], []
    for _ in range(300):
        shared, only = int(rng.integers(5, 200)), int(rng.integers(1, 100))
        base = rng.choice(10**6, size=shared + 2 * only, replace=False)
        a = base[: shared + only]
        b = np.concatenate((base[:shared], base[shared + only :]))
        texts += [" ".join(f"t{x}" for x in a), " ".join(f"t{x}" for x in b)]
        true_j.append(shared / (shared + 2 * only))
    flat, offsets = shingle_batch(texts, 1)
    sets = csr_to_sets(flat, offsets)
    sigs = signatures(texts, num_perm=num_perm, k=1)
    for p, j in enumerate(true_j):
        assert jaccard(sets[2 * p], sets[2 * p + 1]) == pytest.approx(j)
        est = float(np.mean(sigs[2 * p] == sigs[2 * p + 1]))
        sd = np.sqrt(j * (1 - j) / num_perm)
        assert abs(est - j) <= 5 * sd + 1e-9
        errors.append(est - j)
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.01  # unbiased
    theory = np.sqrt(np.mean([j * (1 - j) / num_perm for j in true_j]))
    assert errors.std() < 1.25 * theory  # variance at the binomial level


# ----------------------------------------------------------------------------- LSH


def test_band_params_match_datasketch_optimum() -> None:
    # Values of datasketch.lsh._optimal_param(t, num_perm, 0.5, 0.5).
    assert band_params(0.8, 128) == (9, 13)
    assert band_params(0.5, 128) == (25, 5)
    assert band_params(0.9, 128) == (5, 25)
    assert band_params(0.7, 64) == (8, 8)
    assert band_params(0.8, 256) == (17, 15)
    b, r = band_params(0.8, 128, (0.2, 0.8))
    assert b * r <= 128 and b > 9  # recall-leaning weights -> more, shorter bands


def test_candidate_recall_on_planted_near_duplicates() -> None:
    texts, truth = _planted_corpus()
    flat, offsets = shingle_batch(texts)
    sets = csr_to_sets(flat, offsets)
    assert all(jaccard(sets[i], sets[j]) >= 0.85 for i, j in truth)
    sigs = signatures(texts)
    cands = candidate_pairs(sigs, *band_params(0.8, 128))
    assert cands.dtype == np.int64 and np.all(cands[:, 0] < cands[:, 1])
    found = set(map(tuple, cands.tolist()))
    recall = sum(p in found for p in truth) / len(truth)
    assert recall >= 0.95
    assert len(found) < 2 * len(truth)  # random texts almost never collide
    pairs, scores = near_duplicate_pairs(texts)
    assert {tuple(p) for p in pairs.tolist()} <= set(truth) and np.all(scores >= 0.8)


def test_verify_pairs_filters_false_candidates() -> None:
    texts, truth = _planted_corpus(n_base=200, n_dups=20)
    flat, offsets = shingle_batch(texts)
    sets = csr_to_sets(flat, offsets)
    false = [(0, 1), (2, 3), (5, 150)]
    cands = np.array(sorted(truth + false), dtype=np.int64)
    kept, scores = verify_pairs(sets, cands, 0.8)
    assert sorted(map(tuple, kept.tolist())) == sorted(truth)
    for (i, j), s in zip(kept.tolist(), scores, strict=True):
        assert s == pytest.approx(jaccard(sets[i], sets[j]))
    kept_csr, scores_csr = verify_pairs_csr(flat, offsets, cands, 0.8)
    assert np.array_equal(kept, kept_csr) and np.allclose(scores, scores_csr)
    empty, _ = verify_pairs(sets, np.empty((0, 2), dtype=np.int64), 0.8)
    assert empty.shape == (0, 2)


def test_band_keys_and_bucket_cap() -> None:
    sigs = signatures(["same text here"] * 200 + ["other words entirely", "third one now"])
    keys = band_keys(sigs, 9, 13)
    assert keys.shape == (202, 9) and keys.dtype == np.uint64
    assert len(set(keys[0].tolist())) == 9  # bands of equal values still get distinct keys
    full = pairs_from_keys(keys, max_bucket=500)
    assert len(full) == 200 * 199 // 2
    chained = pairs_from_keys(keys, max_bucket=64)
    assert chained.tolist() == [[i, i + 1] for i in range(199)]  # s - 1 pairs, not s(s-1)/2
    assert clusters(202, chained) == [list(range(200))]


# ----------------------------------------------------------------------------- union-find


def test_union_find_clusters_and_keeper() -> None:
    uf = UnionFind(6)
    assert uf.union(0, 1) == uf.find(1)
    uf.union_pairs(np.array([[1, 2], [4, 5]]))
    assert uf.connected(0, 2) and not uf.connected(2, 3)
    assert clusters(7, np.array([[5, 4], [0, 1], [2, 1], [6, 6]])) == [[0, 1, 2], [4, 5]]
    assert clusters(3, [], include_singletons=True) == [[0], [1], [2]]
    big = UnionFind(10_000)
    for i in range(9_999):
        big.union(i, i + 1)
    assert len({big.find(i) for i in range(10_000)}) == 1
    created = {0: 5, 1: 3, 2: 3}
    assert choose_keeper([0, 1, 2], created.__getitem__) == 1  # tie on key -> smallest index
    assert choose_keeper([2, 1, 0], lambda i: -i) == 2
    with pytest.raises(ValueError):
        choose_keeper([], lambda i: i)


# ----------------------------------------------------------------------------- neighbours


def test_numpy_and_faiss_neighbours_agree() -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(size=(400, 32)).astype(np.float32)
    noisy = base[:150] + 0.25 * rng.normal(size=(150, 32)).astype(np.float32)
    vectors = np.concatenate((base, noisy, np.zeros((2, 32), np.float32)))[rng.permutation(552)]
    p_np, s_np = cosine_pairs(vectors, 0.9, block=64)  # several blocks, diagonal tiles included
    p_fx, s_fx = cosine_pairs_faiss(vectors, 0.9)
    assert len(p_np) >= 140
    assert np.array_equal(p_np, p_fx) and np.allclose(s_np, s_fx, atol=1e-5)
    assert np.all(p_np[:, 0] < p_np[:, 1]) and np.all(s_np >= 0.9)
    assert np.array_equal(p_np, cosine_pairs(vectors, 0.9, block=4096)[0])  # block-size invariant
    queries = vectors[:40] + 0.01
    q_np, _ = cosine_pairs(vectors, 0.9, block=16, queries=queries)
    q_fx, _ = cosine_pairs_faiss(vectors, 0.9, queries=queries)
    assert np.array_equal(q_np, q_fx) and len(q_np) >= 40
    capped, _ = cosine_pairs_faiss(vectors, 0.9, k=1)
    assert {tuple(p) for p in capped.tolist()} <= {tuple(p) for p in p_np.tolist()}


def test_semantic_search_without_faiss_fails_with_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing faiss never switches the search to numpy: it names the extra to install."""
    from curator.errors import MissingDependency, require
    from curator.quality.dedup.semantic import semantic_pairs

    vectors = np.eye(4, dtype=np.float32)
    assert semantic_pairs(vectors, 0.9)[0].shape == (0, 2)  # faiss is installed here
    monkeypatch.setitem(sys.modules, "faiss", None)  # what an environment without faiss-cpu looks like
    msg = ("semantic duplicate search needs faiss, which is in the optional dependency group 'embed': "
           "pip install 'curator-loop[embed]'")
    with pytest.raises(MissingDependency) as err:
        semantic_pairs(vectors, 0.9)
    assert str(err.value) == msg
    with pytest.raises(MissingDependency, match=r"pip install 'curator-loop\[embed\]'"):
        cosine_pairs_faiss(vectors, 0.9)
    assert require("json", "core", "a test").dumps([1]) == "[1]"

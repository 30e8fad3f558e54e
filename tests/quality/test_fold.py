"""The one text fold: exact dedup, near dedup (MinHash shingles), leakage and the gates agree on it."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import numpy as np
from helpers import chat, write_jsonl

from curator.data.ingest import ingest_file
from curator.quality.dedup import exact_pairs, find_duplicates_of, near_pairs
from curator.quality.dedup.exact import key_of
from curator.quality.dedup.minhash import _fold_join, shingle_batch, shingle_hashes
from curator.quality.fold import fold, words
from curator.quality.leakage import exact_leak_pairs, find_leakage, find_leaks_of, ngram_leak_pairs
from curator.records import Example

VARIANTS = ["top-up", "top up", "Top up!"]
SENTENCES = ["Is there an auto top-up option for my card?", "is there an auto top up option for my card",
             "Is there an auto Top up option, for my card!"]
LONG = ("Please explain how the automatic top-up of my prepaid card works when the balance falls under "
        "the limit I configured in the app settings last week, and whether a fee applies to each top-up.")


def test_the_fold() -> None:
    assert {fold(v) for v in VARIANTS} == {"top up"}
    assert fold("Don't stop — it’s fine…") == "dont stop its fine"  # apostrophes join, other punctuation splits
    assert fold("top-up") != fold("topup") and fold("a+b") != fold("a b")
    assert words("  Top-UP, please! ") == ["top", "up", "please"]
    for t in [*VARIANTS, *SENTENCES, LONG, "ＦＵＬＬ　ｗｉｄｔｈ ﬁne Straße", "a\x00b"]:
        assert fold(fold(t)) == fold(t)


def test_exact_near_and_leakage_agree_on_top_up() -> None:
    for texts in (VARIANTS, SENTENCES):
        assert len({key_of(t) for t in texts}) == 1
        assert exact_pairs(texts)[0].tolist() == [[0, 1], [0, 2]]
        assert len({shingle_hashes(t).tobytes() for t in texts}) == 1
        pairs, scores = near_pairs(texts)
        assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]] and np.allclose(scores, 1.0)
        pairs, _ = exact_leak_pairs(texts[:1], texts[1:])
        assert pairs.tolist() == [[0, 0], [1, 0]]
    variants = [LONG, LONG.replace("top-up", "top up"), LONG.replace("top-up", "Top up!")]
    pairs, scores = ngram_leak_pairs(variants[:1], variants[1:], folded=False)
    assert pairs.tolist() == [[0, 0], [1, 0]] and np.allclose(scores, 1.0)
    assert len({shingle_hashes(t, 13).tobytes() for t in variants}) == 1


def test_shingler_folds_every_code_point_like_fold() -> None:
    """The vectorised fold inside MinHash shingling and :func:`fold` agree on every assigned code point
    (unassigned and private-use ones are plain characters to both)."""
    cps = [cp for cp in range(1, sys.maxunicode + 1) if unicodedata.category(chr(cp)) not in ("Cn", "Co", "Cs")]
    texts = [" ".join(f"a{chr(cp)}b Cé-{chr(cp)}" for cp in cps[i : i + 64]) for i in range(0, len(cps), 64)]
    folded = _fold_join(texts).tobytes().decode("utf-8").split("\x00")
    assert len(folded) == len(texts)
    bad = [t for t, f in zip(texts, folded, strict=True) if f.split() != fold(t).split()]
    assert bad == []
    sample = texts[::20] + SENTENCES + [LONG]
    flat, off = shingle_batch(sample)
    flat_f, off_f = shingle_batch([fold(t) for t in sample])
    assert np.array_equal(flat, flat_f) and np.array_equal(off, off_f)


def test_workspace_paths_agree_on_top_up(ws, tmp_path: Path) -> None:  # noqa: ANN001
    ingest_file(ws, write_jsonl(tmp_path / "tr.jsonl", [chat(SENTENCES[0], "Yes, in Settings.")]), split="train")
    ingest_file(ws, write_jsonl(tmp_path / "te.jsonl", [chat(SENTENCES[1], "Yes, in Settings")]), split="test")
    train = Example.from_messages(chat(SENTENCES[0], "Yes, in Settings.")["messages"])
    test = Example.from_messages(chat(SENTENCES[1], "Yes, in Settings")["messages"])
    report = find_leakage(ws, ["exact"])
    assert [(p.train_id, p.other_id, p.method) for p in report.pairs] == [(train.id, test.id, "exact")]
    cand = Example.from_messages(chat(SENTENCES[2], "Yes: in settings!")["messages"])
    (leak,) = find_leaks_of(ws, [cand], methods=["exact"])
    assert (leak.kind, leak.other_id) == ("exact", test.id)
    dups = find_duplicates_of(ws, [cand], methods=["exact", "near"])
    assert {m.kind for m in dups} == {"exact", "near"} and all(m.score == 1.0 for m in dups)

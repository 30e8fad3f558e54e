"""Precision / recall of near-duplicate and semantic dedup at their defaults against MRPC labels.

Usage::

    .venv/bin/python benchmarks/paraphrase.py [--split test|train|both] [--json]

Informational (it helps choose defaults; there is no pass/fail target). MRPC pairs are news
sentences labelled 1 (paraphrase) or 0. Each method runs as ``curator dedup`` would, over *all*
sentences of the split at once (near: MinHash LSH + exact Jaccard verification, word bigrams,
threshold 0.8; semantic: all-MiniLM-L6-v2, cosine >= 0.95), and a labelled pair counts as
predicted positive when the method links its two sentences. The baseline is the label
distribution itself: a method that links every pair has precision = the share of positives.

A sweep over thresholds (exact per-pair scores, no index) shows the trade-off. Paraphrase is
a much looser relation than duplication: a dedup default should be precise (never drop a
different example), and recall on paraphrases is expected to be low at dedup thresholds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import SHARED_DATA, timed  # noqa: E402

MRPC = SHARED_DATA / "paraphrase" / "mrpc"


def load(split: str) -> tuple[list[str], list[str], np.ndarray]:
    files = {"test": ["msr_paraphrase_test.txt"], "train": ["msr_paraphrase_train_full.txt"]}
    names = files.get(split) or files["train"] + files["test"]
    a, b, y = [], [], []
    for name in names:
        with (MRPC / name).open(encoding="utf-8-sig") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) != 5 or row[0] not in ("0", "1"):
                    continue
                y.append(int(row[0]))
                a.append(row[3])
                b.append(row[4])
    return a, b, np.array(y)


def prf(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    tp = int((pred & (y == 1)).sum())
    p = tp / max(int(pred.sum()), 1)
    r = tp / max(int((y == 1).sum()), 1)
    return {"predicted": int(pred.sum()), "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0}


def linked(pairs: np.ndarray, n_pairs: int) -> np.ndarray:
    """Sentence i of pair k is row 2k, sentence j is row 2k+1: pair k is linked if (2k, 2k+1) was found."""
    found = {(int(i), int(j)) for i, j in pairs.tolist()}
    return np.array([(2 * k, 2 * k + 1) in found for k in range(n_pairs)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["test", "train", "both"], default="test")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from curator.embed import encode
    from curator.quality.dedup.minhash import DEFAULT_K, shingle_batch
    from curator.quality.dedup.near import DEFAULT_THRESHOLD as NEAR
    from curator.quality.dedup.near import near_pairs
    from curator.quality.dedup.semantic import DEFAULT_THRESHOLD as SEM
    from curator.quality.dedup.semantic import semantic_pairs
    from curator.quality.fold import fold

    a, b, y = load(args.split)
    n = len(y)
    texts = [t for pair in zip(a, b, strict=True) for t in pair]
    t_near, (np_, _) = timed(lambda: near_pairs(texts, NEAR))
    t_emb, vecs = timed(lambda: encode(texts))
    t_sem, (sp, _) = timed(lambda: semantic_pairs(vecs, SEM))
    out: dict = {"split": args.split, "pairs": n, "positives": int(y.sum()),
                 "baseline_link_all": prf(np.ones(n, dtype=bool), y)}
    out["near_default"] = {"threshold": NEAR, "k": DEFAULT_K, **prf(linked(np_, n), y), "seconds": round(t_near, 2)}
    out["semantic_default"] = {"threshold": SEM, **prf(linked(sp, n), y),
                               "embed_seconds": round(t_emb, 1), "search_seconds": round(t_sem, 2)}

    # Sweeps on exact per-pair scores.
    flat, off = shingle_batch([fold(t) for t in texts], DEFAULT_K)
    sets = np.split(flat, off[1:-1])
    jac = np.array([len(np.intersect1d(sets[2 * k], sets[2 * k + 1])) /
                    max(len(np.union1d(sets[2 * k], sets[2 * k + 1])), 1) for k in range(n)])
    cos = (vecs[0::2] * vecs[1::2]).sum(axis=1)
    out["near_sweep"] = {f"{t:.1f}": prf(jac >= t, y) for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)}
    out["semantic_sweep"] = {f"{t:.2f}": prf(cos >= t, y) for t in (0.7, 0.75, 0.8, 0.85, 0.9, 0.95)}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"MRPC {args.split}: {n} labelled pairs, {out['positives']} paraphrases (informational; shared machine)")
    base = out["baseline_link_all"]
    print(f"  baseline (link every pair): precision {base['precision']:.3f} recall 1.000")
    for name in ("near_default", "semantic_default"):
        r = out[name]
        print(f"  {name:17s} threshold {r['threshold']}: predicted {r['predicted']:4d}  precision {r['precision']:.3f}  "
              f"recall {r['recall']:.3f}  F1 {r['f1']:.3f}  (precision {r['precision'] / base['precision']:.2f}x baseline)")
    print("  near-duplicate Jaccard sweep (word bigrams):")
    for t, r in out["near_sweep"].items():
        print(f"    >= {t}: predicted {r['predicted']:4d}  P {r['precision']:.3f}  R {r['recall']:.3f}  F1 {r['f1']:.3f}")
    print("  semantic cosine sweep (all-MiniLM-L6-v2):")
    for t, r in out["semantic_sweep"].items():
        print(f"    >= {t}: predicted {r['predicted']:4d}  P {r['precision']:.3f}  R {r['recall']:.3f}  F1 {r['f1']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

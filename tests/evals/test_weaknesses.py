"""Weakness groups: the lowest-scoring examples, by task and embedding cluster, in the targeted-generation form."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from curator.errors import CuratorError
from curator.workspace import Workspace
from evals.weaknesses import cluster, weaknesses


def test_cluster_separates_blobs_deterministically() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0, 0], 0.3, size=(6, 3))
    b = rng.normal([0, 5, 0], 0.3, size=(5, 3))
    v = np.vstack([a, b])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    labels = cluster(v, 2)
    assert len(set(labels[:6])) == 1 and len(set(labels[6:])) == 1 and labels[0] != labels[6]
    assert np.array_equal(labels, cluster(v, 2))
    assert set(cluster(v, 1)) == {0} and len(set(cluster(v[:2], 5))) == 2


def _bag_of_words(texts: list[str]) -> np.ndarray:
    """A tiny deterministic encoder (hashed bag of words), standing in for MiniLM in the fast tests."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, sum(map(ord, w)) % 64] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_weaknesses_shape_selection_and_descriptions(make_eval: Callable[..., str], test_ids: list[str]) -> None:
    ws = Workspace()
    values = [0.9, 0.05, 0.8, 0.1, 0.7, 0.2]
    scores = {i: {"rougeL": v, "key_phrase_rate": 0.0 if v < 0.3 else 1.0, "length_ratio": 2.0 if v < 0.3 else 1.0,
                  "loss": 3.0 - v}
              for i, v in zip(test_ids, values, strict=True)}
    eid = make_eval("r1", scores)
    groups = weaknesses(ws, "r1", fraction=0.5, min_size=1, k=5, encoder=_bag_of_words)
    assert groups and all(set(g) == {"id", "task", "description", "example_ids"} for g in groups)
    weak = {test_ids[1], test_ids[3], test_ids[5]}
    assert {e for g in groups for e in g["example_ids"]} == weak
    assert all(g["task"] in ("support", "billing") for g in groups)
    d = groups[0]["description"]
    assert d.startswith(groups[0]["task"] + ":") and "rougeL" in d and "misses key phrases" in d and "too long" in d
    assert weaknesses(ws, eid, fraction=0.5, min_size=1, encoder=_bag_of_words) == groups  # deterministic, eval id or run id
    assert len({g["id"] for g in groups}) == len(groups)
    one = weaknesses(ws, "r1", fraction=0.01)
    assert len(one) == 1 and one[0]["example_ids"] == [test_ids[1]]  # at least one example
    by_loss = weaknesses(ws, "r1", metric="loss", fraction=0.01)  # lower is better: the highest loss
    assert by_loss[0]["example_ids"] == [test_ids[1]]
    with pytest.raises(CuratorError, match="no 'bleu' scores"):
        weaknesses(ws, "r1", metric="bleu")


@pytest.mark.slow
def test_weaknesses_with_the_real_embedder(make_eval: Callable[..., str], test_ids: list[str]) -> None:
    make_eval("r1", {i: {"rougeL": k / 10} for k, i in enumerate(test_ids)})
    groups = weaknesses(Workspace(), "r1", fraction=1.0, min_size=1, k=2)
    assert sorted(e for g in groups for e in g["example_ids"]) == sorted(test_ids)
    assert {g["task"] for g in groups} == {"support", "billing"} and len(groups) <= 4

"""Champion/challenger: the promotion decision on hand-made dev evaluations (curator.loop.rounds.decide_promotion)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from curator.errors import CuratorError
from curator.loop.rounds import decide_promotion
from evals.compare import compare


def _cmp(snap_ws: Any, make_eval: Callable[..., str], ids: list[str], champ: list[float], chall: list[float],
         em: tuple[list[float], list[float]] | None = None, confidence: float = 0.9) -> Any:
    em_c, em_r = em or ([0.0] * len(ids), [0.0] * len(ids))
    make_eval("champ", {i: {"rougeL": s, "exact_match": e} for i, s, e in zip(ids, champ, em_c, strict=True)})
    make_eval("chall", {i: {"rougeL": s, "exact_match": e} for i, s, e in zip(ids, chall, em_r, strict=True)})
    return compare(snap_ws, "chall", "champ", metrics=["rougeL", "exact_match"], confidence=confidence)


def test_a_clear_gain_is_promoted_under_every_criterion(snap_ws: Any, make_eval: Callable[..., str],
                                                         test_ids: list[str]) -> None:
    ids = test_ids
    cmp = _cmp(snap_ws, make_eval, ids, [0.1] * len(ids), [0.6, 0.7, 0.5, 0.8, 0.6, 0.7][: len(ids)],
               em=([0.0] * len(ids), [1.0] * len(ids)))
    for criterion in ("bootstrap", "mean", "mcnemar"):
        p = decide_promotion(cmp, criterion=criterion, metric="rougeL", confidence=0.9)
        assert p.promoted, (criterion, p.reason)
        assert (p.champion, p.challenger, p.n) == ("champ", "chall", len(ids))
        assert p.reason.startswith("promoted: ")
    p = decide_promotion(cmp, criterion="bootstrap")
    assert p.ci[0] is not None and p.ci[0] > 0 and p.delta == pytest.approx(0.65 - 0.1, abs=0.1)


def test_a_noisy_or_negative_change_is_not_promoted(snap_ws: Any, make_eval: Callable[..., str],
                                                    test_ids: list[str]) -> None:
    ids = test_ids
    # one example much better, the others a little worse: the mean rises, the bootstrap CI straddles 0
    champ = [0.5] * len(ids)
    chall = [0.95] + [0.45] * (len(ids) - 1)
    cmp = _cmp(snap_ws, make_eval, ids, champ, chall)
    assert decide_promotion(cmp, criterion="mean").promoted  # mean delta > 0 ...
    boot = decide_promotion(cmp, criterion="bootstrap", confidence=0.9)
    assert not boot.promoted and "not entirely above 0" in boot.reason  # ... but not clearly better
    assert boot.reason.startswith("not promoted: ")
    # no exact-match change at all: McNemar has no discordant pairs
    assert not decide_promotion(cmp, criterion="mcnemar").promoted


def test_bad_criterion_and_missing_metric(snap_ws: Any, make_eval: Callable[..., str], test_ids: list[str]) -> None:
    cmp = _cmp(snap_ws, make_eval, test_ids, [0.1] * len(test_ids), [0.2] * len(test_ids))
    with pytest.raises(CuratorError, match="unknown promotion criterion 'best'"):
        decide_promotion(cmp, criterion="best")
    with pytest.raises(CuratorError, match="no 'bleu' scores"):
        decide_promotion(cmp, metric="bleu")

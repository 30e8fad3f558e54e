"""Tests for evals.metrics.

The first half checks curator's metric functions against the reference test vectors in
``shared/data/metrics`` (taken from sacreBLEU's and google-research ROUGE's own test suites), one
test id per vector, at the precision each vector states. The second half unit-tests curator's own
metrics (exact match, key phrases, length ratio, perplexity, score_example, summarize).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from evals import metrics
from evals.metrics import (
    bleu_from_stats,
    corpus_bleu,
    corpus_bleu_stats,
    exact_match,
    extract_key_phrases,
    key_phrase_rate,
    length_ratio,
    normalize_answer,
    perplexity,
    rouge,
    rouge_multi,
    score_example,
    sentence_bleu,
    summarize,
)

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "metrics"
SACREBLEU_FILE = DATA_DIR / "sacrebleu_test_vectors.json"
ROUGE_FILE = DATA_DIR / "rouge_test_vectors.json"
ROUGE_DIR = DATA_DIR / "rouge_google_research"

# Default tolerance where a vector states none: the value is printed to full double precision (or to
# 10 decimals), so 1e-9 absolute is far tighter than any real discrepancy and looser than rounding.
DEFAULT_ABS = 1e-9
# google-research's rouge tests use assertAlmostEqual: places=7 unless stated -> |diff| < 5e-8.
ROUGE_DEFAULT_ABS = 5e-8

SACREBLEU_SECTIONS = {
    "source",
    "notes",
    "corpus_bleu",
    "raw_corpus_bleu_0_1_scale",
    "sufficient_statistics",
    "compute_bleu_from_stats",
    "sentence_bleu",
}
ROUGE_SECTIONS = {"source", "notes", "cases", "lcs_unit"}


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


SACREBLEU = _load(SACREBLEU_FILE)
ROUGE = _load(ROUGE_FILE)


def _params(data: dict[str, Any] | None, path: Path, items: Any, make_id: Any) -> list[Any]:
    """One pytest.param per vector; a single skipped param when the data file is missing."""
    if data is None:
        return [
            pytest.param(
                None, marks=pytest.mark.skip(reason=f"reference vectors not found: {path}"), id="missing"
            )
        ]
    return [pytest.param(item, id=make_id(i, item)) for i, item in enumerate(items(data))]


def _kw_id(kwargs: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"


def _segments(ref_streams: list[list[str]]) -> list[list[str]]:
    """sacreBLEU reference streams (refs[k][i]) -> curator's per-prediction layout (refs[i][k])."""
    return [list(seg) for seg in zip(*ref_streams, strict=True)]


# --------------------------------------------------------------------------------------------------
# sacreBLEU vectors
# --------------------------------------------------------------------------------------------------


def test_sacrebleu_vector_file_sections_are_all_covered() -> None:
    if SACREBLEU is None:
        pytest.skip(f"reference vectors not found: {SACREBLEU_FILE}")
    # a new section in the file must not be silently ignored by this test module
    assert set(SACREBLEU) == SACREBLEU_SECTIONS


@pytest.mark.parametrize(
    "vec",
    _params(SACREBLEU, SACREBLEU_FILE, lambda d: d["corpus_bleu"], lambda i, v: f"{i}-{_kw_id(v['kwargs'])}"),
)
def test_corpus_bleu_vectors(vec: dict[str, Any]) -> None:
    score = corpus_bleu(vec["hyps"], _segments(vec["ref_streams"]), **vec["kwargs"])
    if "expected_2dp" in vec:
        assert f"{score:.2f}" == vec["expected_2dp"]
    else:
        assert score == pytest.approx(vec["expected"], abs=vec["tol"])


@pytest.mark.parametrize(
    "vec",
    _params(
        SACREBLEU,
        SACREBLEU_FILE,
        lambda d: d["raw_corpus_bleu_0_1_scale"],
        lambda i, v: f"{i}-smooth_value={v['smooth_value']}",
    ),
)
def test_raw_corpus_bleu_vectors(vec: dict[str, Any]) -> None:
    # "raw_corpus_bleu" == BLEU(tokenize='none', smooth_method='floor', smooth_value=<offset>,
    # effective_order=True, force=True), on the 0-1 scale (see the file's notes).
    score = corpus_bleu(
        vec["hyps"],
        _segments(vec["ref_streams"]),
        tokenize="none",
        smooth_method="floor",
        smooth_value=vec["smooth_value"],
        effective_order=True,
        force=True,
    )
    assert score / 100 == pytest.approx(vec["expected"], abs=vec.get("tol", DEFAULT_ABS))


@pytest.mark.parametrize(
    "vec",
    _params(
        SACREBLEU, SACREBLEU_FILE, lambda d: d["sufficient_statistics"], lambda i, v: f"{i}-{v['tokenize']}"
    ),
)
def test_sufficient_statistics_vectors(vec: dict[str, Any]) -> None:
    stats = corpus_bleu_stats(vec["hyps"], _segments(vec["ref_streams"]), tokenize=vec["tokenize"])
    assert stats["counts"] == vec["counts"]
    assert stats["totals"] == vec["totals"]
    assert stats["sys_len"] == vec["sys_len"]
    assert stats["ref_len"] == vec["ref_len"]


def _bleu_from_stats_vectors(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten the section: plain vectors, and groups ({'cases': [...], 'case_format': ...})."""
    flat: list[dict[str, Any]] = []
    for entry in data["compute_bleu_from_stats"]:
        if "cases" not in entry:
            flat.append(entry)
            continue
        assert entry["case_format"] == "[correct,total,sys_len,ref_len,smooth_value]"
        method = "floor" if "smooth_method=floor" in entry["comment"] else None
        assert method is not None, entry["comment"]
        for correct, total, sys_len, ref_len, smooth_value in entry["cases"]:
            flat.append(
                {
                    "correct": correct,
                    "total": total,
                    "sys_len": sys_len,
                    "ref_len": ref_len,
                    "smooth_method": method,
                    "smooth_value": smooth_value,
                    "expected_0_1": entry["expected"],
                    "exact": True,
                }
            )
    return flat


@pytest.mark.parametrize(
    "vec",
    _params(
        SACREBLEU,
        SACREBLEU_FILE,
        _bleu_from_stats_vectors,
        lambda i, v: f"{i}-{v['smooth_method']}-{v['correct']}-{v['total']}-{v['sys_len']}-{v['ref_len']}",
    ),
)
def test_bleu_from_stats_vectors(vec: dict[str, Any]) -> None:
    correct, total = list(vec["correct"]), list(vec["total"])
    score = bleu_from_stats(
        correct,
        total,
        vec["sys_len"],
        vec["ref_len"],
        smooth_method=vec["smooth_method"],
        smooth_value=vec.get("smooth_value"),
    )
    if vec.get("exact"):
        assert score / 100 == vec["expected_0_1"]
    else:
        assert score / 100 == pytest.approx(vec["expected_0_1"], abs=vec.get("tol", DEFAULT_ABS))
    assert (correct, total) == (vec["correct"], vec["total"])  # inputs not mutated


@pytest.mark.parametrize(
    "vec",
    _params(
        SACREBLEU,
        SACREBLEU_FILE,
        lambda d: d["sentence_bleu"],
        lambda i, v: (
            f"{i}-{v['tokenize']}-{v['smooth_method']}-sv={v['smooth_value']}-lc={v['lowercase']}-"
            f"{'zahar' if 'zah' in v['hyp'] else 'cat'}"
        ),
    ),
)
def test_sentence_bleu_vectors(vec: dict[str, Any]) -> None:
    # No effective_order here: the vectors use effective_order=True, which is curator's default.
    score = sentence_bleu(
        vec["hyp"],
        vec["refs"],
        smooth_method=vec["smooth_method"],
        smooth_value=vec["smooth_value"],
        lowercase=vec["lowercase"],
        tokenize=vec["tokenize"],
    )
    assert score == pytest.approx(vec["expected"], abs=vec["tol"])


# --------------------------------------------------------------------------------------------------
# ROUGE vectors
# --------------------------------------------------------------------------------------------------


def test_rouge_vector_file_sections_are_all_covered() -> None:
    if ROUGE is None:
        pytest.skip(f"reference vectors not found: {ROUGE_FILE}")
    assert set(ROUGE) == ROUGE_SECTIONS


def _read_lines(name: str) -> list[str]:
    return (ROUGE_DIR / name).read_text(encoding="utf-8").splitlines()


def _rouge_inputs(vec: dict[str, Any]) -> tuple[str, str | list[str]]:
    """(prediction, reference or list of references) of a ROUGE vector."""
    if "score_multi_targets" in vec:
        return vec["prediction"], vec["score_multi_targets"]
    if "target" in vec:
        return vec["prediction"], vec["target"]
    target_file = vec.get("target_file", "testdata/target.txt")
    prediction_file = vec.get("prediction_file", "testdata/prediction.txt")
    if "NOT brought" in target_file or "NOT brought" in prediction_file:
        pytest.skip(f"input file not shipped with the vectors: {target_file} / {prediction_file}")
    if not (ROUGE_DIR / target_file).is_file():
        pytest.skip(f"rouge testdata not found: {ROUGE_DIR / target_file}")
    if "file_line" in vec:  # one example per line, as rouge_scorer_test reads them
        return _read_lines(prediction_file)[vec["file_line"]], _read_lines(target_file)[vec["file_line"]]
    # whole file = one multi-sentence summary (one sentence per line), for rougeLsum
    return (ROUGE_DIR / prediction_file).read_text(encoding="utf-8"), (ROUGE_DIR / target_file).read_text(
        encoding="utf-8"
    )


def _rouge_id(i: int, vec: dict[str, Any]) -> str:
    where = (
        "multi"
        if "score_multi_targets" in vec
        else f"line{vec['file_line']}"
        if "file_line" in vec
        else Path(vec["target_file"].split()[0]).stem
        if "target_file" in vec
        else "inline"
    )
    stem = "-stem" if vec.get("use_stemmer") else ""
    return f"{i}-{'+'.join(vec['types'])}-{where}{stem}"


def _expected_rouge(vec: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """(type, measure, expected, abs tolerance) for every number the vector states."""
    tol = 0.5 * 10.0 ** -vec["places"] if "places" in vec else ROUGE_DEFAULT_ABS
    checks: list[tuple[str, str, float, float]] = []
    for measure in ("precision", "recall", "fmeasure"):
        if measure in vec:
            value = vec[measure]
            if isinstance(value, dict):  # per-type expectations
                checks += [(t, measure, float(v), tol) for t, v in value.items()]
            else:
                checks += [(t, measure, float(value), tol) for t in vec["types"]]
    if "fmeasure_3dp" in vec:  # upstream assertAlmostEqual(..., places=3)
        checks += [(t, "fmeasure", float(vec["fmeasure_3dp"]), 5e-4) for t in vec["types"]]
    assert checks, f"vector states no expected value: {vec}"
    return checks


@pytest.mark.parametrize("vec", _params(ROUGE, ROUGE_FILE, lambda d: d["cases"], _rouge_id))
def test_rouge_vectors(vec: dict[str, Any]) -> None:
    prediction, reference = _rouge_inputs(vec)
    use_stemmer = bool(vec.get("use_stemmer", False))
    if isinstance(reference, list):
        scores = rouge_multi(prediction, reference, types=vec["types"], use_stemmer=use_stemmer)
    else:
        scores = rouge(prediction, reference, types=vec["types"], use_stemmer=use_stemmer)
    assert set(scores) == set(vec["types"])
    for rouge_type, measure, expected, tol in _expected_rouge(vec):
        assert scores[rouge_type][measure] == pytest.approx(expected, abs=tol), (rouge_type, measure)


def _tokens_text(tokens: list[int]) -> str:
    return " ".join(f"w{t}" for t in tokens)


def _lcs_unit_params() -> list[Any]:
    def make_id(i: int, v: dict[str, Any]) -> str:
        return f"{i}-{'union_lcs' if 'union_lcs' in v else 'lcs'}"

    return _params(ROUGE, ROUGE_FILE, lambda d: d["lcs_unit"], make_id)


@pytest.mark.parametrize("vec", _lcs_unit_params())
def test_rouge_lcs_unit_vectors(vec: dict[str, Any]) -> None:
    """The LCS unit vectors test rouge_score internals on token ids; curator checks them through its
    public rougeL / rougeLsum (ids become words w1, w2, ...): LCS length = recall * |ref|."""
    if "union_lcs" in vec:
        u = vec["union_lcs"]
        ref = _tokens_text(u["ref"])
        cands = "\n".join(_tokens_text(c) for c in u["cands"])  # one candidate sentence per line
        s = rouge(cands, ref, types=["rougeLsum"])["rougeLsum"]
        assert s["recall"] * len(u["ref"]) == pytest.approx(len(u["union"]))
        assert s["recall"] == pytest.approx(u["summary_level"]["recall"])
        assert s["precision"] == pytest.approx(u["summary_level"]["precision"])
        assert s["fmeasure"] == pytest.approx(u["summary_level"]["fmeasure_3dp"], abs=5e-4)
        # the union's tokens, as a prediction, are all recalled from the reference
        assert rouge(_tokens_text(u["union"]), ref, types=["rougeL"])["rougeL"]["precision"] == 1.0
    else:
        ref, cand = vec["ref"], vec["cand"]
        s = rouge(_tokens_text(cand), _tokens_text(ref), types=["rougeL"])["rougeL"]
        assert s["recall"] * len(ref) == pytest.approx(vec["lcs_len"])
        assert s["precision"] * len(cand) == pytest.approx(vec["lcs_len"])
        # the stated LCS (reference tokens at lcs_ref_indices) is a common subsequence of that length
        lcs_tokens = [ref[j] for j in vec["lcs_ref_indices"]]
        assert len(lcs_tokens) == vec["lcs_len"]
        assert (
            rouge(_tokens_text(lcs_tokens), _tokens_text(cand), types=["rougeL"])["rougeL"]["precision"]
            == 1.0
        )


# --------------------------------------------------------------------------------------------------
# Unit tests: BLEU/ROUGE wrappers
# --------------------------------------------------------------------------------------------------


def test_public_api_is_exported() -> None:
    for name in metrics.__all__:
        assert callable(getattr(metrics, name)) or name in {"DEFAULT_ROUGE_TYPES", "STOPWORDS"}


def test_sentence_bleu_uses_effective_order_by_default() -> None:
    # two words: no 3-/4-grams, so without effective order BLEU collapses to ~0
    assert sentence_bleu("hello world", ["hello world"]) == pytest.approx(100.0)
    assert sentence_bleu("hello world", "hello world", effective_order=False) == pytest.approx(0.0, abs=1e-6)


def test_sentence_bleu_rejects_no_reference() -> None:
    with pytest.raises(ValueError):
        sentence_bleu("a b c", [])


def test_corpus_bleu_reference_layout_is_per_prediction() -> None:
    preds = ["the cat sat on the mat", "a dog ran in the park"]
    single = corpus_bleu(preds, ["the cat sat on the mat", "a dog ran in the park"])
    assert single == pytest.approx(100.0)
    # variable number of references per prediction (second has only one)
    variable = corpus_bleu(
        preds, [["a cat sat on a mat", "the cat sat on the mat"], ["a dog ran in the park"]]
    )
    assert variable == pytest.approx(100.0)
    with pytest.raises(ValueError, match="references"):
        corpus_bleu(preds, ["only one reference"])
    with pytest.raises(TypeError):
        corpus_bleu(preds, "the cat sat on the mat")  # type: ignore[arg-type]


def test_corpus_bleu_unknown_setting_is_an_error() -> None:
    with pytest.raises(TypeError, match="unsupported BLEU setting"):
        corpus_bleu(["a"], ["a"], smoothing="exp")


def test_rouge_argument_order_is_prediction_then_reference() -> None:
    s = rouge("testing", "testing one two", types=["rouge1"])["rouge1"]
    assert (s["precision"], s["recall"]) == (pytest.approx(1.0), pytest.approx(1 / 3))


# --------------------------------------------------------------------------------------------------
# Unit tests: curator's own metrics
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("an apple, a day", "apple day"),
        ("Don't stop.", "dont stop"),
        ("theory of the  THEME", "theory of theme"),  # articles only as whole words
        ("  \n\t ", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match() -> None:
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Eiffel Towers", "eiffel tower") == 0.0
    assert exact_match("", "the") == 1.0  # both normalise to ""


def test_extract_key_phrases_is_ranked_and_deterministic() -> None:
    text = "The Eiffel Tower, built in 1889, is 330 metres tall. It was the tallest man-made structure."
    phrases = extract_key_phrases(text, k=10)
    assert phrases == ["330 metres tall", "tallest man-made structure", "eiffel tower", "built", "1889"]
    assert extract_key_phrases(text, k=2) == phrases[:2]
    assert extract_key_phrases(text) == extract_key_phrases(text)
    assert extract_key_phrases(text, k=0) == []
    assert extract_key_phrases("the of and, it is.") == []


def test_extract_key_phrases_splits_long_runs_and_keeps_numbers() -> None:
    assert extract_key_phrases("alpha beta gamma delta epsilon zeta", k=5, max_words=4) == [
        "alpha beta gamma delta",
        "epsilon zeta",
    ]
    assert extract_key_phrases("Version 3.5 costs 10,000 dollars", k=5) == [
        "version 3.5 costs 10,000",
        "dollars",
    ]


def test_key_phrase_rate() -> None:
    assert key_phrase_rate("The EIFFEL\n tower is tall", ["eiffel tower", "paris"]) == 0.5
    assert key_phrase_rate("anything", ["Anything", "  "]) == 1.0  # blank phrases ignored
    assert key_phrase_rate("concatenate", ["cat"]) == 0.0  # whole words only
    assert key_phrase_rate("c++ rocks", ["C++"]) == 1.0
    assert key_phrase_rate("anything", []) is None
    assert key_phrase_rate("anything", [" "]) is None


def test_length_ratio() -> None:
    assert length_ratio("one two three", "one two three four five six") == 0.5
    assert length_ratio("a  b\nc", "x y") == 1.5
    assert length_ratio("", "") == 1.0
    assert length_ratio("a b c", "   ") == 3.0  # empty reference: denominator taken as 1
    assert length_ratio("", "a b") == 0.0


def test_perplexity() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(20.0)) == pytest.approx(20.0)
    assert perplexity(1e6) == math.inf
    assert perplexity(math.inf) == math.inf
    assert math.isnan(perplexity(math.nan))


def test_score_example() -> None:
    scores = score_example("The cat sat on the mat.", "A cat sat on the mat")
    assert set(scores) == {
        "exact_match",
        "bleu",
        "rouge1",
        "rouge2",
        "rougeL",
        "key_phrase_rate",
        "length_ratio",
    }
    assert scores["exact_match"] == 1.0
    # rouge1: 5 of 6 prediction tokens and 5 of 6 reference tokens match ("the" vs "a")
    assert scores["rouge1"] == pytest.approx(5 / 6)
    assert scores["rouge2"] == pytest.approx(4 / 5)
    assert scores["rougeL"] == pytest.approx(5 / 6)
    assert scores["bleu"] == pytest.approx(sentence_bleu("The cat sat on the mat.", ["A cat sat on the mat"]))
    assert 0.0 < scores["bleu"] < 100.0
    assert scores["key_phrase_rate"] == 1.0  # phrases extracted from the reference: "cat sat", "mat"
    assert scores["length_ratio"] == 1.0

    wrong = score_example("dogs bark loudly", "A cat sat on the mat", key_phrases=["cat", "mat", "dog"])
    assert wrong["exact_match"] == 0.0
    assert wrong["rouge1"] == 0.0
    assert wrong["bleu"] == 0.0
    assert wrong["key_phrase_rate"] == 0.0
    assert score_example("x", "y", key_phrases=[])["key_phrase_rate"] is None


def test_summarize_ignores_none() -> None:
    rows = [
        {"bleu": 10.0, "key_phrase_rate": None, "exact_match": 1.0},
        {"bleu": 30.0, "key_phrase_rate": 0.5, "exact_match": 0.0},
        {"bleu": 20.0, "key_phrase_rate": None, "exact_match": 0.0},
    ]
    out = summarize(rows)
    assert out == {"bleu": 20.0, "key_phrase_rate": 0.5, "exact_match": pytest.approx(1 / 3)}
    assert list(out) == ["bleu", "key_phrase_rate", "exact_match"]
    assert math.isnan(summarize([{"k": None}])["k"])
    assert summarize([]) == {}
    with pytest.raises(TypeError):
        summarize([{"bleu": "high"}])  # type: ignore[dict-item]

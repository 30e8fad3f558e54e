"""Text-generation metrics used by curator's evaluator.

Every function here is pure and deterministic. BLEU is delegated to sacreBLEU's ``BLEU`` class and
ROUGE to ``rouge_score.rouge_scorer`` so that the numbers are the ones the wider community reports;
the remaining metrics (exact match, key-phrase rate, length ratio, perplexity, and the label metrics
of classification-like tasks: accuracy and macro-F1 on an extracted label) are small and local.

Scales and conventions
----------------------
* BLEU is on sacreBLEU's 0-100 scale; every other score is on 0-1 (perplexity is unbounded).
* Arguments are always ``(prediction, reference)``: note that ``rouge_score`` itself takes
  ``score(target, prediction)``, the wrappers below swap them for you.
* A metric that is undefined for an example returns ``None`` (for example the key-phrase rate with no
  key phrases); :func:`summarize` ignores ``None`` when averaging.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from curator.errors import require

if TYPE_CHECKING:  # both are in the [evals] extra, imported when a BLEU or ROUGE score is asked for
    from rouge_score import rouge_scorer
    from sacrebleu.metrics.bleu import BLEU

__all__ = [
    "DEFAULT_ROUGE_TYPES",
    "STOPWORDS",
    "bleu_from_stats",
    "corpus_bleu",
    "corpus_bleu_stats",
    "exact_match",
    "extract_key_phrases",
    "key_phrase_rate",
    "label_metrics",
    "label_set",
    "extract_label",
    "length_ratio",
    "normalize_answer",
    "perplexity",
    "rouge",
    "rouge_multi",
    "score_example",
    "sentence_bleu",
    "summarize",
]

DEFAULT_ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")

# --------------------------------------------------------------------------------------------------
# Exact match (SQuAD v1.1 normalisation)
# --------------------------------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Normalise ``text`` the way the official SQuAD v1.1 evaluation script does.

    Steps, in order: lowercase; delete every ASCII punctuation character (``string.punctuation``,
    deleted, not replaced by a space, so ``"don't"`` becomes ``"dont"``); remove the articles
    ``a``/``an``/``the`` as whole words; fold every run of whitespace into one space and strip.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """Return ``1.0`` if the two strings are equal after :func:`normalize_answer`, else ``0.0``."""
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0


# --------------------------------------------------------------------------------------------------
# BLEU (sacreBLEU)
# --------------------------------------------------------------------------------------------------


def _segment_refs_to_streams(
    references: Sequence[str | Sequence[str | None]], n_segments: int
) -> list[list[str | None]]:
    """Turn per-segment references (``references[i]`` = reference(s) of segment ``i``) into sacreBLEU
    reference streams (``streams[k][i]`` = ``k``-th reference of segment ``i``).

    Segments with fewer references than the largest one are padded with ``None``, which sacreBLEU
    treats as "no reference here" (variable number of references per segment).
    """
    if isinstance(references, str):
        raise TypeError("references must be a list (one entry per prediction), not a single string")
    if len(references) != n_segments:
        raise ValueError(
            f"got {n_segments} predictions but {len(references)} reference entries; references[i] must hold "
            "the reference(s) of predictions[i]"
        )
    per_segment: list[list[str | None]] = []
    for i, refs in enumerate(references):
        seg: list[str | None] = [refs] if isinstance(refs, str) else list(refs)
        if not any(r is not None for r in seg):
            raise ValueError(f"segment {i} has no reference")
        per_segment.append(seg)
    width = max((len(seg) for seg in per_segment), default=1)
    return [[seg[k] if k < len(seg) else None for seg in per_segment] for k in range(width)]


def _bleu_class() -> type[BLEU]:
    require("sacrebleu", "evals", "BLEU")
    from sacrebleu.metrics.bleu import BLEU

    return BLEU


def _bleu(settings: Mapping[str, Any]) -> BLEU:
    try:
        return _bleu_class()(**settings)
    except TypeError as exc:  # unknown keyword: make the message name the culprit clearly
        raise TypeError(f"unsupported BLEU setting(s) {sorted(settings)}: {exc}") from exc


def sentence_bleu(prediction: str, references: Sequence[str] | str, **settings: Any) -> float:
    """Sentence-level BLEU of one prediction against one or more references, on the 0-100 scale.

    Computed by ``sacrebleu.metrics.BLEU(**settings).sentence_score``. ``settings`` are passed
    straight to ``BLEU``: ``tokenize`` (``"13a"`` default, ``"none"``, ``"intl"``, ``"char"``, ...),
    ``smooth_method`` (``"exp"`` default, ``"floor"``, ``"add-k"``, ``"none"``), ``smooth_value``
    (``None`` = sacreBLEU's default for the method), ``lowercase``, ``max_ngram_order``, ``force``,
    ``effective_order``.

    Like ``sacrebleu.sentence_bleu``, ``effective_order`` defaults to ``True`` here (n-gram orders with
    no candidate n-grams are left out of the geometric mean, so short sentences are not scored 0 just
    for being short). Pass ``effective_order=False`` to turn it off.
    """
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("sentence_bleu needs at least one reference")
    settings = {"effective_order": True, **settings}
    return float(_bleu(settings).sentence_score(prediction, refs).score)


def corpus_bleu_stats(
    predictions: Sequence[str],
    references: Sequence[Sequence[str | None]] | Sequence[str],
    **settings: Any,
) -> dict[str, Any]:
    """Corpus BLEU with its sufficient statistics.

    Returns a dict with ``score`` (0-100), ``counts`` (matching n-grams per order), ``totals``
    (candidate n-grams per order), ``precisions`` (0-100), ``bp`` (brevity penalty), ``sys_len`` and
    ``ref_len``. Arguments are as for :func:`corpus_bleu`.
    """
    preds = list(predictions)
    streams = _segment_refs_to_streams(references, len(preds))
    result = _bleu(settings).corpus_score(preds, streams)  # type: ignore[arg-type]  # sacrebleu takes None for a missing reference
    return {
        "score": float(result.score),
        "counts": list(result.counts),
        "totals": list(result.totals),
        "precisions": [float(p) for p in result.precisions],
        "bp": float(result.bp),
        "sys_len": int(result.sys_len),
        "ref_len": int(result.ref_len),
    }


def corpus_bleu(
    predictions: Sequence[str],
    references: Sequence[Sequence[str | None]] | Sequence[str],
    **settings: Any,
) -> float:
    """Corpus-level BLEU on the 0-100 scale, via ``sacrebleu.metrics.BLEU(**settings).corpus_score``.

    ``references`` is laid out PER PREDICTION, not as sacreBLEU reference streams:

    * ``list[str]``: ``references[i]`` is the single reference of ``predictions[i]``;
    * ``list[list[str]]``: ``references[i]`` is the list of references of ``predictions[i]``; lists may
      differ in length (missing ones are passed to sacreBLEU as ``None``).

    (sacreBLEU's own ``corpus_score`` wants ``streams[k][i]``; transpose such data with
    ``[list(seg) for seg in zip(*streams)]`` before calling this.) ``len(references)`` must equal
    ``len(predictions)``. ``settings`` are ``BLEU``'s keyword arguments (see :func:`sentence_bleu`);
    unlike :func:`sentence_bleu`, ``effective_order`` keeps sacreBLEU's corpus default ``False``.
    Empty predictions are kept (they count as zero-length output).
    """
    return corpus_bleu_stats(predictions, references, **settings)["score"]


def bleu_from_stats(
    correct: Sequence[int],
    total: Sequence[int],
    sys_len: int,
    ref_len: int,
    smooth_method: str = "none",
    smooth_value: float | None = None,
    effective_order: bool = False,
    max_ngram_order: int = 4,
) -> float:
    """BLEU (0-100) from sufficient statistics, via ``BLEU.compute_bleu`` (its defaults, too).

    Useful to aggregate BLEU over shards: sum ``counts``/``totals``/``sys_len``/``ref_len`` of
    :func:`corpus_bleu_stats` results and score the sums. The input lists are not modified.
    """
    return float(
        _bleu_class().compute_bleu(
            list(correct),
            list(total),
            sys_len,
            ref_len,
            smooth_method=smooth_method,
            smooth_value=smooth_value,
            effective_order=effective_order,
            max_ngram_order=max_ngram_order,
        ).score
    )


# --------------------------------------------------------------------------------------------------
# ROUGE (rouge-score)
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _rouge_scorer(types: tuple[str, ...], use_stemmer: bool) -> rouge_scorer.RougeScorer:
    # split_summaries=False: rougeLsum treats "\n" as the sentence separator (nltk's sentence
    # splitter would need the punkt data, which is not installed with the package).
    require("rouge_score", "evals", "ROUGE")
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(types), use_stemmer=use_stemmer, split_summaries=False)


def _score_to_dict(score: Any) -> dict[str, float]:
    return {
        "precision": float(score.precision),
        "recall": float(score.recall),
        "fmeasure": float(score.fmeasure),
    }


def _check_types(types: Iterable[str]) -> tuple[str, ...]:
    types = tuple([types] if isinstance(types, str) else types)
    if not types:
        raise ValueError("at least one ROUGE type is required")
    return types


def rouge(
    prediction: str,
    reference: str,
    types: Sequence[str] = DEFAULT_ROUGE_TYPES,
    use_stemmer: bool = False,
) -> dict[str, dict[str, float]]:
    """ROUGE scores of ``prediction`` against ``reference`` (0-1 scale).

    Returns ``{type: {"precision": p, "recall": r, "fmeasure": f}}`` for each of ``types``: ``"rougeN"``
    (N-gram overlap, any N >= 1), ``"rougeL"`` (longest common subsequence over the whole text) and
    ``"rougeLsum"`` (summary-level LCS; sentences are the NEWLINE-separated lines of each text, so put
    one sentence per line). Precision is relative to the prediction, recall to the reference.

    Uses ``rouge_score``'s default tokenizer (lowercase, non ``[a-z0-9]`` characters become spaces; so
    non-ASCII text scores 0). ``use_stemmer=False`` by default, as in ``rouge_score`` and Hugging Face's
    ``rouge``; with ``True`` the Porter stemmer is applied to tokens longer than 3 characters.
    """
    types = _check_types(types)
    scores = _rouge_scorer(types, bool(use_stemmer)).score(reference, prediction)
    return {t: _score_to_dict(scores[t]) for t in types}


def rouge_multi(
    prediction: str,
    references: Sequence[str],
    types: Sequence[str] = DEFAULT_ROUGE_TYPES,
    use_stemmer: bool = False,
) -> dict[str, dict[str, float]]:
    """ROUGE against several references: for each type, the scores of the reference with the highest
    F-measure (``rouge_score``'s ``score_multi``; the first one wins ties). Same output as :func:`rouge`.
    """
    if isinstance(references, str):
        references = [references]
    if not references:
        raise ValueError("rouge_multi needs at least one reference")
    types = _check_types(types)
    scores = _rouge_scorer(types, bool(use_stemmer)).score_multi(list(references), prediction)
    return {t: _score_to_dict(scores[t]) for t in types}


# --------------------------------------------------------------------------------------------------
# Key phrases
# --------------------------------------------------------------------------------------------------

#: English function words that never start, end or appear inside an extracted key phrase.
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each either else etc even ever every few for from further get gets got had hadn't
    has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let's like may me might
    more most much must mustn't my myself neither no nor not now of off on once only or other ought
    our ours ourselves out over own per rather same shall shan't she she'd she'll she's should shouldn't
    so some such than that that's the their theirs them themselves then there there's these they they'd
    they'll they're they've this those though through thus to too under until up upon us use used using
    very via was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
    whether which while who who's whom whose why why's will with within without won't would wouldn't yes
    yet you you'd you'll you're you've your yours yourself yourselves
    """.split()
)

# Words: letters/digits, with inner apostrophes, hyphens, dots or commas ("don't", "state-of-the-art",
# "3.5", "10,000"). Anything else (punctuation, symbols) ends a phrase.
_WORD_RE = re.compile(r"[^\W_]+(?:['’.,\-][^\W_]+)*")
_BREAK_RE = re.compile(r"[^\w\s'’.,\-]|(?<!\w)[.,]|[.,](?!\w)")


def _fold(text: str) -> str:
    return " ".join(text.casefold().replace("’", "'").split())


def extract_key_phrases(reference: str, k: int = 5, max_words: int = 4) -> list[str]:
    """Extract up to ``k`` key phrases from ``reference`` with a simple, deterministic RAKE-like rule.

    1. Casefold the text and split it into chunks at punctuation (anything but letters, digits,
       whitespace, apostrophes and hyphens), so phrases never cross ``. , ; : ( ) "`` etc.
    2. Within each chunk, a candidate phrase is a maximal run of consecutive content words: words that
       are not in :data:`STOPWORDS` and are either longer than one character or a digit. Runs longer
       than ``max_words`` are cut into consecutive pieces of at most ``max_words`` words.
    3. Deduplicate (first occurrence kept) and rank by number of words (longest first), then by
       position of first occurrence (earliest first). Return the top ``k``.

    Phrases come back casefolded and single-space separated; :func:`key_phrase_rate` matches them
    case-insensitively. No stemming, no corpus statistics: the same text always gives the same phrases.
    """
    if k <= 0:
        return []
    if max_words < 1:
        raise ValueError("max_words must be >= 1")
    seen: dict[str, int] = {}
    position = 0
    for chunk in _BREAK_RE.split(reference.casefold().replace("’", "'")):
        run: list[str] = []
        for word in [*_WORD_RE.findall(chunk), ""]:  # "" flushes the last run
            if word and word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
                run.append(word)
                continue
            for start in range(0, len(run), max_words):
                phrase = " ".join(run[start : start + max_words])
                if phrase not in seen:
                    seen[phrase] = position
                    position += 1
            run = []
    ranked = sorted(seen, key=lambda p: (-len(p.split()), seen[p]))
    return ranked[:k]


def key_phrase_rate(prediction: str, phrases: Sequence[str]) -> float | None:
    """Fraction of ``phrases`` found in ``prediction`` (0-1).

    Matching is case-insensitive (casefold) and whitespace-insensitive (runs of whitespace, newlines
    included, count as one space), and whole-word: a phrase that starts/ends with a letter or digit
    must not be glued to another letter/digit in the prediction (``"cat"`` is not found in
    ``"concatenate"``). Blank phrases are ignored.

    Returns ``None`` when there is no (non-blank) phrase: the rate is undefined, not perfect or zero,
    and :func:`summarize` leaves such examples out of the mean.
    """
    folded = [_fold(p) for p in phrases]
    folded = [p for p in folded if p]
    if not folded:
        return None
    text = _fold(prediction)
    hits = 0
    for phrase in folded:
        left = r"(?<!\w)" if phrase[0].isalnum() else ""
        right = r"(?!\w)" if phrase[-1].isalnum() else ""
        if re.search(left + re.escape(phrase) + right, text):
            hits += 1
    return hits / len(folded)


# --------------------------------------------------------------------------------------------------
# Length ratio, perplexity
# --------------------------------------------------------------------------------------------------


def length_ratio(prediction: str, reference: str) -> float:
    """Word-count ratio ``len(prediction.split()) / len(reference.split())`` (whitespace words).

    With an empty reference (0 words) the denominator is taken as 1, so the ratio is the prediction's
    word count (finite, and still growing with verbosity), except that two empty texts give ``1.0``.
    """
    n_pred = len(prediction.split())
    n_ref = len(reference.split())
    if n_ref == 0:
        return 1.0 if n_pred == 0 else float(n_pred)
    return n_pred / n_ref


_MAX_EXP_ARG = math.log(1.7976931348623157e308)  # ~709.78: exp() of anything larger overflows


def perplexity(mean_loss: float) -> float:
    """Perplexity ``exp(mean_loss)`` from a mean token cross-entropy in nats.

    Returns ``math.inf`` instead of raising ``OverflowError`` when ``mean_loss`` is too large
    (> ~709.78) or ``+inf``, and ``nan`` for a ``nan`` loss.
    """
    loss = float(mean_loss)
    if math.isnan(loss):
        return math.nan
    if loss > _MAX_EXP_ARG:
        return math.inf
    return math.exp(loss)


# --------------------------------------------------------------------------------------------------
# Per-example scores and their summary
# --------------------------------------------------------------------------------------------------


def score_example(
    prediction: str, reference: str, key_phrases: Sequence[str] | None = None
) -> dict[str, float | None]:
    """All per-example metrics the eval runner stores, as a flat dict.

    Keys: ``exact_match`` (0/1), ``bleu`` (sentence BLEU, sacreBLEU defaults with effective order,
    0-100 scale), ``rouge1``, ``rouge2``, ``rougeL`` (F-measures, 0-1, no stemming),
    ``key_phrase_rate`` (0-1 or ``None``) and ``length_ratio``.

    ``key_phrases=None`` means "derive them from the reference" with :func:`extract_key_phrases`
    (default ``k``); pass an explicit list to use curated phrases. The rate is ``None`` when the list
    is empty (or nothing could be extracted).
    """
    if key_phrases is None:
        key_phrases = extract_key_phrases(reference)
    rouge_scores = rouge(prediction, reference, types=DEFAULT_ROUGE_TYPES)
    return {
        "exact_match": exact_match(prediction, reference),
        "bleu": sentence_bleu(prediction, reference),
        "rouge1": rouge_scores["rouge1"]["fmeasure"],
        "rouge2": rouge_scores["rouge2"]["fmeasure"],
        "rougeL": rouge_scores["rougeL"]["fmeasure"],
        "key_phrase_rate": key_phrase_rate(prediction, key_phrases),
        "length_ratio": length_ratio(prediction, reference),
    }


def summarize(scores: Sequence[Mapping[str, float | None]]) -> dict[str, float]:
    """Mean of each metric over examples, ignoring ``None`` values (and only those).

    Keys are the union of the examples' keys, in first-seen order. A metric that is ``None`` in every
    example (or absent from every example that has other metrics) maps to ``nan``. An empty input gives
    ``{}``. Booleans count as 0/1; any other non-numeric value raises ``TypeError``.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for i, example in enumerate(scores):
        for key, value in example.items():
            sums.setdefault(key, 0.0)
            counts.setdefault(key, 0)
            if value is None:
                continue
            if not isinstance(value, int | float):
                raise TypeError(f"example {i}: metric {key!r} is {type(value).__name__}, not a number")
            sums[key] += float(value)
            counts[key] += 1
    return {key: (sums[key] / counts[key] if counts[key] else math.nan) for key in sums}


# --------------------------------------------------------------------------------------------------
# Labels: tasks whose answers come from a small set (classification, routing, triage)
# --------------------------------------------------------------------------------------------------

#: Detection thresholds of :func:`label_set`: at most this many distinct answers, each at most this
#: many words, covering at least this share of the references, each seen at least twice on average.
MAX_LABELS = 20
MAX_LABEL_WORDS = 4
MIN_LABEL_COVERAGE = 0.9


def label_set(
    references: Sequence[str],
    *,
    max_labels: int = MAX_LABELS,
    max_words: int = MAX_LABEL_WORDS,
    coverage: float = MIN_LABEL_COVERAGE,
) -> list[str] | None:
    """The label set of a task whose answers come from a small set, else ``None``.

    The references are normalised (:func:`normalize_answer`); the short ones (at most ``max_words``
    words, not empty) are candidate labels.  The task is a label task when there are at most
    ``max_labels`` distinct short answers, they cover at least ``coverage`` of the references, and
    there are at least twice as many references as labels (so a free-text task whose answers merely
    happen to be short and all different is not taken for one).  Labels come back sorted.
    """
    refs = [normalize_answer(r) for r in references]
    if not refs:
        return None
    short = [r for r in refs if r and len(r.split()) <= max_words]
    labels = sorted(set(short))
    if not labels or len(labels) > max_labels or len(short) < coverage * len(refs) or len(refs) < 2 * len(labels):
        return None
    return labels


def extract_label(answer: str, labels: Sequence[str], pattern: str | re.Pattern[str] | None = None) -> str | None:
    """The label an answer gives, or ``None``.

    In order: the whole normalised answer equals a label; else the label mentioned first in it (whole
    words of the normalised text; at the same position the longer label wins); else, with ``pattern``
    (a regex, applied to the raw answer, case-insensitive), its first group (the whole match when it
    has none), normalised: that is returned even when it is not in ``labels``.
    """
    norm = normalize_answer(answer)
    if norm in labels:
        return norm
    best: tuple[int, int, str] | None = None
    padded = f" {norm} "
    for lab in labels:
        pos = padded.find(f" {lab} ")
        if pos >= 0 and (best is None or (pos, -len(lab)) < (best[0], best[1])):
            best = (pos, -len(lab), lab)
    if best is not None:
        return best[2]
    if pattern is not None:
        m = re.search(pattern, answer, flags=re.IGNORECASE) if isinstance(pattern, str) else pattern.search(answer)
        if m:
            return normalize_answer(m.group(1) if m.groups() else m.group(0)) or None
    return None


def label_metrics(predicted: Sequence[str | None], gold: Sequence[str | None]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-label precision / recall / F1 / support of predicted labels.

    Pairs whose gold label is ``None`` are left out; a ``None`` prediction counts as wrong (it is no
    label's true or false positive).  Macro-F1 averages the F1 of every gold label (each label with
    support > 0; a label that is only ever predicted adds false positives to nobody's recall but is
    not averaged).  Returns ``{"n", "accuracy", "macro_f1", "per_label": {label: {...}}}``; with no
    scored pair, ``accuracy`` and ``macro_f1`` are ``nan``.
    """
    if len(predicted) != len(gold):
        raise ValueError(f"got {len(predicted)} predictions but {len(gold)} gold labels")
    pairs = [(p, g) for p, g in zip(predicted, gold, strict=True) if g is not None]
    if not pairs:
        return {"n": 0, "accuracy": math.nan, "macro_f1": math.nan, "per_label": {}}
    golds = sorted({g for _, g in pairs if g is not None})
    per: dict[str, dict[str, float | int]] = {}
    for lab in golds:
        tp = sum(1 for p, g in pairs if p == lab and g == lab)
        fp = sum(1 for p, g in pairs if p == lab and g != lab)
        support = sum(1 for _, g in pairs if g == lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[lab] = {"precision": prec, "recall": rec, "f1": f1, "support": support}
    accuracy = sum(1 for p, g in pairs if p == g) / len(pairs)
    macro = sum(float(v["f1"]) for v in per.values()) / len(per)
    return {"n": len(pairs), "accuracy": accuracy, "macro_f1": macro, "per_label": per}

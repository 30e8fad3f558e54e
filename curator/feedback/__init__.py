"""Production feedback: log readers, PII scrubbing, SFT examples and preference pairs from ratings.

* :func:`ingest_feedback` (``curator feedback ingest FILE``): rated events -> ``feedback`` table,
  positives -> examples (``origin='feedback'``), liked-vs-disliked answers -> ``preferences``.
* :mod:`curator.quality.pii`: :func:`scrub` / :func:`find_pii`, applied to everything before it is stored.
* :mod:`curator.feedback.preferences`: pairs in snapshots and the ``dpo`` export.
"""

from __future__ import annotations

from curator.feedback.events import DEFAULT_THRESHOLDS, RatingRules
from curator.feedback.ingest import FeedbackReport, ingest_feedback
from curator.feedback.query import feedback_stats, list_events, list_pairs
from curator.feedback.readers import FEEDBACK_FORMATS
from curator.quality.pii import find_pii, scrub

__all__ = [
    "DEFAULT_THRESHOLDS",
    "FEEDBACK_FORMATS",
    "FeedbackReport",
    "RatingRules",
    "feedback_stats",
    "find_pii",
    "ingest_feedback",
    "list_events",
    "list_pairs",
    "scrub",
]

"""Quality: dedup (exact, near, semantic), leakage beside it, the audit, PII scrubbing, the one text fold
(:mod:`curator.quality.fold`) and the one refusal detector (:mod:`curator.quality.refusal`)."""

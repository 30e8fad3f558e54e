"""Quality: dedup (exact, near, semantic), leakage beside it, the audit, PII scrubbing."""

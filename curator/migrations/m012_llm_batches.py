"""Provider batch jobs (``curator generate --batch``): which requests went into which batch.

- ``llm_batches``: one row per batch curator submits to OpenAI's Batch API or Anthropic's Message
  Batches.  ``id`` is curator's own id, written (status ``submitting``) *before* the provider is asked,
  so a kill at any point leaves a trace; ``batch_id`` is the provider's, recorded as soon as the batch
  exists (status ``submitted``); ``done`` once its results are in ``requests``, ``failed`` when the
  provider refused it, ``lost`` when it cannot be found again.  ``reserved_usd`` is the most the batch
  can cost at batch prices, held in the budget until its results settle it.
- ``llm_batch_requests``: the request keys of each batch (the keys of ``requests``) with the request
  as the cache stores it, so any later run can file the results, whichever command it is.
"""

SQL = """
CREATE TABLE IF NOT EXISTS llm_batches (
    id VARCHAR PRIMARY KEY,
    provider VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    job VARCHAR NOT NULL,
    batch_id VARCHAR,
    input_file_id VARCHAR,
    status VARCHAR NOT NULL,
    provider_status VARCHAR,
    requests INTEGER NOT NULL,
    reserved_usd DOUBLE,
    error VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    submitted_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS llm_batch_requests (
    batch VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    request JSON NOT NULL,
    PRIMARY KEY (batch, key)
);
"""

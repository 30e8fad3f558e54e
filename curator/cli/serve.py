"""``curator serve``: the OpenAI-compatible server (a thin wrapper over :mod:`curator.serve.server`)."""

from __future__ import annotations

import click

from curator.cli.kit import log, workspace

__all__ = ["serve_cmd"]


@click.command("serve")
@click.option("--adapter", "adapters", multiple=True, metavar="NAME=RUN",
              help="Serve RUN's adapter as model NAME (repeatable).")
@click.option("--run", "runs", multiple=True, metavar="RUN", help="Serve RUN's adapter under its run id (repeatable).")
@click.option("--champion", is_flag=True, help="Serve the current champion of the rounds as 'champion'.")
@click.option("--champion-poll", default=5.0, show_default=True, type=click.FloatRange(0.1),
              help="With --champion: seconds between looks at the rounds for a newly promoted run.")
@click.option("--ab", "ab", multiple=True, metavar="NAME=RUN_A,ARM=RUN_B:F",
              help="A/B: requests for NAME go to RUN_B with probability F (sticky per 'user'), else RUN_A.")
@click.option("--base-model", help="The base model (default: the runs' base model, else local:smollm2-135m-instruct).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --api-key.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--api-key", envvar="CURATOR_SERVE_KEY", metavar="KEY",
              help="Require 'Authorization: Bearer KEY' (env CURATOR_SERVE_KEY; prefer the variable).")
@click.option("--engine", type=click.Choice(["auto", "transformers", "vllm"]), default="auto", show_default=True,
              help="transformers: the batching engine here; vllm: vLLM on CUDA behind curator; auto: vllm when it can.")
@click.option("--max-batch", default=32, show_default=True, type=click.IntRange(1, 1024),
              help="Most requests decoding at once (continuous batching: new ones join between steps).")
@click.option("--batch-wait-ms", default=100.0, show_default=True, type=click.FloatRange(0, 1000),
              help="At most this long the engine gathers requests that keep arriving (20 ms apart) into one batch.")
@click.option("--per-adapter-batches", is_flag=True,
              help="One batch per adapter (a forward each per step) instead of PEFT's mixed-adapter batches.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True,
              help="Weights and compute of --engine transformers: auto is bfloat16 on CUDA, float32 on a CPU. "
                   "bfloat16 on a CPU with AVX512-BF16 or AMX is about 1.6x as fast; answers differ slightly.")
@click.option("--max-tokens-cap", default=1024, show_default=True, type=click.IntRange(1),
              help="Requests asking for more max_tokens get 400.")
@click.option("--default-max-tokens", default=256, show_default=True, type=click.IntRange(1),
              help="max_tokens when a request gives none.")
@click.option("--default-temperature", default=1.0, show_default=True, type=click.FloatRange(0, 2),
              help="temperature when a request gives none (OpenAI's default is 1; 0 = greedy).")
@click.option("--request-timeout", default=120.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds one completion may take (then 504, and its generation stops).")
@click.option("--max-body-bytes", default=1 << 20, show_default=True, type=click.IntRange(1),
              help="Larger request bodies get 413.")
@click.option("--body-timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a request body may stall (then 408).")
@click.option("--no-traces", is_flag=True, help="Do not log traces (feedback then has nothing to name).")
@click.option("--pii-backend", type=click.Choice(["patterns", "presidio"]),
              help="PII scrubber for traces: patterns, or presidio (adds person names and places; the [pii] "
                   "extra). Default: the workspace setting pii_backend, else patterns.")
@click.option("--vllm-arg", "vllm_args", multiple=True, metavar="ARG", help="Extra argument for `vllm serve`.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="warning",
              show_default=True, help="uvicorn's log level (no access log; the key is never logged).")
@click.pass_context
def serve_cmd(ctx: click.Context, adapters: tuple[str, ...], runs: tuple[str, ...], champion: bool, champion_poll: float,
              ab: tuple[str, ...], base_model: str | None, host: str, port: int, api_key: str | None, engine: str,
              max_batch: int, batch_wait_ms: float, per_adapter_batches: bool, dtype: str, max_tokens_cap: int,
              default_max_tokens: int, default_temperature: float, request_timeout: float, max_body_bytes: int,
              body_timeout: float, no_traces: bool, pii_backend: str | None, vllm_args: tuple[str, ...],
              log_level: str) -> None:
    """Serve the base model and trained adapters over an OpenAI-compatible API.

    The base model is always served as 'base'; each request's "model" picks an adapter.  Every answer
    is a trace (response id = trace id) that POST /v1/feedback can rate; `curator feedback ingest
    --traces` (and `curator round`) learn from the ratings.  The workspace database is only read at
    start-up: traces go to an append-only log under WORKSPACE/traces/.

    \b
    curator serve --adapter support=latest
    curator serve --run r-20261128-121500-ab12 --port 9000
    curator serve --ab champion=r-1,challenger=r-2:0.2
    CURATOR_SERVE_KEY=... curator serve --host 0.0.0.0 --adapter support=latest
    """
    from curator.errors import require

    require("fastapi", "serve", "curator serve")
    require("uvicorn", "serve", "curator serve")
    from curator.serve.app import ServeConfig
    from curator.serve.server import ServeOptions, serve

    cfg = ServeConfig(api_key=api_key or None, max_tokens_cap=max_tokens_cap, default_max_tokens=default_max_tokens,
                      default_temperature=default_temperature, request_timeout=request_timeout,
                      max_body_bytes=max_body_bytes, body_timeout=body_timeout, pii_backend=pii_backend)
    opts = ServeOptions(adapters=adapters, runs=runs, champion=champion, ab=ab, base_model=base_model, host=host,
                        port=port, engine=engine, max_batch=max_batch, batch_wait_ms=batch_wait_ms,
                        mixed_batches=not per_adapter_batches, dtype=dtype, traces=not no_traces, config=cfg,
                        vllm_args=vllm_args, log_level=log_level, champion_poll_s=champion_poll)
    serve(workspace(ctx), opts, log)

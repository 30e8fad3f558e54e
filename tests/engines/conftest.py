"""Fixtures for the engine tests: one local Ray instance per module, a fast static embedder, planted data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE.parent), str(_HERE)):  # helpers, planted however pytest is started
    if _p not in sys.path:
        sys.path.insert(0, _p)

from planted import write_planted  # noqa: E402


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[Any]:
    """A RayEngine on a local Ray instance with 2 CPUs (no dashboard, loopback only), shut down after the module."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local instance on 127.0.0.1
        mp.setenv("RAY_worker_niceness", "0")  # Ray's default of 15 starves the workers on a shared machine
        mp.delenv("RAY_ADDRESS", raising=False)
        import ray
        from ray._private import ray_constants

        from curator.engines.ray_engine import RayEngine

        # The variable above is read when ray is first imported (here, at collection): say it again to the
        # imported module, so that this process too binds the instance to 127.0.0.1 rather than its LAN address.
        mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        engine = RayEngine()
        try:
            yield engine
        finally:
            engine.close()
            ray.shutdown()


@pytest.fixture(scope="session")
def static_embedder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sentence-transformers folder: the bundled all-MiniLM-L6-v2 word-piece embeddings, mean-pooled.

    A real model folder (loaded by name like any other) that embeds thousands of texts a second on a CPU,
    so 12k examples run through the semantic path in seconds; a bag of the same words scores cosine ~1.
    """
    pytest.importorskip("sentence_transformers", reason="the [embed] extra is not installed")
    from safetensors.numpy import load_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    from curator.models import DEFAULT_EMBEDDER, resolve_embedder

    src = resolve_embedder(DEFAULT_EMBEDDER)
    weights = load_file(str(src / "model.safetensors"))
    table = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    model = SentenceTransformer(modules=[StaticEmbedding(Tokenizer.from_file(str(src / "tokenizer.json")),
                                                         embedding_weights=table)], device="cpu")
    out = tmp_path_factory.mktemp("static") / "static-minilm"
    model.save(str(out))
    return str(out)


@pytest.fixture(scope="module")
def planted_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace folder with ~12k planted examples (splits 80/10/10, leaks ingested into test); copy it to use."""
    from curator.data.ingest import ingest_file
    from curator.workspace import Workspace

    root = tmp_path_factory.mktemp("planted")
    main, leaks = write_planted(root)
    ws = Workspace(root / "ws")
    ingest_file(ws, main)
    ingest_file(ws, leaks, split="test")
    return root / "ws"

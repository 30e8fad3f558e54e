"""The Ray engine gives the local engine's answers, decision by decision, on a local Ray instance (2 CPUs).

One Ray instance per module (``ray_engine`` in conftest: ``ray.init(num_cpus=2)``, no dashboard, loopback
only, shut down at the end). The big comparison runs exact, near and semantic dedup, leakage (exact,
n-gram, semantic, with --fix) and the audit's duplicate and leakage statistics on ~12k planted examples
in two copies of one workspace, one per engine, and compares the written tables row for row. The semantic
steps there use a static (word-piece) embedder so 12k texts embed in seconds; the bundled
all-MiniLM-L6-v2 goes through the Ray actors in a smaller test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from planted import copy_ws, planted_rows

from curator.engines import open_engine
from curator.errors import CuratorError
from curator.quality.audit import audit
from curator.quality.dedup import dedup
from curator.quality.dedup.engine import LOCAL
from curator.quality.leakage import find_leakage, fix_leakage, ngram_leak_pairs

pytest.importorskip("ray", reason="the [ray] extra is not installed")


def _tables(ws: Any) -> dict[str, list[tuple[Any, ...]]]:
    with ws.connect() as con:
        return {
            "examples": con.execute(
                "SELECT id, status, excluded_reason FROM examples ORDER BY id").fetchall(),
            "decisions": con.execute(
                "SELECT example_id, kind, other_id, score, reason FROM decisions ORDER BY kind, example_id").fetchall(),
            "embeddings": con.execute(
                "SELECT example_id, model, vector FROM embeddings ORDER BY model, example_id").fetchall(),
        }


def test_every_decision_is_the_same_on_ray(planted_ws: Path, tmp_path: Path, ray_engine: Any,
                                           static_embedder: str) -> None:
    results = {}
    for name, engine in (("local", LOCAL), ("ray", ray_engine)):
        ws = copy_ws(planted_ws, tmp_path / name)
        stats = audit(ws, semantic=True, model=static_embedder, engine=engine).to_dict()
        leaks = find_leakage(ws, model=static_embedder, engine=engine)
        fixed = fix_leakage(ws, leaks)
        report = dedup(ws, model=static_embedder, engine=engine)
        results[name] = {
            "audit": {k: stats[k] for k in ("duplicates", "leakage", "metrics")},
            "dedup": [(m.method, m.pairs, m.clusters, m.excluded, m.cluster_sizes) for m in report.methods],
            "leaks": [p.to_dict() for p in leaks.pairs],
            "fixed": fixed,
            "tables": _tables(ws),
        }
    local, ray = results["local"], results["ray"]
    # every method found something, so the comparison is not vacuous
    by_method = {m: excluded for m, _, _, excluded, _ in local["dedup"]}
    assert by_method["exact"] > 200 and by_method["near"] > 200 and by_method["semantic"] > 100, by_method
    assert {p["method"] for p in local["leaks"]} >= {"exact"} and local["fixed"] > 0
    assert local["audit"]["metrics"]["duplicates"]["count"] > 500
    for key in ("audit", "dedup", "leaks", "fixed"):
        assert ray[key] == local[key], key
    for table in ("examples", "decisions"):
        assert ray["tables"][table] == local["tables"][table], table
    # the embedding cache is filled the same way (same rows, same vectors)
    assert len(ray["tables"]["embeddings"]) == len(local["tables"]["embeddings"]) > 10_000
    assert ray["tables"]["embeddings"] == local["tables"]["embeddings"]


def test_cores_agree_with_small_shards(ray_engine: Any) -> None:
    """Many tiny shards, bands and verification blocks still give the local answer."""
    from curator.engines.ray_engine import RayEngine

    rows, _ = planted_rows(3_000, seed=3)
    texts = [r["messages"][0]["content"] + "\n" + r["messages"][1]["content"] for r in rows]
    small = RayEngine(shard_rows=256)
    for engine in (ray_engine, small):
        got = engine.near_pairs(texts, 0.8)
        want = LOCAL.near_pairs(texts, 0.8)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        got = engine.near_pairs(texts, 0.8, involving=2_000)
        want = LOCAL.near_pairs(texts, 0.8, involving=2_000)
        assert np.array_equal(got[0], want[0]) and len(want[0])
        assert engine.exact_keys(texts) == LOCAL.exact_keys(texts)
        assert engine.fold(texts[:500]) == LOCAL.fold(texts[:500])
        train, other = LOCAL.fold(texts[:2_500]), LOCAL.fold(texts[2_500:])
        got = engine.ngram_leak_pairs(train, other, ngram=5, short_ngram=3, coverage=0.5)
        want = ngram_leak_pairs(train, other, ngram=5, short_ngram=3, coverage=0.5, folded=True)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and len(want[0])
        rng = np.random.default_rng(0)
        x = rng.standard_normal((9_000, 16)).astype(np.float32)
        x[1::7] = x[::7][: len(x[1::7])] + 0.01 * rng.standard_normal((len(x[1::7]), 16)).astype(np.float32)
        got = engine.semantic_pairs(x, 0.95)
        want = LOCAL.semantic_pairs(x, 0.95)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and len(want[0]) > 1000
        got = engine.semantic_pairs(x[:5000], 0.95, queries=x[5000:])
        want = LOCAL.semantic_pairs(x[:5000], 0.95, queries=x[5000:])
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert ray_engine.near_pairs(texts[:1], 0.8)[0].shape == (0, 2)
    small.close()


def test_bundled_embedder_on_ray_actors_fills_the_same_cache(ws: Any, tmp_path: Path, ray_engine: Any) -> None:
    """The real all-MiniLM-L6-v2 in Ray actors: the same vectors, paraphrase decisions and cache; no re-embedding."""
    from helpers import chat, write_jsonl

    from curator.data.ingest import ingest_file

    pytest.importorskip("sentence_transformers", reason="the [embed] extra is not installed")
    pairs = [("How do I reset my password?", "Use the reset link on the sign-in page."),
             ("How can I reset my password?", "Use the reset link on the sign-in page."),
             ("Where can I see my invoices?", "Invoices are under Billing, then History."),
             ("Where do I find my invoices?", "Invoices are under Billing, then History.")]
    rows = [chat(q, a) for q, a in pairs] + [chat(f"Question {i} about topic {i * 7}", f"Answer number {i}.")
                                              for i in range(150)]
    src = write_jsonl(tmp_path / "rows.jsonl", rows)
    ingest_file(ws, src)
    results = {}
    for name, engine in (("local", LOCAL), ("ray", ray_engine)):
        w = copy_ws(ws.path, tmp_path / name)
        report = dedup(w, ["semantic"], engine=engine)
        again = dedup(w, ["semantic"], engine=engine, dry_run=True)
        results[name] = (report.embedded, again.embedded, _tables(w))
    assert results["local"][0] == results["ray"][0] == len(rows) and results["ray"][1] == 0
    assert results["ray"][2] == results["local"][2]
    assert len(results["local"][2]["decisions"]) >= 2  # the two paraphrases


def test_cli_engine_options(ws: Any, tmp_path: Path, ray_engine: Any) -> None:
    from helpers import chat, write_jsonl

    from curator.cli import main
    from curator.data.ingest import ingest_file

    ingest_file(ws, write_jsonl(tmp_path / "r.jsonl", [chat("Hello there, how are you today?", "Fine."),
                                                       chat("hello there how are you today", "Fine!"),
                                                       chat("Something else entirely", "Yes.")]))
    runner = CliRunner()
    out = runner.invoke(main, ["dedup", "--exact", "--near", "--engine", "ray", "--json"])
    assert out.exit_code == 0, out.output
    assert '"excluded": 1' in out.output
    out = runner.invoke(main, ["leakage", "--methods", "exact,ngram", "--engine", "ray", "--json"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["audit", "--engine", "ray", "--json"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["dedup", "--engine", "local", "--ray-address", "127.0.0.1:1"])
    assert out.exit_code == 1 and "Error: --ray-address needs --engine ray" in out.output


def test_the_local_instance_stays_on_the_loopback_address(ray_engine: Any) -> None:
    import ray

    assert ray_engine.cpus() == 2
    assert {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} == {"127.0.0.1"}


def test_unknown_engine() -> None:
    with pytest.raises(CuratorError, match="unknown engine 'spark'"), open_engine("spark"):
        pass

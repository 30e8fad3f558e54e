"""The local provider on the tiny random model, alone and as a teacher of `generate()`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from curator.errors import ProviderError
from curator.llm.providers import make_provider
from curator.llm.providers.local import LocalProvider
from curator.synth import FilterConfig, GenParams, generate

CHAT = [{"role": "user", "content": "Say hello."}]


def test_concurrent_calls_share_one_batch(tiny_model_dir: Path) -> None:
    p = make_provider(f"local:{tiny_model_dir}", batch_size=4)
    assert isinstance(p, LocalProvider) and p.remote is False and p.spec == f"local:{tiny_model_dir}"
    params = GenParams(max_tokens=5, temperature=0.0)

    async def main() -> list:  # type: ignore[type-arg]
        async with p:
            chats = [[{"role": "user", "content": f"Question number {i}?"}] for i in range(6)]
            return await asyncio.gather(*(p.complete(c, params) for c in chats))

    outs = asyncio.run(main())
    assert len(outs) == 6 and p.batch_sizes == [4, 2]
    for o in outs:
        assert isinstance(o.text, str) and 0 < o.output_tokens <= 5 and o.input_tokens > 5
        assert o.finish_reason in ("stop", "length") and o.raw["usage"]["output_tokens"] == o.output_tokens


def test_greedy_is_deterministic_and_stop_strings_cut(tiny_model_dir: Path) -> None:
    p = LocalProvider(str(tiny_model_dir), batch_size=1)
    params = GenParams(max_tokens=8, temperature=0.0)
    a = p.generate_batch([CHAT], params)[0]
    b = p.generate_batch([CHAT], params)[0]
    assert a.text == b.text
    if len(a.text) > 2:
        cut = p.generate_batch([CHAT], GenParams(max_tokens=8, temperature=0.0, stop=[a.text[1:3]]))[0]
        assert cut.text == a.text[: a.text.index(a.text[1:3])] and cut.finish_reason == "stop"


def test_missing_model_is_a_provider_error(tmp_path: Path) -> None:
    p = LocalProvider(str(tmp_path / "nowhere"))
    with pytest.raises(ProviderError, match="unknown model"):
        asyncio.run(p.complete(CHAT, GenParams(max_tokens=2)))


def test_generate_with_a_local_teacher_is_robust_and_cached(ws, tiny_model_dir: Path) -> None:  # noqa: ANN001
    from synth.synth_helpers import rows, seeded_workspace

    seeded_workspace(ws, with_test=False)
    kw = dict(teacher=f"local:{tiny_model_dir}", n=4, task="support", k=1, concurrency=4, progress=False,
              params=GenParams(max_tokens=12, temperature=0.8), filters=FilterConfig(skip=frozenset({"semantic"})))
    r = generate(ws, **kw)  # type: ignore[arg-type]
    # A random model writes no JSON: every reply is asked to repair once, then rejected, and recorded.
    assert r.requested == 4 and r.failed == 0 and r.made == 8 and r.spent_usd == 0
    assert r.added + sum(r.rejected.values()) == 4 and r.rejected.get("parse", 0) >= 1
    assert rows(ws, "SELECT count(*), count(DISTINCT key), min(cost_usd), max(cost_usd) FROM requests") == [
        (8, 8, 0.0, 0.0)]
    again = generate(ws, **kw)  # type: ignore[arg-type]
    assert (again.made, again.cached, again.rejected) == (0, 8, r.rejected)

"""The real SmolLM2-135M as a teacher on the bundled seeds (slow: minutes on a busy CPU)."""

from __future__ import annotations

import json

import pytest
from synth.synth_helpers import rows, seeded_workspace

from curator.synth import GenParams, generate


@pytest.mark.slow
def test_smollm2_writes_parseable_examples_from_the_bundled_seeds(ws) -> None:  # noqa: ANN001
    seeded_workspace(ws)
    kw = dict(teacher="local:smollm2-135m-instruct", task="support", n=8, k=2, concurrency=8, progress=False,
              params=GenParams(max_tokens=160, temperature=0.7))
    r = generate(ws, **kw)  # type: ignore[arg-type]
    assert r.failed == 0 and r.spent_usd == 0 and r.made >= 8
    assert r.candidates >= 4  # most replies parse; the filters decide what is kept
    assert r.added + sum(r.rejected.values()) == 8
    for meta, messages in rows(ws, "SELECT meta, messages FROM examples WHERE origin = 'synthetic'"):
        assert json.loads(meta)["teacher"] == "local:smollm2-135m-instruct"
        assert [m["role"] for m in json.loads(messages)] == ["system", "user", "assistant"]
    again = generate(ws, **kw)  # type: ignore[arg-type]
    assert again.made == 0 and again.added == 0 and again.already_present == r.added

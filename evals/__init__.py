"""Evaluation: metrics, the runner, LLM-as-judge, the regression report and weaknesses.

::

    from evals.runner import evaluate
    from evals.compare import compare
    from evals.weaknesses import weaknesses
    run = evaluate(ws, "3f2a9c")            # EvalResult (cached on a second call)
    base = evaluate(ws, "base")
    cmp = compare(ws, run.id, base.id)      # Comparison; cmp.regressions
    groups = weaknesses(ws, run.id)         # [{id, task, description, example_ids}]
    from evals.human import summary, win_rate
    summary(ws, run.id)                     # human ratings from `curator review` (None without any)

The package re-exports the names that do not clash with its submodules (``compare`` and
``weaknesses`` are both; import those functions from their modules).  Names are imported on first
use, so ``import evals`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Comparison",
    "EvalResult",
    "evaluate",
    "judge_eval",
    "judge_pairwise",
    "list_evals",
    "render_text",
    "resolve_eval",
]

_WHERE = {
    "Comparison": "compare", "render_text": "compare",
    "EvalResult": "runner", "evaluate": "runner", "list_evals": "runner", "resolve_eval": "runner",
    "judge_eval": "judge", "judge_pairwise": "judge",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

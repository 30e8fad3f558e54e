"""Self-instruct seed tasks: ``{"instruction", "instances": [{"input", "output"}, ...]}``.

Each instance becomes one example; the task id and name go into ``meta``.
"""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import RowError, prompt_with_input, require_str

NAME = "selfinstruct"
__all__ = ["NAME", "convert", "detect"]


def detect(obj: dict[str, Any]) -> bool:
    return "instruction" in obj and "instances" in obj


def convert(obj: dict[str, Any]) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    instruction = require_str(obj, "instruction")
    instances = obj.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RowError('"instances" must be a non-empty list')
    meta: dict[str, Any] = {k: obj[k] for k in ("id", "name", "motivation_app", "is_classification") if k in obj}
    out = []
    for j, inst in enumerate(instances, 1):
        if not isinstance(inst, dict):
            raise RowError(f"instance {j} is not an object")
        try:
            extra = require_str(inst, "input", allow_empty=True) if "input" in inst else ""
            output = require_str(inst, "output", allow_empty=True)
        except RowError as e:
            raise RowError(f"instance {j}: {e}") from None
        messages = [
            {"role": "user", "content": prompt_with_input(instruction, extra)},
            {"role": "assistant", "content": output},
        ]
        out.append((messages, dict(meta, instance=j)))
    return out

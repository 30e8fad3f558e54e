"""Small builders for test data (importable because conftest puts tests/ on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(user: str, answer: str, system: str | None = None) -> dict[str, Any]:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": msgs}


def count_rows(ws: Any) -> dict[str, int]:
    with ws.connect() as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("examples", "splits", "ingests", "snapshots")
        }


#: Two function schemas for the tool-calling examples (OpenAI's top-level ``tools``).
TOOLS = [
    {"type": "function", "function": {"name": "get_order", "description": "Look up an order",
                                      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                                                     "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "refund", "description": "Refund an order",
                                      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"},
                                                                                      "amount": {"type": "number"}},
                                                     "required": ["order_id"]}}},
]


def tool_chat(i: int, *, final: bool = True) -> dict[str, Any]:
    """An OpenAI tool-calling record: a call (``content: null``), the tool's answer, then (``final``) the reply;
    the user turn is given as text parts."""
    oid = f"A{100 + i}"
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a support agent with tools."},
        {"role": "user", "content": [{"type": "text", "text": f"Where is my order {oid}?"},
                                     {"type": "text", "text": f"Ticket {i}."}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": "get_order", "arguments": json.dumps({"order_id": oid})}}]},
    ]
    if final:
        msgs += [{"role": "tool", "tool_call_id": f"call_{i}", "content": json.dumps({"status": "shipped"})},
                 {"role": "assistant", "content": f"Order {oid} has shipped.", "weight": 1}]
    return {"messages": msgs, "tools": TOOLS, "parallel_tool_calls": False}

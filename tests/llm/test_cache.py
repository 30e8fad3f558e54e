"""Request keys and the requests table."""

from __future__ import annotations

import asyncio

from curator.llm.cache import RequestRow, RequestStore, request_key

MSGS = [{"role": "user", "content": "hi"}]
PARAMS = {"max_tokens": 10, "temperature": 0.7, "top_p": 1.0, "seed": None, "stop": None}


def test_request_key_is_stable_and_sensitive() -> None:
    k = request_key("openai", "gpt-4o-mini", MSGS, PARAMS, {"index": 0})
    assert k == request_key("openai", "gpt-4o-mini", [{"content": "hi", "role": "user"}], dict(PARAMS), {"index": 0})
    assert len(k) == 64
    others = {
        request_key("anthropic", "gpt-4o-mini", MSGS, PARAMS, {"index": 0}),
        request_key("openai", "gpt-4o", MSGS, PARAMS, {"index": 0}),
        request_key("openai", "gpt-4o-mini", [{"role": "user", "content": "hi!"}], PARAMS, {"index": 0}),
        request_key("openai", "gpt-4o-mini", MSGS, {**PARAMS, "temperature": 0.0}, {"index": 0}),
        request_key("openai", "gpt-4o-mini", MSGS, PARAMS, {"index": 1}),
    }
    assert k not in others and len(others) == 5


def row(key: str, status: str, attempts: int = 1) -> RequestRow:
    return RequestRow(key, "openai", "m", {"messages": MSGS}, status, "job1", attempts,
                      response={"id": key} if status == "ok" else None, text="t" if status == "ok" else None,
                      finish_reason="stop", input_tokens=3, output_tokens=1, cost_usd=0.5,
                      error=None if status == "ok" else "HTTP 500")


def test_store_replaces_failed_rows_and_batches_writes(ws) -> None:  # noqa: ANN001
    with ws.connect() as con:
        store = RequestStore(con)
        store.write([row("a", "failed", 6)])
        fresh = RequestStore(con)
        fresh.preload(["a", "b"])
        assert fresh.get("a") is None and fresh.previous_attempts("a") == 6

        async def main() -> None:
            await asyncio.gather(fresh.put(row("a", "ok", 8)), fresh.put(row("b", "ok")), fresh.put(row("c", "ok")))

        asyncio.run(main())
        fresh.close()
        assert fresh.writes == 1  # three rows that arrived together: one INSERT
        got = con.execute("SELECT key, status, attempts FROM requests ORDER BY key").fetchall()
        assert got == [("a", "ok", 8), ("b", "ok", 1), ("c", "ok", 1)]
        again = RequestStore(con)
        hit = again.get("a")
        assert hit is not None and hit.text == "t" and hit.cost_usd == 0.5

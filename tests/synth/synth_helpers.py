"""Builders shared by the generation tests: a seeded workspace and a deterministic fake teacher."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from fakeserver import RecordedRequest

from curator.data.ingest import ingest_file
from curator.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds" / "support" / "seeds.jsonl"
TEST = ROOT / "seeds" / "support" / "test.jsonl"

WORDS = ("account billing bucket instance dns zone quota invoice region snapshot backup token cli deploy "
         "function database replica timeout latency firewall volume certificate webhook cron secret policy "
         "role alarm metric subnet gateway image cache queue topic stream worker tenant seat plan").split()
ANSWER = ("Diagnosis: The {thing} is misconfigured.\n1. Run `nimbus {thing} show`.\n2. Fix the settings in the "
          "console.\n3. Retry the request.\nEscalation: If this does not help, open a ticket at "
          "support.nimbus.example and include the {thing} ID.")


def seeded_workspace(ws: Workspace, *, with_test: bool = True) -> Workspace:
    """The bundled Nimbus seeds (origin seed) and, pinned to test, the held-out file."""
    ingest_file(ws, SEEDS, origin="seed", task="support")
    if with_test:
        ingest_file(ws, TEST, split="test", task="support")
    return ws


def prompt_of(rec: RecordedRequest) -> str:
    body = rec.body if isinstance(rec.body, dict) else {}
    return json.dumps([body.get("system"), body.get("messages")], sort_keys=True)


def unique_pair(rec: RecordedRequest) -> str:
    """A JSON reply with a question made of words drawn from a hash of the request (same request, same reply)."""
    rng = random.Random(hashlib.sha256(prompt_of(rec).encode()).hexdigest())
    words = rng.sample(WORDS, 9)
    q = f"Why does my {words[0]} fail with {' '.join(words[1:])}?"
    return json.dumps({"question": q, "answer": ANSWER.format(thing=words[0])})


def answer_reply(rec: RecordedRequest) -> str:
    """Answer mode: an answer that quotes the question's last words."""
    body = rec.body if isinstance(rec.body, dict) else {}
    last = body["messages"][-1]["content"]
    return ANSWER.format(thing=" ".join(str(last).split()[-2:]))


def rows(ws: Workspace, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with ws.connect() as con:
        return con.execute(sql, params or []).fetchall()

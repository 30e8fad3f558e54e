"""Synthetic production chat logs for tests: ``python tests/feedback/gen_chatlog.py N OUT.jsonl [--seed S]``.

Event ``i`` depends only on ``(seed, i)``, so ``generate(1200)`` starts with exactly the events of
``generate(1000)``: a grown log.  The log mixes every rating field (``rating`` 1-5, ``thumbs``,
``score``), asks some prompts twice with a good and a bad answer (preference pairs), and puts PII
(emails, phones, API keys, card numbers) in some user turns and some answers.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

__all__ = ["PII_VALUES", "generate", "write_chatlog"]

SYSTEM = "You are the support assistant for Nimbus Cloud. Answer with a diagnosis, three steps and an escalation line."
_SERVICES = ["Compute instance", "Bucket", "Nimbus DB cluster", "Function", "DNS zone", "load balancer", "VPC",
             "API gateway", "billing account", "Kubernetes node pool", "snapshot schedule", "CDN distribution"]
_PROBLEMS = ["fails with a timeout", "returns 403 Forbidden", "is stuck in 'pending'", "shows high latency",
             "was deleted by mistake", "costs more than expected", "cannot be reached from the office",
             "reports 'quota exceeded'", "restarts every few minutes", "lost its tags after an update",
             "shows a certificate error", "rejects our new API key"]
_CONTEXT = ["since this morning", "after the last deploy", "only in eu-west-2", "for some users", "every night at 2 AM",
            "when traffic peaks", "after we rotated credentials", "since we upgraded the CLI"]
_CMDS = ["nimbus logs tail", "nimbus status", "nimbus quota show", "nimbus iam policy get", "nimbus net trace",
         "nimbus billing usage", "nimbus restore list", "nimbus cert check"]
#: Fake PII the generator plants; none of it may reach the workspace unscrubbed.
PII_VALUES = ["ana.silva@example.org", "+1 415 555 0142", "sk-proj-Zx81Kq2LmN5pQ7rS9tUvW3yA", "4111 1111 1111 1111",
              "+44 20 7946 0321", "ops-team@nimbus-customer.example"]


def _answer(rng: random.Random, service: str, good: bool) -> str:
    if not good:
        return rng.choice(["Have you tried turning it off and on again?", "That is not something we support.",
                           "Please wait a few days, it usually fixes itself.", "I don't know, sorry."])
    a, b, c = rng.sample(_CMDS, 3)
    return (f"Diagnosis: the {service.lower()} configuration changed (ref {rng.randrange(10**6):06d}).\n"
            f"1. Run `{a} --id {rng.randrange(10**5)}`.\n2. Check the output of `{b}`.\n3. Apply the fix with `{c}`.\n"
            "Escalation: If this does not help, open a ticket at support.nimbus.example and include the resource ID.")


def event(i: int, seed: int = 0) -> dict[str, Any]:
    """Event ``i`` of the log with this seed (independent of every other event)."""
    rng = random.Random(f"{seed}:{i}")
    pair = i % 10 == 9  # every tenth event re-asks the previous prompt with the opposite verdict
    prompt_rng = random.Random(f"{seed}:{i - 1 if pair else i}:prompt")
    service, problem, context = (prompt_rng.choice(_SERVICES), prompt_rng.choice(_PROBLEMS), prompt_rng.choice(_CONTEXT))
    user = f"Our {service} {problem} {context}. Ticket {prompt_rng.randrange(10**7):07d}."
    if prompt_rng.random() < 0.15:
        user += f" Reach me at {prompt_rng.choice(PII_VALUES)}."
    good = (not event(i - 1, seed)["_good"]) if pair else rng.random() < 0.6
    answer = _answer(rng, service, good)
    if good and rng.random() < 0.05:
        answer += f" You can also call us at {rng.choice(PII_VALUES[1::3])}."
    row: dict[str, Any] = {
        "trace_id": f"gen-{seed}-{i:06d}", "timestamp": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
        "model": f"curator-round-{1 + i // 500}",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                     {"role": "assistant", "content": answer}],
        "_good": good,
    }
    kind = rng.random()
    if kind < 0.6:
        row["rating"] = rng.choice([4, 5]) if good else rng.choice([1, 2])
    elif kind < 0.85:
        row["thumbs"] = "up" if good else "down"
    else:
        row["score"] = round(rng.uniform(0.75, 1.0) if good else rng.uniform(0.0, 0.25), 2)
    return row


def generate(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The first ``n`` events of the log with this seed."""
    rows = [event(i, seed) for i in range(n)]
    for r in rows:
        r.pop("_good")
    return rows


def write_chatlog(path: str | Path, n: int, seed: int = 0) -> Path:
    """Write the first ``n`` events as JSON Lines to ``path``."""
    p = Path(path)
    with p.open("w", encoding="utf-8") as f:
        for r in generate(n, seed):
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return p


if __name__ == "__main__":
    args = sys.argv[1:]
    seed = 0
    if "--seed" in args:
        k = args.index("--seed")
        seed = int(args[k + 1])
        del args[k : k + 2]
    if len(args) != 2:
        sys.exit("usage: python tests/feedback/gen_chatlog.py N OUT.jsonl [--seed S]")
    write_chatlog(args[1], int(args[0]), seed)

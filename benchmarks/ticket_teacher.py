"""A synthetic ticket-routing task with a hidden rule, and a deterministic OpenAI-compatible teacher for it.

The rule: a ticket goes to the team that owns the one product it mentions (:data:`RULE`, six teams,
four products each, mixed on purpose so a product's team cannot be guessed from its meaning).  The
seeds (:func:`splits`) show every product of the *strong* teams and only the first product of the
*weak* ones (:data:`WEAK`), while dev and test use all products: a model trained on the seeds alone
misroutes most weak-team tickets.

:class:`TicketTeacher` is a local HTTP server speaking ``POST /v1/chat/completions`` (enough for the
official ``openai`` SDK and curator's ``compatible:`` provider).  Asked for a training example, it
writes a new, correct ticket for the label the request names (``label 'jade'`` in a weakness
description, as :mod:`evals.weaknesses` writes them); ``mode="uniform"`` ignores the request and
cycles through the teams (the untargeted control).  Within a team, its n-th ticket names the team's
products in turn and is new (phrasing, number and a context sentence follow n), so the same requests
give the same set of tickets whatever order they arrive in.  Only 127.0.0.1 is bound.
Used by ``benchmarks/loop_gain.py`` and ``tests/loop/test_label_targeting.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RULE", "SYSTEM", "TEAMS", "WEAK", "TicketTeacher", "label_of", "splits", "ticket"]

RULE: dict[str, list[str]] = {
    "amber": ["printer", "invoice", "password", "parcel"],
    "cobalt": ["router", "refund", "calendar", "badge"],
    "jade": ["laptop", "coupon", "webcam", "locker"],
    "onyx": ["monitor", "payroll", "voicemail", "scooter"],
    "ruby": ["keyboard", "license", "elevator", "mailbox"],
    "slate": ["headset", "passport", "thermostat", "projector"],
}
TEAMS = sorted(RULE)
WEAK = ("jade", "onyx", "ruby")
SYSTEM = ("Route the support ticket to the team that owns it. Answer with the team name only: "
          + ", ".join(TEAMS) + ".")
_OWNER = {p: team for team, products in RULE.items() for p in products}
_OPEN = ["Hi,", "Hello,", "Urgent:", "Please help:", "Quick question:", "Good morning,", "Hey team,", "FYI:"]
_ISSUE = ["my {p} stopped working", "the {p} shows an error", "I cannot use the {p}", "our {p} is broken again",
          "the new {p} fails", "my {p} keeps failing", "the {p} does nothing", "our {p} gives a warning"]
_WHEN = ["since Monday", "after the update", "this morning", "every day", "since last week", "at the office",
         "today", "since yesterday"]
#: What the teacher adds to its tickets (a second sentence, as a person writing one would): its tickets
#: are then no copies of one another, nor of the one-sentence dev and test tickets.
_CONTEXT = ["I already restarted it twice.", "Nothing changed on our side.", "My manager asked me to report it.",
            "A colleague has the same problem.", "It worked fine last month.", "We need it for a client meeting.",
            "The help page did not solve it.", "I am working from home this week.", "Please call me back.",
            "It happens on every floor.", "This blocks the whole team.", "I tried the usual fix, no luck."]


def ticket(product: str, n: int) -> str:
    """The ``n``-th phrasing of a ticket about ``product`` (short, so only exact overlap counts as leakage)."""
    a, b, c = n % 8, (n // 8) % 8, (n // 64) % 8
    return f"{_OPEN[a]} {_ISSUE[b].format(p=product)} {_WHEN[c]} (ticket {1000 + n})."


def label_of(text: str) -> str | None:
    """The team of a ticket by the hidden rule (the first product it names), else ``None``."""
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _OWNER:
            return _OWNER[word]
    return None


def _row(text: str, team: str) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
                         {"role": "assistant", "content": team}]}


def splits(n_seed: int = 8, n_dev: int = 6, n_test: int = 12) -> dict[str, list[dict[str, Any]]]:
    """Seeds (per team), dev and test (per team, products in turn); every ticket number is unique."""
    counter = itertools.count(7)
    out: dict[str, list[dict[str, Any]]] = {"train": [], "eval": [], "test": []}
    for team in TEAMS:
        seen = RULE[team][:1] if team in WEAK else RULE[team]
        out["train"] += [_row(ticket(seen[i % len(seen)], next(counter) * 37 % 512), team) for i in range(n_seed)]
    for split, n in (("eval", n_dev), ("test", n_test)):
        for team in TEAMS:
            out[split] += [_row(ticket(RULE[team][i % 4], 512 + next(counter)), team) for i in range(n)]
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        text = self.server.teacher.reply(body)
        payload = json.dumps({
            "id": "chatcmpl-ticket", "object": "chat.completion", "created": 0, "model": body.get("model", "t"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    teacher: TicketTeacher


class TicketTeacher:
    """The teacher server: ``with TicketTeacher() as t: provider = t.provider`` (``mode``: ``targeted`` or ``uniform``)."""

    def __init__(self, mode: str = "targeted") -> None:
        if mode not in ("targeted", "uniform"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.written: list[tuple[str | None, str]] = []  # (label the request named, team written)
        self._lock = threading.Lock()
        self._count = itertools.count()
        self._per_team = {team: itertools.count() for team in TEAMS}
        self._server: _Server | None = None

    def reply(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or []
        text = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
        asked = re.search(r"label '([^']+)'", text)
        named = asked.group(1) if asked and asked.group(1) in RULE else None
        with self._lock:
            self.requests.append(body)
            k = next(self._count)
            team = named if self.mode == "targeted" and named else TEAMS[k % len(TEAMS)]
            j = next(self._per_team[team])
        # The j-th ticket of a team: its products in turn, each ticket new (the phrasing, ticket number and
        # context sentence follow j), so both modes spend their examples alike within a team.
        h = int(hashlib.sha256(f"{team}/{j}".encode()).hexdigest(), 16)
        product = RULE[team][j % 4]
        question = f"{ticket(product, 4096 + h % 100_000)} {_CONTEXT[(j + h) % len(_CONTEXT)]}"
        with self._lock:
            self.written.append((named, team))
        return json.dumps({"question": question, "answer": team})

    def __enter__(self) -> TicketTeacher:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.teacher = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def provider(self) -> str:
        """The teacher spec for curator (``compatible:<base url>:<model>``)."""
        assert self._server is not None, "start the server first (use it as a context manager)"
        return f"compatible:http://127.0.0.1:{self._server.server_address[1]}/v1:ticket-teacher"

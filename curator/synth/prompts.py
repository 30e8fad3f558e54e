"""Prompt templates of synthetic generation, and the tolerant parsers of the teacher's replies.

Templates are plain text files users can edit (``curator generate --export-templates DIR``, edit,
then ``--templates DIR``).  A template is a list of chat turns, each starting with a line
``### system``, ``### user`` or ``### assistant``; ``{{name}}`` placeholders are filled in
(``{{k}}``, ``{{system}}``, ``{{examples}}``, ``{{weakness}}``, ``{{question}}``, ``{{answer}}``).
A placeholder the code does not know is an error, so a typo does not reach the teacher.

Turns headed ``### example user`` / ``### example assistant`` form a block that is repeated once
per demonstration, with that demonstration's ``{{question}}`` and ``{{answer}}``: few-shot as
earlier turns of the chat, which even a 135M model follows.  ``{{examples}}`` instead puts all
demonstrations into one turn as ``Example 1 / Question: ... / Answer: ...`` blocks.

Bundled templates (``curator/synth/templates/``):

* ``seeds.txt``    -- self-instruct: k seed conversations as earlier turns, ONE new
  ``Question: ... / Answer: ...`` pair asked for;
* ``targeted.txt`` -- the same around one weakness (its description; the failing examples as turns);
* ``repair.txt``   -- the follow-up turn sent once when a reply cannot be parsed;
* ``judge.txt``    -- the optional LLM judge: a 1-10 score as JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from curator.errors import ConfigError, InputError

__all__ = [
    "TEMPLATE_NAMES",
    "Template",
    "export_templates",
    "format_demos",
    "load_template",
    "parse_pair",
    "parse_score",
]

TEMPLATE_NAMES = ("seeds", "targeted", "repair", "judge")
_TURN = re.compile(r"^###[ \t]*((?:example[ \t]+)?(?:system|user|assistant))[ \t]*$", re.MULTILINE)
_EXAMPLE_ROLES = ("example user", "example assistant")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Template:
    """A parsed template: its chat turns with placeholders, and the sha256 of its text."""

    name: str
    turns: tuple[tuple[str, str], ...]
    hash: str
    path: str

    @property
    def placeholders(self) -> set[str]:
        return {m.group(1) for _, text in self.turns for m in _PLACEHOLDER.finditer(text)}

    def render(self, pairs: list[tuple[str, str]] | None = None, **values: Any) -> list[dict[str, str]]:
        """The chat messages with every ``{{name}}`` replaced (values are inserted verbatim, once).

        ``pairs`` are the demonstrations the ``### example ...`` turns are repeated for.
        """
        for i, (role, text) in enumerate(self.turns):
            known = values.keys() | ({"question", "answer"} if role in _EXAMPLE_ROLES else set())
            missing = {m.group(1) for m in _PLACEHOLDER.finditer(text)} - known
            if missing:
                raise ConfigError(f"template {self.path}, turn {i + 1} ({role}): unknown placeholder(s) "
                                  + ", ".join("{{" + m + "}}" for m in sorted(missing))
                                  + f"; known here: {', '.join(sorted(known))}")

        def fill(text: str, vals: dict[str, Any]) -> str:
            return _PLACEHOLDER.sub(lambda m: str(vals[m.group(1)]), text)

        out: list[dict[str, str]] = []
        block = [(r.split()[-1], t) for r, t in self.turns if r in _EXAMPLE_ROLES]
        placed = False
        for role, text in self.turns:
            if role in _EXAMPLE_ROLES:
                if not placed:
                    placed = True
                    for q, a in pairs or []:
                        vals = {**values, "question": q, "answer": a}
                        out += [{"role": r, "content": fill(t, vals)} for r, t in block]
                continue
            out.append({"role": role, "content": fill(text, values)})
        return out


def _parse_template(name: str, text: str, path: str) -> Template:
    text = text.replace("\r\n", "\n")
    marks = list(_TURN.finditer(text))
    if not marks:
        raise ConfigError(f"template {path} has no '### user' line (turns start with ### system / ### user)")
    if text[: marks[0].start()].strip():
        raise ConfigError(f"template {path}: text before the first '### system' / '### user' line")
    turns = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[m.end() : end].strip("\n").rstrip()
        turns.append((" ".join(m.group(1).split()), body))
    if not any(role == "user" for role, _ in turns):
        raise ConfigError(f"template {path} has no user turn")
    ex = [i for i, (role, _) in enumerate(turns) if role in _EXAMPLE_ROLES]
    if ex and ex != list(range(ex[0], ex[-1] + 1)):
        raise ConfigError(f"template {path}: the '### example ...' turns must follow each other")
    return Template(name, tuple(turns), hashlib.sha256(text.encode("utf-8")).hexdigest(), path)


def load_template(name: str, templates_dir: str | Path | None = None) -> Template:
    """``templates_dir/NAME.txt`` when it exists, else the bundled template."""
    if name not in TEMPLATE_NAMES:
        raise ConfigError(f"unknown template {name!r} (known: {', '.join(TEMPLATE_NAMES)})")
    if templates_dir is not None:
        d = Path(templates_dir)
        if not d.is_dir():
            raise ConfigError(f"templates folder {d} not found")
        p = d / f"{name}.txt"
        if p.is_file():
            raw = p.read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise InputError("not UTF-8 text", p, raw.count(b"\n", 0, e.start) + 1) from None
            return _parse_template(name, text, str(p))
    text = resources.files("curator.synth").joinpath("templates", f"{name}.txt").read_text(encoding="utf-8")
    return _parse_template(name, text, f"curator/synth/templates/{name}.txt")


def export_templates(out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the bundled templates into ``out_dir`` for editing; existing files are kept unless ``overwrite``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TEMPLATE_NAMES:
        p = out / f"{name}.txt"
        if p.exists() and not overwrite:
            continue
        p.write_text(resources.files("curator.synth").joinpath("templates", f"{name}.txt").read_text(encoding="utf-8"),
                     encoding="utf-8")
        written.append(p)
    return written


def format_demos(pairs: list[tuple[str, str]], heading: str = "Example") -> str:
    """``Example 1`` / ``Question: ...`` / ``Answer: ...`` blocks, one per pair."""
    blocks = [f"{heading} {i}\nQuestion: {q}\nAnswer: {a}" for i, (q, a) in enumerate(pairs, 1)]
    return "\n\n".join(blocks)


# -- parsing replies ---------------------------------------------------------------------------------------------
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_Q_KEYS = ("question", "user", "prompt", "instruction", "input", "query")
_A_KEYS = ("answer", "assistant", "response", "output", "completion", "reply")
_LABELLED = re.compile(
    r"(?:^|\n)[\s*#>\-]*(?:new\s+)?(?:question|user|q)\s*\**\s*[:\-]\s*\**(?P<q>.+?)"
    r"\n[\s*#>\-]*(?:answer|assistant|a)\s*\**\s*[:\-]\s*\**(?P<a>.+)",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
# Where a labelled answer ends: the next "Question:" / "Example 2:" line a model adds after it.
_NEXT_PAIR = re.compile(r"\n[\s*#>\-]*(?:new\s+)?(?:question|example(?:\s+\d+)?)\s*\**\s*:", re.IGNORECASE)


def _objects(text: str) -> list[str]:
    """Candidate JSON object texts: each balanced ``{...}`` from the start of the text on."""
    out: list[str] = []
    start = text.find("{")
    while start != -1 and len(out) < 4:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            c = text[i]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    out.append(text[start : i + 1])
                    break
        else:
            out.append(text[start:] + "}" * max(depth, 0) if not in_str else text[start:] + '"' + "}" * max(depth, 1))
            break
        start = text.find("{", start + 1 + len(out[-1]) - 1)
    return out


def _load_json(s: str) -> Any:
    for attempt in (s, _TRAILING_COMMA.sub(r"\1", s)):
        try:
            return json.loads(attempt, strict=False)  # strict=False: raw newlines inside strings are fine
        except ValueError:
            continue
    return None


def _pick(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    low = {str(k).strip().lower(): v for k, v in d.items()}
    for k in keys:
        if k in low:
            return low[k]
    return None


def _as_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return "\n".join(x.strip() for x in v)
    return None


def parse_pair(text: str) -> tuple[str, str] | None:
    """``(question, answer)`` from a teacher reply, or None.

    Accepts a JSON object ``{"question": ..., "answer": ...}`` (also inside a code fence, with raw
    line breaks in strings, a trailing comma, or a missing closing brace; synonyms such as
    prompt/response), a list of such objects (the first is taken), or plain
    ``Question: ...`` / ``Answer: ...`` lines.
    """
    if not text or not text.strip():
        return None
    sources = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for src in sources:
        for obj_text in _objects(src):
            obj = _load_json(obj_text)
            if isinstance(obj, list) and obj and isinstance(obj[0], dict):
                obj = obj[0]
            if isinstance(obj, dict):
                q, a = _as_text(_pick(obj, _Q_KEYS)), _as_text(_pick(obj, _A_KEYS))
                if q and a:
                    return q, a
    m = _LABELLED.search(text)
    if m:
        q = m.group("q").strip().strip('"').strip()
        a = m.group("a").strip()
        a = _NEXT_PAIR.split(a, maxsplit=1)[0]
        a = a.strip().strip('"').strip()
        if q and a:
            return q, a
    return None


_SCORE = re.compile(r"score\W{0,6}(\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_score(text: str) -> tuple[float | None, str]:
    """``(score, reason)`` from a judge reply (``{"score": 8, "reason": "..."}`` or ``score: 8``)."""
    for obj_text in _objects(text or ""):
        obj = _load_json(obj_text)
        if isinstance(obj, dict):
            s = _pick(obj, ("score", "rating"))
            try:
                return float(s), str(_pick(obj, ("reason", "explanation")) or "")
            except (TypeError, ValueError):
                pass
    m = _SCORE.search(text or "")
    if m:
        return float(m.group(1)), ""
    stripped = (text or "").strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        return float(stripped), ""
    return None, ""

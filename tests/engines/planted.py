"""A chat data set with planted duplicates of every kind, for comparing engines decision by decision.

Base examples are distinct bags of real English words (taken from the bundled embedder's vocabulary, so
nothing is downloaded). On top of them, each planted copy names its source:

* exact: the same text in upper case with extra punctuation (equal after the fold);
* near: one word dropped or misspelt in the answer (word-bigram Jaccard about 0.9);
* paraphrase: the answer's two halves swapped and one word replaced (bigram Jaccard under 0.8, the same bag
  of words: a semantic duplicate);
* leak: a copy ingested into eval or test of a train example.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from curator.models import DEFAULT_EMBEDDER, resolve_embedder


def vocabulary() -> list[str]:
    """Whole English words of the bundled all-MiniLM-L6-v2 word-piece vocabulary."""
    vocab = (resolve_embedder(DEFAULT_EMBEDDER) / "vocab.txt").read_text(encoding="utf-8").split()
    return sorted({w for w in vocab if w.isascii() and w.isalpha() and len(w) >= 4})


def _chat(user: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def planted_rows(n: int = 12_000, seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train-and-auto rows, eval/test leak rows)``: about ``n`` rows in all; 10 % of them planted copies."""
    rng = random.Random(seed)
    words = vocabulary()
    n_base = int(n * 0.9)
    base: list[tuple[str, str]] = []
    for i in range(n_base):
        user = f"question {i}: " + " ".join(rng.sample(words, 8)) + "?"
        answer = " ".join(rng.sample(words, 22)) + "."
        base.append((user, answer))
    rows = [_chat(u, a) for u, a in base]
    leaks: list[dict[str, Any]] = []
    for j in range(n - n_base):
        src = rng.randrange(n_base)
        user, answer = base[src]
        kind = j % 4
        if kind == 0:  # exact after the fold
            rows.append(_chat(user.upper() + "!!", answer.replace(" ", "  ").upper()))
        elif kind == 1:  # near: one word dropped or misspelt
            ws = answer.split()
            k = rng.randrange(len(ws))
            if rng.random() < 0.5:
                del ws[k]
            else:
                ws[k] = ws[k][:-1] + "x"
            rows.append(_chat(user, " ".join(ws)))
        elif kind == 2:  # paraphrase: halves swapped, one word replaced
            ws = answer.rstrip(".").split()
            half = len(ws) // 2
            ws = ws[half:] + ws[:half]
            ws[rng.randrange(len(ws))] = rng.choice(words)
            rows.append(_chat(user, " ".join(ws) + "."))
        else:  # leak into eval/test
            leaks.append(_chat(user + " ", answer))
    return rows, leaks


def write_planted(folder: Path, n: int = 12_000, seed: int = 7) -> tuple[Path, Path]:
    """The rows as two JSONL files: ``(main, leaks)``."""
    rows, leaks = planted_rows(n, seed)
    main, leak = folder / "planted.jsonl", folder / "leaks.jsonl"
    main.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    leak.write_text("".join(json.dumps(r) + "\n" for r in leaks), encoding="utf-8")
    return main, leak


def copy_ws(src: Path, dst: Path) -> Any:
    """A Workspace on a copy of the folder ``src``."""
    from curator.workspace import Workspace

    shutil.copytree(src, dst)
    return Workspace(dst)


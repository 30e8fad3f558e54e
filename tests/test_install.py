"""The torch-free core install: a fresh venv with ``pip install -e REPO`` (no extra) runs the data side.

One module-scoped venv in a temp folder, installed core-only with the pins of ``constraints.txt``
(from PyPI and the machine's local indexes, so it needs them as ``make setup`` does). Then the real
``curator`` of that venv: ingest (chat JSONL + CSV) -> dedup exact and near -> leakage (exact, n-gram)
-> snapshot create -> export openai and parquet, plus validate / audit / stats --no-tokens; and the
commands that need an extra exit 1 with the exact ``pip install 'curator-loop[EXTRA]'`` line, no traceback.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Not importable in the core venv: each belongs to an extra.
HEAVY = ("torch", "transformers", "sentence_transformers", "datasets", "peft", "trl", "openai", "anthropic",
         "faiss", "sacrebleu", "rouge_score")
TOPICS = ("reset my password", "change my billing address", "cancel my subscription", "download my invoices",
          "add a team member", "enable two factor login")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    return env


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv holding curator-loop with no extra."""
    root = tmp_path_factory.mktemp("core-venv")
    # No pip inside it (ensurepip alone takes 15 s here): this process's pip installs into it.
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check", "-q",
           "--no-compile", "-c", str(ROOT / "constraints.txt"), "-e", str(ROOT)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return root / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "curator"), "--workspace", str(cwd / "ws"), *args], cwd=cwd,
                          capture_output=True, text=True, env=_env(), timeout=300)


def _ok(bin_dir: Path, *args: str, cwd: Path) -> str:
    r = _run(bin_dir, *args, cwd=cwd)
    assert r.returncode == 0, f"curator {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r.stdout


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    rows = []
    for t in TOPICS:
        answer = (f"To {t}, open the customer portal, go to Settings, choose the Account tab and follow the "
                  "steps shown there; the change takes effect at once and you get a confirmation email within "
                  "a few minutes.")
        rows.append([{"role": "user", "content": f"How do I {t} in the customer portal?"},
                     {"role": "assistant", "content": answer}])
    upper = [{"role": m["role"], "content": m["content"].upper()} for m in rows[0]]  # exact after folding
    near = [rows[1][0], {"role": "assistant", "content": rows[1][1]["content"].replace("at once", "immediately")}]
    chat = folder / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": r}) + "\n" for r in [*rows, upper, near]), encoding="utf-8")
    tickets = folder / "tickets.csv"
    with tickets.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer"])
        w.writerow(["What are your opening hours?", "Our support team answers every day from 8 am to 8 pm."])
        w.writerow(["Where is my parcel?", "Track it from the Orders page with the number in your shipping email."])
        w.writerow(["Can I pay by bank transfer?", "Yes: choose bank transfer at checkout and use the reference shown."])
    return chat, tickets


def test_core_venv_has_no_heavy_package(core: Path) -> None:
    code = ("import importlib.util, json; "
            f"print(json.dumps([m for m in {list(HEAVY)!r} if importlib.util.find_spec(m) is not None]))")
    r = subprocess.run([str(core / "python"), "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_core_cli_data_side(core: Path, tmp_path: Path) -> None:
    chat, tickets = _write_inputs(tmp_path)
    assert "Usage: curator" in _ok(core, "--help", cwd=tmp_path)

    report = json.loads(_ok(core, "ingest", str(chat), "--split", "train", "--json", cwd=tmp_path))
    assert (report["format"], report["added"], report["by_split"]) == ("chat", 8, {"train": 8})
    report = json.loads(_ok(core, "ingest", str(tickets), "--split", "eval", "--prompt-column", "question",
                            "--response-column", "answer", "--json", cwd=tmp_path))
    assert (report["format"], report["added"], report["by_split"]) == ("csv", 3, {"eval": 3})

    out = _ok(core, "validate", str(chat), cwd=tmp_path)  # the rules run; token counts need [train]
    assert "8 examples, no errors" in out

    exact = json.loads(_ok(core, "dedup", "--exact", "--json", cwd=tmp_path))
    assert exact["by_method"]["exact"]["excluded"] == 1
    near = json.loads(_ok(core, "dedup", "--near", "0.8", "--json", cwd=tmp_path))
    assert near["by_method"]["near"]["excluded"] == 1

    leaks = json.loads(_ok(core, "leakage", "--methods", "exact,ngram", "--json", cwd=tmp_path))
    assert leaks["methods"] == ["exact", "ngram"]
    assert (leaks["train"], leaks["compared"]["eval"], leaks["leaking_pairs"]) == (6, 3, 0)

    audit = json.loads(_ok(core, "audit", "--json", cwd=tmp_path))
    assert "pip install 'curator-loop[train]'" in audit["lengths"]["unit"]  # words, and why not tokens
    assert "by split: eval 3, train 6" in _ok(core, "stats", "--no-tokens", cwd=tmp_path)

    snap = json.loads(_ok(core, "snapshot", "create", "--json", cwd=tmp_path))
    assert snap["counts"]["by_split"] == {"train": 6, "eval": 3}
    assert snap["id"] in _ok(core, "snapshot", "list", cwd=tmp_path)
    _ok(core, "snapshot", "show", snap["id"], cwd=tmp_path)

    _ok(core, "snapshot", "export", snap["id"], "--format", "openai", "--out", str(tmp_path / "openai"),
        cwd=tmp_path)
    lines = (tmp_path / "openai" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and all(json.loads(line)["messages"][-1]["role"] == "assistant" for line in lines)
    assert len((tmp_path / "openai" / "eval.jsonl").read_text(encoding="utf-8").splitlines()) == 3

    _ok(core, "snapshot", "export", snap["id"], "--format", "parquet", "--out", str(tmp_path / "parquet"),
        cwd=tmp_path)
    assert pq.read_table(tmp_path / "parquet" / "train.parquet").num_rows == 6
    assert pq.read_table(tmp_path / "parquet" / "validation.parquet").num_rows == 3

    # Each command that needs an extra names it with the exact pip line, exit 1, no traceback.
    for args, extra in ((("dedup", "--semantic", "0.9"), "embed"),
                        (("leakage",), "embed"),  # the default methods include semantic
                        (("stats",), "train"),  # token percentiles
                        (("train", "--snapshot", snap["id"]), "train"),
                        (("snapshot", "export", snap["id"], "--format", "hf", "--out", str(tmp_path / "hf")), "hf"),
                        (("generate", "--teacher", "openai:gpt-4o-mini", "--n", "2"), "synth")):
        r = _run(core, *args, cwd=tmp_path)
        assert r.returncode == 1, f"curator {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert f"pip install 'curator-loop[{extra}]'" in r.stderr, r.stderr
        assert r.stderr.rstrip().splitlines()[-1].startswith("Error: "), r.stderr
        assert "Traceback" not in r.stderr, r.stderr

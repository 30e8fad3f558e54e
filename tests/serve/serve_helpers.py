"""Helpers for the serve tests: a workspace with two LoRA runs on the tiny model, and ``curator serve``
started for real as a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

#: Served name -> (run id, seed of its random LoRA weights).
RUNS = {"alpha": ("r-20260101-000001-a1a1", 1), "bravo": ("r-20260101-000002-b2b2", 2)}
KEY = "sk-test-curator-serve-key-0123456789"


def make_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (not zero) weights: each one makes the tiny model answer its own way."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    cfg = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, cfg).save_pretrained(str(out))
    return out


def build_workspace(root: Path, model_dir: Path) -> Path:
    """A workspace whose ``runs`` table holds two succeeded SFT runs with adapters (alpha, bravo)."""
    from curator.workspace import Workspace
    from trainer.runs import Run, insert_run

    ws = Workspace(root)
    for _, (rid, seed) in RUNS.items():
        make_adapter(model_dir, root / "runs" / rid / "adapter", seed)
        insert_run(ws, Run(rid, "sft", None, str(model_dir), adapter_path=f"runs/{rid}/adapter", status="succeeded"))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m curator --workspace WS serve ...`` on a free port; stderr goes to a file."""

    def __init__(self, ws: Path, args: list[str], *, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.ws = Path(ws)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.ws.parent / f"serve-{self.port}.log"
        self.cmd = [sys.executable, "-m", "curator", "--workspace", str(self.ws), "serve", "--port", str(self.port),
                    *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240.0) -> Server:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=self._log, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"curator serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"curator serve did not come up in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def copy_workspace(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def references(model_dir: Path, ws: Path, prompts: list[list[dict[str, Any]]], max_tokens: int) -> dict[str, list[str]]:
    """What each served name answers greedily, one prompt at a time, through ``curator.models.generate``."""
    from curator.models import generate, load_model

    model, tok = load_model(str(model_dir), adapters={rid: str(ws / "runs" / rid / "adapter")
                                                      for rid, _ in RUNS.values()})
    out = {}
    for name, (rid, _) in RUNS.items():
        model.set_adapter(rid)
        out[name] = [g.text for g in generate(model, tok, prompts, max_new_tokens=max_tokens, batch_size=1)]
    with model.disable_adapter():
        out["base"] = [g.text for g in generate(model, tok, prompts, max_new_tokens=max_tokens, batch_size=1)]
    return out

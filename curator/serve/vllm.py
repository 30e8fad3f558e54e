"""``curator serve --engine vllm``: vLLM generates, curator stands in front of it as the gateway.

On a CUDA machine with the ``[vllm]`` extra, curator starts ``vllm serve BASE --enable-lora
--lora-modules RUN_ID=ADAPTER_DIR ...`` on a free loopback port (:func:`vllm_command` builds the command
line) and forwards each chat completion to it through the ``openai`` SDK, always streaming, so that the
routes, traces, feedback, A/B routing and the API key stay curator's while continuous batching and paged
attention are vLLM's.  The base model is served to vLLM as ``base`` and each adapter under its run id.

On a machine without CUDA (or without vLLM) it stops at once with what to do instead.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, require
from curator.llm.continuous import SamplingParams
from curator.serve.app import ApiError, Completion, ServedModel

__all__ = ["GatewayBackend", "check_vllm", "lora_rank", "vllm_command"]


def check_vllm() -> None:
    """Raise a :class:`CuratorError` saying why vLLM cannot run here (no CUDA GPU, or not installed)."""
    import torch

    if not torch.cuda.is_available():
        raise CuratorError("--engine vllm needs a CUDA GPU and this machine has none: use --engine transformers "
                           "(the CPU batching engine; --engine auto picks it)")
    require("vllm", "vllm", "curator serve --engine vllm")


def lora_rank(adapters: Mapping[str, Path]) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that fits every adapter's ``r``."""
    from trainer.adapters import VLLM_MAX_LORA_RANKS

    r = 8
    for path in adapters.values():
        cfg = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
        r = max(r, int(cfg.get("r", 8)))
    return next((x for x in VLLM_MAX_LORA_RANKS if x >= r), r)


def vllm_command(base_model: str | Path, adapters: Mapping[str, Path], *, port: int, host: str = "127.0.0.1",
                 max_lora_rank: int | None = None, extra_args: Sequence[str] = (),
                 executable: str | None = None) -> list[str]:
    """The ``vllm serve`` command line for one base model and LoRA adapters (name -> folder)."""
    exe = executable or shutil.which("vllm") or str(Path(sys.executable).with_name("vllm"))
    cmd = [exe, "serve", str(base_model), "--served-model-name", "base", "--host", host, "--port", str(port)]
    if adapters:
        cmd += ["--enable-lora", "--lora-modules", *(f"{name}={path}" for name, path in adapters.items()),
                "--max-loras", str(len(adapters)),
                "--max-lora-rank", str(max_lora_rank or lora_rank(adapters))]
    return cmd + list(extra_args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _GatewayHandle:
    def __init__(self, stream: Any, prompt_hint: int) -> None:
        self.stream = stream
        self._cancelled = False
        self._prompt_hint = prompt_hint

    async def events(self) -> AsyncIterator[str | Completion]:
        parts: list[str] = []
        finish, usage = None, None
        try:
            async for chunk in self.stream:
                if self._cancelled:
                    break
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        parts.append(choice.delta.content)
                        yield choice.delta.content
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except Exception as e:  # the upstream broke the stream
            yield Completion("".join(parts), self._prompt_hint, len(parts), "error", {"error": str(e)})
            return
        finally:
            await self.stream.close()
        reason = "cancelled" if self._cancelled else (finish or "stop")
        yield Completion("".join(parts), usage.prompt_tokens if usage else self._prompt_hint,
                         usage.completion_tokens if usage else len(parts), reason, {"upstream": "vllm"})

    def cancel(self) -> None:
        self._cancelled = True


class GatewayBackend:
    """Forwards completions to an OpenAI-compatible upstream (the vLLM server curator started)."""

    name = "vllm"

    def __init__(self, upstream: str, process: subprocess.Popen[bytes] | None = None, *,
                 api_key: str = "unused") -> None:
        from openai import AsyncOpenAI

        self.upstream = upstream.rstrip("/")
        self.process = process
        self.client = AsyncOpenAI(base_url=self.upstream, api_key=api_key, max_retries=0)

    @classmethod
    def launch(cls, base_model: str, adapters: Mapping[str, Path], *, extra_args: Sequence[str] = (),
               log: Callable[[str], None] = lambda m: None, ready_timeout: float = 900.0) -> GatewayBackend:
        """Start ``vllm serve`` and wait until its ``/health`` answers (after checking each adapter against
        vLLM's LoRA constraints: :func:`trainer.adapters.check_vllm_lora`)."""
        from trainer.adapters import check_vllm_lora

        refused = [f"{name} ({path}): " + "; ".join(problems) for name, path in adapters.items()
                   if (problems := check_vllm_lora(path))]
        if refused:
            raise CuratorError("vLLM cannot serve these adapters: " + " | ".join(refused))
        check_vllm()
        from curator.models import resolve_model

        port = _free_port()
        cmd = vllm_command(resolve_model(base_model), adapters, port=port, extra_args=extra_args)
        log("starting vLLM: " + " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=sys.stderr, stderr=sys.stderr)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CuratorError(f"vLLM exited with code {proc.returncode} before it was ready (see its log above)")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        return cls(f"http://127.0.0.1:{port}/v1", proc)
            except OSError:
                time.sleep(1.0)
        proc.terminate()
        raise CuratorError(f"vLLM was not ready after {ready_timeout:g} s")

    async def start(self, messages: list[dict[str, Any]], served: ServedModel, params: SamplingParams,
                    deadline: float, stream: bool) -> _GatewayHandle:
        timeout = max(1.0, deadline - time.monotonic())
        kwargs: dict[str, Any] = {
            "model": served.adapter or "base", "messages": messages, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "stream": True,
            "stream_options": {"include_usage": True}, "timeout": timeout,
        }
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.stop:
            kwargs["stop"] = params.stop
        try:
            upstream = await self.client.chat.completions.create(**kwargs)
        except Exception as e:
            status = getattr(e, "status_code", None)
            if status == 400:
                raise ApiError(400, f"the engine rejected the request: {e}", code="invalid_value") from None
            raise ApiError(502, f"the engine did not answer: {e}", type="server_error", code="upstream_error") from None
        return _GatewayHandle(upstream, 0)

    def describe(self) -> dict[str, Any]:
        return {"upstream": self.upstream}

    async def close(self) -> None:
        await self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.process.wait, 30)
            except subprocess.TimeoutExpired:
                self.process.kill()

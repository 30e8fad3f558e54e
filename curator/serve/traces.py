"""The trace writer of ``curator serve``: one thread appending to one JSON Lines file, fed by a bounded queue.

The server never opens the workspace database after start-up (DuckDB locks the file exclusively;
see :mod:`curator.feedback.tracelog` for the log format and how ``curator traces`` /
``curator feedback ingest --traces`` import it).  Instead every completion and every feedback is a line
of ``WORKSPACE/traces/<UTC start>-<pid>.jsonl``:

* a completion is put on the queue before its response is sent; the writer writes and flushes it to
  the operating system (a killed server loses nothing the kernel has);
* a feedback is acknowledged only after the writer has written it **and fsynced the file**
  (:meth:`TraceWriter.write_durable`), so a ``kill -9`` right after the ``200`` loses nothing, and the trace
  it rates (queued earlier, written first) is on disk too;
* the queue is bounded (``maxsize``): when the disk cannot keep up, a request waits for room (in a
  thread, so the event loop keeps serving) instead of growing memory without limit; nothing is dropped.

Records are PII-scrubbed by the caller before they reach the writer (:mod:`curator.serve.app`).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = ["TraceWriter"]

_STOP = object()


class TraceWriter:
    """Appends records to ``directory/<UTC start>-<pid>.jsonl`` from one thread."""

    def __init__(self, directory: Path, *, maxsize: int = 4096, enabled: bool = True,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.enabled = enabled
        self.directory = Path(directory)
        self.path = self.directory / f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}-{os.getpid()}.jsonl"
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._on_error = on_error
        self.written = 0
        self.error: BaseException | None = None

    def start(self) -> TraceWriter:
        if not self.enabled or self._thread is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="curator-trace-writer", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, fsync, stop the thread."""
        if self._thread is None:
            return
        self._queue.put((_STOP, None))
        self._thread.join(timeout)
        self._thread = None

    # -- producers ------------------------------------------------------------------------------------------
    def put(self, record: dict[str, Any]) -> None:
        """Queue a record (blocks while the queue is full)."""
        if self.enabled:
            self._queue.put((record, None))

    def put_soon(self, record: dict[str, Any]) -> None:
        """Queue a record without blocking the caller (an event loop); when the queue is full, a short-lived
        thread waits for room, so the record is still written, in a slightly later place."""
        if not self.enabled:
            return
        try:
            self._queue.put_nowait((record, None))
        except queue.Full:
            threading.Thread(target=self._queue.put, args=((record, None),), daemon=True).start()

    async def write(self, record: dict[str, Any]) -> None:
        """Queue a record from the event loop; waits in a thread only while the queue is full."""
        if not self.enabled:
            return
        try:
            self._queue.put_nowait((record, None))
        except queue.Full:
            await asyncio.get_running_loop().run_in_executor(None, self._queue.put, (record, None))

    async def write_durable(self, record: dict[str, Any]) -> None:
        """Queue a record and return once it (and everything queued before it) is written and fsynced."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            def _set() -> None:
                if done.done():
                    return
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

            loop.call_soon_threadsafe(_set)

        try:
            self._queue.put_nowait((record, settle))
        except queue.Full:
            await loop.run_in_executor(None, self._queue.put, (record, settle))
        await done

    # -- the writer thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        f = self.path.open("ab")
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                while True:  # everything already waiting goes out in one write
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(rec is _STOP for rec, _ in batch)
                lines = [orjson.dumps(rec) + b"\n" for rec, _ in batch if rec is not _STOP]
                waiters = [cb for _, cb in batch if cb is not None]
                error: BaseException | None = None
                try:
                    if lines:
                        f.write(b"".join(lines))
                        f.flush()
                        self.written += len(lines)
                    if waiters or stop:
                        os.fsync(f.fileno())
                except OSError as e:  # a full disk: the requests waiting on it get an error, the server goes on
                    error = e
                    self.error = e
                    if self._on_error:
                        self._on_error(e)
                for cb in waiters:
                    cb(error)
                if stop:
                    return
        finally:
            f.close()

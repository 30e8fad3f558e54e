"""Engines for the quality steps: ``local`` (this process) or ``ray`` (a Ray instance or cluster).

:func:`open_engine` is what the ``--engine`` / ``--ray-address`` options of ``curator dedup``,
``curator leakage`` and ``curator audit`` call. Both engines run the same pure cores
(:mod:`curator.quality.dedup`, :mod:`curator.quality.leakage`, :mod:`curator.embed`); the
workspace is read and the decisions are written by the same code on the driver, so the results are
identical (``tests/engines``). See ``docs/scaling.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from curator.errors import CuratorError
from curator.quality.dedup.engine import LOCAL, Engine

__all__ = ["ENGINES", "open_engine"]

ENGINES = ("local", "ray")


@contextmanager
def open_engine(name: str = "local", *, address: str | None = None, num_cpus: int | None = None) -> Iterator[Engine]:
    """The engine ``name``, started for the block and stopped after it.

    ``ray``: connects to ``address`` (or ``RAY_ADDRESS``) when given, else starts a local Ray instance
    on this machine (``num_cpus`` of its cores, all by default) and shuts it down afterwards. A Ray
    already initialised in this process is used as it is and left running. Needs the ``[ray]`` extra.
    """
    if name == "local":
        if address:
            raise CuratorError("--ray-address needs --engine ray")
        yield LOCAL
        return
    if name != "ray":
        raise CuratorError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    from curator.engines.ray_engine import RayEngine

    engine = RayEngine(address=address, num_cpus=num_cpus)
    try:
        engine.start()
        yield engine
    finally:
        engine.close()

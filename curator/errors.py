"""The one error tree of curator.

Every error a user can cause derives from :class:`CuratorError`; the CLI prints
``Error: <message>`` and exits with code 1.  Anything else is a bug and keeps its traceback.

::

    CuratorError
    ├── InputError            a bad input file or row (carries path and line)
    ├── WorkspaceError        the workspace folder or database
    │   └── WorkspaceLockedError   another process holds the write lock
    ├── SnapshotError         unknown snapshot, leaking snapshot, export refused
    │   └── IntegrityError    a snapshot file no longer matches its manifest hash
    ├── ModelError            a model that cannot be found or loaded
    ├── MissingDependency     an optional dependency group is not installed (carries the pip line)
    ├── ConfigError           an invalid configuration (lists every problem)
    ├── ProviderError         a teacher / judge provider failed
    │   └── MissingKeyError   an API key variable is not set
    └── BudgetExceededError   the spend cap would be crossed
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "CuratorError",
    "InputError",
    "IntegrityError",
    "MissingDependency",
    "MissingKeyError",
    "ModelError",
    "ProviderError",
    "SnapshotError",
    "WorkspaceError",
    "WorkspaceLockedError",
    "require",
]


class CuratorError(Exception):
    """Root of every error a user can cause; the CLI turns it into ``Error: ...`` and exit 1."""


class InputError(CuratorError):
    """A bad input file or row. ``str()`` reads ``FILE:LINE: what is wrong``."""

    def __init__(
        self, message: str, path: str | Path | None = None, line: int | None = None, unit: str = "line"
    ) -> None:
        self.reason = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.unit = unit
        super().__init__(where(self.path, line, unit) + message)


def where(path: str | None, line: int | None, unit: str = "line") -> str:
    """``FILE:LINE: `` for text lines, ``FILE: record N: `` for JSON-array records and dataset rows."""
    if path is None:
        return ""
    if line is None:
        return f"{path}: "
    return f"{path}:{line}: " if unit == "line" else f"{path}: {unit} {line}: "


class WorkspaceError(CuratorError):
    """The workspace folder or its database cannot be used."""


class WorkspaceLockedError(WorkspaceError):
    """Another process is writing to the workspace."""


class SnapshotError(CuratorError):
    """A snapshot cannot be created, found or exported."""


class IntegrityError(SnapshotError):
    """A snapshot file was modified after it was written."""


class ModelError(CuratorError):
    """A model cannot be found, prepared or loaded."""


class MissingDependency(CuratorError):
    """An optional dependency is not installed: the message names the extra and the exact pip line.

    Raised by :func:`require`; a missing optional package never switches curator to another algorithm.
    """

    def __init__(self, module: str, extra: str, what: str) -> None:
        self.module = module
        self.extra = extra
        self.what = what
        super().__init__(
            f"{what} needs {module}, which is in the optional dependency group '{extra}': "
            f"pip install 'curator-loop[{extra}]'"
        )


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming the extra that provides it.

    ``faiss = require("faiss", "embed", "semantic dedup")``: ``what`` says what needs the module.
    Only a module that cannot be found (``ModuleNotFoundError``, the module itself or one it
    imports) becomes :class:`MissingDependency`; any other failure of an installed package propagates.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise MissingDependency(module, extra, what) from e


class ConfigError(CuratorError):
    """An invalid configuration; ``problems`` lists every one found."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = f"invalid config {source}" if source else "invalid config"
        if len(self.problems) == 1:
            super().__init__(f"{head}: {self.problems[0]}")
        else:
            super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class ProviderError(CuratorError):
    """A teacher or judge provider failed in a way retries cannot fix."""


class MissingKeyError(ProviderError):
    """An API key environment variable is not set."""

    def __init__(self, variable: str, provider: str) -> None:
        self.variable = variable
        super().__init__(f"{provider} needs an API key: set the {variable} environment variable")


class BudgetExceededError(CuratorError):
    """Starting more work would cross the spend cap."""

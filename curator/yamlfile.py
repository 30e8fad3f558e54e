"""Reading a YAML file a user gave (a training config, a price table, the keys file).

:func:`read_yaml` turns every way such a file can be broken into one :class:`InputError` line,
``FILE:LINE: what`` (or ``FILE: what``): not a readable file, not UTF-8, not valid YAML (with the line
of the problem), nested too deeply, or aliases that expand to an enormous value (the "billion laughs":
nine lines of anchors that would make 10^9 values as soon as anything walks or prints them) or refer
to themselves.  ``yaml.safe_load`` is used, so tags that construct Python objects are refused as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curator.errors import InputError

__all__ = ["MAX_VALUES", "read_yaml"]

#: The most values (scalars, lists and mappings, aliases counted every time they are used) a file may hold.
MAX_VALUES = 100_000


class _Cycle(Exception):
    pass


def read_yaml(path: str | Path, *, max_values: int = MAX_VALUES) -> Any:
    """The parsed content of ``path`` (None for an empty file); :class:`InputError` for any problem."""
    import yaml

    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory, not a YAML file", p)
    if p.exists() and not p.is_file():
        raise InputError("is not a regular file", p)  # a FIFO would block the read forever
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", p) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - raw.rfind(b"\n", 0, e.start)
        raise InputError(f"not UTF-8 text (byte {column} of the line)", p, line) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(str(x) for x in (e.context, e.problem) if x) or "syntax error"
        raise InputError(f"not valid YAML: {what}", p, mark.line + 1 if mark is not None else None) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (a NUL byte, a control character)
        line = text.count("\n", 0, e.position) + 1
        ch = f"U+{e.character:04X}" if isinstance(e.character, int) else repr(e.character)
        raise InputError(f"not valid YAML: character {ch} is not allowed ({e.reason})", p, line) from None
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {' '.join(str(e).split())}", p) from None
    except RecursionError:
        raise InputError("not valid YAML: nested too deeply", p) from None
    try:
        n = _size(data, max_values)
    except _Cycle:
        raise InputError("a YAML alias refers to a value that contains it (a recursive structure)", p) from None
    except RecursionError:
        raise InputError("nested too deeply", p) from None
    if n > max_values:
        raise InputError(f"holds more than {max_values:,} values once its aliases are expanded (an alias bomb?)", p)
    return data


def _size(obj: Any, limit: int) -> int:
    """Values in ``obj`` with shared parts counted every time they are used (capped just over ``limit``)."""
    memo: dict[int, int] = {}
    open_: set[int] = set()

    def size(o: Any) -> int:
        if isinstance(o, dict):
            children: Any = list(o.keys()) + list(o.values())
        elif isinstance(o, list):
            children = o
        else:
            return 1
        k = id(o)
        if k in memo:
            return memo[k]
        if k in open_:
            raise _Cycle
        open_.add(k)
        n = 1
        for c in children:
            n += size(c)
            if n > limit:
                break
        open_.discard(k)
        memo[k] = min(n, limit + 1)
        return memo[k]

    return size(obj)

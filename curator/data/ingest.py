"""Ingest files into the workspace: read, normalise, identify, assign splits, store.

One transaction per file: either every good row of the file is stored, or nothing is.  Without
``skip_invalid`` the first bad row rejects the whole file with ``FILE:LINE: what is wrong``; with
it, good rows are stored and every skipped line is reported with its reason.

Large JSON Lines files are converted by worker processes (one per core, up to four), each on its own
byte range, a chunk of rows at a time into a Parquet file; DuckDB reads those files for the in-file
repeat check and the insert, so no process holds the whole file's rows.  The result is the same as
the sequential path, row for row.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import itertools
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from curator.data.readers import SHAPES, BadRow, CsvMapping, Row, Source, read_rows
from curator.data.readers.shapes import RowError, encode_meta
from curator.data.readers.textfile import iter_raw_lines, loads_line
from curator.data.splits import DEFAULT_RATIOS, SPLITS, check_ratios, hash_split
from curator.errors import CuratorError, InputError
from curator.records import Example, group_key, messages_json, normalize_messages
from curator.records import example_id as _example_id
from curator.workspace import Workspace

if TYPE_CHECKING:
    import duckdb

__all__ = ["ORIGINS", "Columns", "IngestReport", "ingest_file", "store_examples"]

ORIGINS = ("import", "seed", "synthetic", "feedback")
#: JSON Lines files larger than this are converted by worker processes.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
#: Rows a conversion worker holds at a time (its memory is about one chunk: ~100 MB of short chats).
CHUNK_ROWS = 100_000
#: Files at least this large (seconds of work) get a start and an end line at INFO; smaller ones at DEBUG.
ANNOUNCE_MIN_BYTES = PARALLEL_MIN_BYTES

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    path: str
    format: str
    rows_read: int = 0
    examples: int = 0
    added: int = 0
    already_present: int = 0
    #: Examples of a file pinned to a split that were already stored in a less held-out split
    #: (e.g. a test item equal to a train item): moved to the pinned split, with a ``split_moved`` decision.
    moved_to_pinned_split: dict[str, int] = field(default_factory=dict)
    duplicates_in_file: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    by_split: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Columns:
    """Examples ready to store, column by column (what the database insert takes)."""

    id: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    task: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    source: list[str | None] = field(default_factory=list)
    parent_id: list[str | None] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)
    group_key: list[str] = field(default_factory=list)
    pin: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.id)

    def add(self, ex: Example, pin: str | None = None) -> None:
        self.append(ex.id, ex.messages, ex.task, ex.origin, ex.source, ex.parent_id, ex.meta, pin)

    def append(self, eid: str, messages: list[dict[str, Any]], task: str, origin: str, source: str | None,
               parent_id: str | None, meta: dict[str, Any], pin: str | None) -> None:
        """One example's columns from its parts (ingest calls this once per row, without an Example).

        A ``meta`` that cannot be stored raises :class:`RowError` before anything is appended.
        """
        meta_json = encode_meta(meta)
        self.id.append(eid)
        self.messages.append(messages_json(messages))
        self.task.append(task)
        self.origin.append(origin)
        self.source.append(source)
        self.parent_id.append(parent_id)
        self.meta.append(meta_json)
        self.group_key.append(group_key(messages))
        self.pin.append(pin)

    @classmethod
    def of(cls, examples: Iterable[Example], pins: Iterable[str | None] | None = None) -> Columns:
        cols = cls()
        pins_list = list(pins) if pins is not None else None
        for i, ex in enumerate(examples):
            cols.add(ex, pins_list[i] if pins_list else None)
        return cols

    def to_arrow(self, ratios: tuple[float, float, float]) -> pa.Table:
        # Generated and logged data never lands in the test split by hash: the test split is what
        # users bring (or seeds/imports), and rounds compare runs on it.  Feedback does not land in the
        # dev (eval) split either: its answer is usually the served model's own, and as a dev reference
        # it would score the champion against itself when a round decides on promotion.  Grouping still
        # applies: a new example whose prompt group is already in eval or test joins it.
        hashed = []
        for g, origin in zip(self.group_key, self.origin, strict=True):
            h = hash_split(g, ratios)
            if origin == "feedback" or (origin == "synthetic" and h == "test"):
                h = "train"
            hashed.append(h)
        # An explicit schema: a range of a large file may yield no rows, and its empty table must still concatenate.
        return pa.table(
            {
                "id": self.id, "messages": self.messages, "task": self.task, "origin": self.origin,
                "source": self.source, "parent_id": self.parent_id,
                "meta": self.meta, "group_key": self.group_key, "pin": self.pin,
                "hashed": hashed,
            },
            schema=_SCHEMA,
        )


_SCHEMA = pa.schema([(name, pa.string()) for name in (
    "id", "messages", "task", "origin", "source", "parent_id", "meta", "group_key", "pin", "hashed")])


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file():
                h.update(f.read_bytes())
        return h.hexdigest()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class _Ctx:
    """What converting a row needs besides the row."""

    task: str | None
    origin: str
    split: str | None
    source: str
    unit: str
    format: str


def _convert(rows: Iterable[Row | BadRow], ctx: _Ctx, stop_at_first_error: bool) -> tuple[Columns, list[BadRow], int]:
    """Rows -> columns (every row, repeats included), bad rows, rows read."""
    cols = Columns()
    bad: list[BadRow] = []
    n = 0
    src_meta = {"path": ctx.source, "format": ctx.format}
    for row in rows:
        n += 1
        if isinstance(row, BadRow):
            bad.append(row)
            if stop_at_first_error:
                break
            continue
        meta = row.meta
        row_task = meta.pop("task", None)
        if row_task is not None and not isinstance(row_task, str) and not ctx.task:
            bad.append(BadRow(row.line, f'"task" must be a string, got {type(row_task).__name__} '
                                        "(or pass --task to set one task for the file)"))
            if stop_at_first_error:
                break
            continue
        row_task = ctx.task or row_task or "default"
        meta["source"] = {**src_meta, ctx.unit: row.line}
        messages = normalize_messages(row.messages)
        try:
            cols.append(_example_id(messages, meta.get("tools")), messages, row_task, ctx.origin, ctx.source, None, meta,
                        ctx.split or _dataset_split(row.split))
        except RowError as e:
            bad.append(BadRow(row.line, str(e)))
            if stop_at_first_error:
                break
    return cols, bad, n


# -- parallel conversion of large JSON Lines files ------------------------------------------------------------
def _split_ranges(path: Path, parts: int) -> list[tuple[int, int, int]]:
    """(start byte, end byte, first line number) of ``parts`` ranges cut at line ends."""
    size = path.stat().st_size
    cuts = [0]
    chunk = 1 << 20
    with path.open("rb") as f:
        for k in range(1, parts):
            f.seek(max(size * k // parts, cuts[-1]))
            while True:  # to the next line end, a chunk at a time (a line may be gigabytes long)
                piece = f.readline(chunk)
                if not piece or piece.endswith(b"\n"):
                    break
            cuts.append(f.tell())
    cuts.append(size)
    ranges = []
    line = 1
    with path.open("rb") as f:
        for a, b in zip(cuts, cuts[1:], strict=False):
            ranges.append((a, b, line))
            f.seek(a)
            for pos in range(a, b, chunk):
                line += f.read(min(chunk, b - pos)).count(b"\n")
    return ranges


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the ingest process ends, even by ``kill -9``.

    Linux: the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``).  Elsewhere a daemon thread
    checks every half second whether the parent is still there.
    """
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        ok = False
    if ok:
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)
        return
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class _NoPandas(importlib.abc.MetaPathFinder):
    """Import hook of the ingest worker processes: ``import pandas`` fails at once."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not used by curator's ingest workers")


def _convert_range(args: tuple[str, int, int, int, str, _Ctx, bool, tuple[float, float, float], str]
                   ) -> tuple[str, int, list[BadRow], int]:
    """Worker: convert one byte range, a chunk of rows at a time, into a Parquet file.

    Returns (the file, rows written, bad rows, rows read).  The worker holds one chunk
    (:data:`CHUNK_ROWS`) at a time; with ``stop`` it ends at its first bad row, as :func:`_convert` does.
    """
    import pyarrow.parquet as pq

    path, start, end, first_line, shape, ctx, stop, ratios, out = args
    # pyarrow imports pandas on its first Python-to-Arrow conversion (0.25 s of CPU, measured) to ask
    # whether the input is a pandas object; it never is here, and this process ends after this range.
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _NoPandas())
    rows = iter(_range_rows(path, start, end, first_line, shape))
    bad: list[BadRow] = []
    n = written = 0
    # Snappy: the file is read once, by DuckDB on this machine; dictionaries only where values repeat.
    with pq.ParquetWriter(out, _SCHEMA, compression="snappy",
                          use_dictionary=["task", "origin", "source", "pin", "hashed"]) as writer:
        while True:
            cols, b, k = _convert(itertools.islice(rows, CHUNK_ROWS), ctx, stop)
            n += k
            bad.extend(b)
            if stop and b:  # the file is rejected: nothing of it is read
                break
            if len(cols):
                writer.write_table(cols.to_arrow(ratios))
                written += len(cols)
            if k < CHUNK_ROWS:
                break
    return out, written, bad, n


def _range_rows(path: str, start: int, end: int, first_line: int, shape: str) -> Iterator[Row | BadRow]:
    """The rows (and bad rows) of the lines in bytes ``start`` to ``end`` of a JSON Lines file."""
    mod = SHAPES[shape]
    with open(path, "rb") as f:
        f.seek(start)
        for n, raw in iter_raw_lines(f, first_line, end - start):
            if isinstance(raw, RowError):
                yield BadRow(n, str(raw))
                continue
            if raw.isspace():
                continue
            try:
                rec = loads_line(raw)
            except RowError as e:
                yield BadRow(n, str(e))
                continue
            yield from _shape_row(mod, n, rec)


def _shape_row(mod: Any, n: int, rec: Any) -> Iterable[Row | BadRow]:
    """The rows of one parsed record (or why it is bad)."""
    if not isinstance(rec, dict):
        yield BadRow(n, f"expected a JSON object, got {type(rec).__name__}")
        return
    try:
        converted = mod.convert(rec)
    except RowError as e:
        yield BadRow(n, str(e))
        return
    for messages, meta in converted:
        yield Row(n, messages, meta)


@contextlib.contextmanager
def _convert_parallel(path: Path, src: Source, ctx: _Ctx, ratios: tuple[float, float, float], stop: bool,
                      tmp_root: Path) -> Iterator[tuple[list[tuple[str, int]], list[BadRow], int]]:
    """Convert a large JSON Lines file in worker processes, one byte range each.

    Yields (the workers' Parquet files that hold rows, in file order, with their numbers of rows; bad
    rows; rows read).  The files stay until the block ends: they go to ``tmp_root/curator-ingest-PID-*``
    (the workspace's ``tmp`` folder), removed at the end; after a kill -9 the next writer of the workspace
    removes it (:func:`curator.workspace.sweep_stale_temp`).  The workers end with this process, even when
    it is killed.
    """
    parts = min(os.cpu_count() or 2, 4)
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"curator-ingest-{os.getpid()}-", dir=tmp_root) as tmp:
        jobs = [(str(path), a, b, line, src.format, ctx, stop, ratios, os.path.join(tmp, f"part{i:03d}.parquet"))
                for i, (a, b, line) in enumerate(_split_ranges(path, parts))]
        with mp.get_context("fork").Pool(parts, initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
            results = pool.map(_convert_range, jobs)
        files: list[tuple[str, int]] = []
        bad: list[BadRow] = []
        n = 0
        for out, written, b, k in results:
            if written:
                files.append((out, written))
            bad.extend(b)
            n += k
        yield files, bad, n


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Parts:
    """The workers' Parquet files, read by DuckDB as one sequence of rows in file order.

    ``pos`` numbers the rows of all the files in order (0 to ``rows - 1``).  DuckDB keeps the order of a
    scan through ``WHERE`` but not through a join, so the rows left out of the insert (later copies of an
    id, examples already stored) are left out by position: a bitmap of the rows to keep in a session
    variable (``get_bit``), one bit per row.
    """

    DROP, KEEP = "curator_ingest_drop", "curator_ingest_keep"

    def __init__(self, files: list[tuple[str, int]]) -> None:
        self.rows = sum(k for _, k in files)
        offsets = list(itertools.accumulate((k for _, k in files), initial=0))[:-1]
        names = ", ".join(_sql_str(f) for f, _ in files)
        start = "CASE file_index " + " ".join(f"WHEN {i} THEN {o}" for i, o in enumerate(offsets)) + " END"
        self.scan = (f"(SELECT *, file_row_number + {start} AS pos "
                     f"FROM read_parquet([{names}], file_row_number = true))")

    def bits(self, con: duckdb.DuckDBPyConnection, name: str, positions: str) -> None:
        """Session variable ``name``: the bitmap of the positions that the query ``positions`` returns."""
        con.execute(f"SET VARIABLE {name} = (SELECT bitstring_agg(pos, 0, {self.rows - 1}) FROM ({positions}))")

    def where(self, name: str, bit: int) -> str:
        return f"get_bit(getvariable('{name}'), pos::INTEGER) = {bit}"

    def drop_repeats(self, con: duckdb.DuckDBPyConnection) -> int:
        """Mark the later copies of each example id (bitmap ``DROP``); returns how many there are.

        What :func:`_first_of_each_id` does to an Arrow table, on the ids only.  Every row of a JSON Lines
        file has the file's pin (a dataset split comes only with Hugging Face datasets, converted in this
        process), so the first row of an id already has the most held-out pin of its repeats.
        """
        # The temporary tables are made inside the caller's transaction: a rollback removes them too.
        con.execute(f"CREATE OR REPLACE TEMP TABLE _repeated AS SELECT id FROM {self.scan} GROUP BY id "
                    "HAVING count(*) > 1")
        if not con.execute("SELECT count(*) FROM _repeated").fetchall()[0][0]:
            con.execute("DROP TABLE _repeated")
            return 0
        later = f"""SELECT pos, row_number() OVER (PARTITION BY id ORDER BY pos) AS nth,
                           count(DISTINCT coalesce(pin, '')) OVER (PARTITION BY id) AS pins
                    FROM {self.scan} p SEMI JOIN _repeated r ON r.id = p.id"""
        con.execute(f"CREATE OR REPLACE TEMP TABLE _later AS SELECT pos, pins FROM ({later}) WHERE nth > 1")
        dropped, pins = con.execute("SELECT count(*), max(pins) FROM _later").fetchall()[0]
        if pins > 1:  # cannot happen (see above): the kept row's pin would have to be raised
            raise AssertionError("repeated rows of one JSON Lines file with different pins")
        self.bits(con, self.DROP, "SELECT pos FROM _later")
        con.execute("DROP TABLE _later")
        con.execute("DROP TABLE _repeated")
        return int(dropped)

    def store(self, con: duckdb.DuckDBPyConnection, dropped: int) -> tuple[int, dict[str, int]]:
        """:func:`store_examples` of the rows (less the ``dropped`` later copies), in file order.

        Nothing of the rows is held here: the new rows are a ``WHERE`` on the files (bitmap ``DROP``, or
        ``KEEP`` when the workspace already holds examples), read once for the keys and once for the insert.
        """
        rows = f"SELECT id, group_key, pin, hashed, pos FROM {self.scan}"
        where = self.where(self.DROP, 0) if dropped else None
        fresh = not con.execute("SELECT count(*) FROM (SELECT 1 FROM examples LIMIT 1)").fetchall()[0][0]
        if fresh:
            added = self.rows - dropped
        else:  # the rows not stored yet, by position (an anti join does not keep the order of the files)
            first = rows + (f" WHERE {where}" if where else "")
            self.bits(con, self.KEEP, f"SELECT k.pos FROM ({first}) k ANTI JOIN examples e ON e.id = k.id")
            added = con.execute(f"SELECT coalesce(bit_count(getvariable('{self.KEEP}')), 0)").fetchall()[0][0]
            where = self.where(self.KEEP, 1)
        if not added:
            return 0, {}
        where = f" WHERE {where}" if where and added < self.rows else ""
        columns = "id, messages, task, origin, source, parent_id, meta, group_key"
        con.execute(f"INSERT INTO examples ({columns}) SELECT {columns} FROM {self.scan}{where}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW _new AS {rows}{where}")
        if fresh:  # no stored group to join: the split is the pin, else the hash (what _assign_splits gives)
            split = "coalesce(pin, hashed)"
            con.execute(f"INSERT INTO splits (example_id, split, pinned) SELECT id, {split}, pin IS NOT NULL FROM _new")
            counts = con.execute(f"SELECT {split}, count(*) FROM _new GROUP BY 1").fetchall()
            result = int(added), {s: int(c) for s, c in counts}
        else:
            result = _assign_splits(con, "n.pos")
        con.execute("DROP VIEW _new")
        return result

    def ids(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
        return con.sql(f"SELECT id FROM {self.scan}")

    @classmethod
    def forget(cls, con: duckdb.DuckDBPyConnection) -> None:
        """Remove the bitmaps, after the transaction (session variables are no part of one)."""
        import duckdb

        with contextlib.suppress(duckdb.Error):  # never in place of the error that ended the transaction
            for name in (cls.DROP, cls.KEEP):
                con.execute(f"RESET VARIABLE {name}")


def _first_of_each_id(table: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first row of each example id; returns (table, repeats dropped).

    A kept row takes the most held-out pin of its repeats (a Hugging Face ``test`` row equal to a
    ``train`` row of the same dataset is a test example).
    """
    seen: dict[str, int] = {}
    keep: list[int] = []
    repeats: list[tuple[int, int]] = []
    for i, eid in enumerate(table.column("id").to_pylist()):
        k = seen.get(eid)
        if k is None:
            seen[eid] = len(keep)
            keep.append(i)
        else:
            repeats.append((k, i))
    dropped = table.num_rows - len(keep)
    if not dropped:
        return table, 0
    out = table.take(pa.array(keep, pa.int64()))
    pins = table.column("pin").to_pylist()
    kept = [pins[i] for i in keep]
    changed = False
    for k, i in repeats:
        if _RANK.get(pins[i], 0) > _RANK.get(kept[k], 0):
            kept[k], changed = pins[i], True
    if changed:
        out = out.set_column(out.schema.get_field_index("pin"), "pin", pa.array(kept, pa.string()))
    return out, dropped


_RANK = {"test": 3, "eval": 2, "train": 1}


def _ratios(ws: Workspace) -> tuple[float, float, float]:
    r = ws.get_setting("split_ratios", list(DEFAULT_RATIOS))
    return (float(r[0]), float(r[1]), float(r[2]))


def _parallel_ok(path: Path, src: Source) -> bool:
    return (src.unit == "line" and src.format in SHAPES and path.is_file()
            and path.stat().st_size >= PARALLEL_MIN_BYTES and (os.cpu_count() or 1) > 1)


def ingest_file(
    ws: Workspace,
    path: str | Path,
    *,
    fmt: str = "auto",
    task: str | None = None,
    split: str | None = None,
    origin: str = "import",
    skip_invalid: bool = False,
    csv_mapping: CsvMapping | None = None,
    hf_split: str | None = None,
    ratios: tuple[float, float, float] | None = None,
) -> IngestReport:
    """Read one file and store its examples (all or nothing).

    ``ratios`` (train, eval, test fractions, see :func:`curator.data.splits.parse_ratios`) become the
    workspace's split ratios, saved in the same transaction as the examples: a failed ingest saves nothing.
    """
    if split is not None and split not in SPLITS:
        raise CuratorError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    if origin not in ORIGINS:
        raise CuratorError(f"unknown origin {origin!r} (choose from {', '.join(ORIGINS)})")
    path = Path(path)
    t0 = time.monotonic()
    size = path.stat().st_size if path.is_file() else 0
    level = logging.INFO if size >= ANNOUNCE_MIN_BYTES else logging.DEBUG
    log.log(level, "[ingest] %s (%.1f MB) started", path, size / 1e6)
    src, rows = read_rows(path, fmt, csv_mapping, hf_split)  # a missing or unreadable file fails before the lock
    # The workspace is held from here to the commit: a second ingest waits (CURATOR_LOCK_WAIT) or fails at
    # once, before it has converted anything, rather than after its conversion work.
    with ws.connect():
        report = _ingest(ws, path, src, rows, task=task, split=split, origin=origin, skip_invalid=skip_invalid,
                         ratios=ratios)
    log.log(level, "[ingest] %s done in %.1f s: %d rows read, %d added", path, time.monotonic() - t0,
            report.rows_read, report.added)
    return report


def _ingest(ws: Workspace, path: Path, src: Source, rows: Iterable[Row | BadRow], *, task: str | None,
            split: str | None, origin: str, skip_invalid: bool, ratios: tuple[float, float, float] | None
            ) -> IngestReport:
    """Convert and store one opened file (the caller holds the workspace connection)."""
    source = str(path.resolve())
    ctx = _Ctx(task, origin, split, source, src.unit, src.format)
    report = IngestReport(path=str(path), format=src.format)
    if ratios is None:
        ratios = _ratios(ws)
    else:
        ratios = check_ratios(ratios)
    with contextlib.ExitStack() as scratch:  # the workers' files, until the examples are stored
        with ThreadPoolExecutor(1) as hasher:
            # The file's sha256 (for the ingests table) is computed meanwhile: hashlib releases the GIL.
            digest = hasher.submit(_file_sha256, path)
            files: list[tuple[str, int]] | None = None
            if _parallel_ok(path, src):
                files, bad, n = scratch.enter_context(
                    _convert_parallel(path, src, ctx, ratios, not skip_invalid, ws.tmp_dir))
            else:
                cols, bad, n = _convert(rows, ctx, not skip_invalid)
                table = cols.to_arrow(ratios)
                del cols
            sha = digest.result()
        report.rows_read = n
        if bad and not skip_invalid:
            first = min(bad, key=lambda r: r.line)
            raise src.error(first.line, first.reason)
        report.skipped = [{"line": b.line, "unit": src.unit, "reason": b.reason}
                          for b in sorted(bad, key=lambda r: r.line)]
        with ws.transaction() as con:
            con.execute("INSERT OR REPLACE INTO settings VALUES ('split_ratios', ?)",
                        [orjson.dumps(list(ratios)).decode()])
            ids: pa.Table | duckdb.DuckDBPyRelation
            if files is None:
                table, report.duplicates_in_file = _first_of_each_id(table)
                report.examples = table.num_rows
                if not table.num_rows and not bad:
                    raise InputError("no examples found", path)
                added, by_split = store_examples(con, ws, table)
                ids = table.select(["id"])
            elif files:
                parts = _Parts(files)
                scratch.callback(parts.forget, con)  # after the commit or rollback
                report.duplicates_in_file = parts.drop_repeats(con)
                report.examples = parts.rows - report.duplicates_in_file
                added, by_split = parts.store(con, report.duplicates_in_file)
                ids = parts.ids(con)
            else:  # no row of the file converted: every line was skipped
                if not bad:
                    raise InputError("no examples found", path)
                added, by_split = 0, {}
                ids = pa.table({"id": pa.array([], pa.string())})
            if split in ("eval", "test"):
                report.moved_to_pinned_split = _move_to_pinned(con, ids, split, source)
            elif split is None and src.format.startswith("hf/") and files is None:
                # Rows of a dataset's test / validation split take their already-stored copies out of train.
                pins = table.column("pin").to_pylist()
                for held in ("eval", "test"):
                    held_ids = [eid for eid, p in zip(table.column("id").to_pylist(), pins, strict=True) if p == held]
                    if held_ids:
                        moved = _move_to_pinned(con, pa.table({"id": pa.array(held_ids, pa.string())}), held, source)
                        for old, k in moved.items():
                            report.moved_to_pinned_split[old] = report.moved_to_pinned_split.get(old, 0) + k
            con.execute(
                "INSERT INTO ingests (path, sha256, format, rows_read, rows_added, rows_skipped) VALUES (?,?,?,?,?,?)",
                [source, sha, src.format, report.rows_read, added, len(report.skipped)],
            )
    report.added = added
    report.already_present = report.examples - added
    report.by_split = by_split
    return report


def _move_to_pinned(con: duckdb.DuckDBPyConnection, ids: pa.Table | duckdb.DuckDBPyRelation, split: str,
                    source: str) -> dict[str, int]:
    """Move already-stored examples of a file pinned to ``split`` there when they sit in a less held-out split.

    ``ids``: the file's example ids (an Arrow table or a DuckDB relation with an ``id`` column; repeats allowed).
    Held-out sets only grow: a test file that repeats a train example takes it out of train (a snapshot
    taken before keeps its own frozen copy).  Returns counts by the split they came from.
    """
    rank = "CASE {col} WHEN 'test' THEN 3 WHEN 'eval' THEN 2 ELSE 1 END"
    con.register("_pinned", ids)
    try:
        rows = con.execute(
            f"""SELECT s.example_id, s.split FROM splits s SEMI JOIN _pinned p ON p.id = s.example_id
                WHERE {rank.format(col='s.split')} < {rank.format(col='?')}""",
            [split],
        ).fetchall()
    finally:
        con.unregister("_pinned")
    moved: dict[str, int] = {}
    for eid, old in rows:
        con.execute("UPDATE splits SET split = ?, pinned = true WHERE example_id = ?", [split, eid])
        con.execute(
            "INSERT INTO decisions (example_id, kind, reason) VALUES (?, 'split_moved', ?)",
            [eid, f"{old} -> {split}: pinned to {split} by {source}"],
        )
        moved[old] = moved.get(old, 0) + 1
    return moved


def _dataset_split(name: str | None) -> str | None:
    """Map a Hugging Face DatasetDict split name to a curator split (None: assign as usual)."""
    if name is None:
        return None
    return {"train": "train", "validation": "eval", "valid": "eval", "eval": "eval", "dev": "eval", "test": "test"}.get(
        name
    )


def store_examples(con: duckdb.DuckDBPyConnection, ws: Workspace, examples: Columns | list[Example] | pa.Table) -> tuple[int, dict[str, int]]:
    """Insert the examples not yet stored and give each new one its split.  Call inside a transaction.

    ``examples``: examples, their :class:`Columns`, or the Arrow table ``Columns.to_arrow`` makes
    (unique ids, ``hashed`` split already computed).

    Returns (number added, counts of the added by split).
    """
    if isinstance(examples, pa.Table):
        incoming = examples
    else:
        cols = examples if isinstance(examples, Columns) else Columns.of(examples)
        incoming = cols.to_arrow(_ratios(ws))
    if not incoming.num_rows:
        return 0, {}
    con.register("_incoming", incoming)
    try:
        # Only the keys of the new rows are copied; the texts go straight from the Arrow table.
        con.execute("CREATE OR REPLACE TEMP TABLE _new AS SELECT i.id, i.group_key, i.pin, i.hashed "
                    "FROM _incoming i ANTI JOIN examples e ON e.id = i.id")
        con.execute(
            """
            INSERT INTO examples (id, messages, task, origin, source, parent_id, meta, group_key)
            SELECT i.id, i.messages, i.task, i.origin, i.source, i.parent_id, i.meta, i.group_key
            FROM _incoming i SEMI JOIN _new n ON n.id = i.id
            """
        )
        added = _assign_splits(con)
        con.execute("DROP TABLE _new")
        return added
    finally:
        con.unregister("_incoming")


def _assign_splits(con: duckdb.DuckDBPyConnection, order: str = "n.rowid") -> tuple[int, dict[str, int]]:
    """Give the new examples (temporary table or view ``_new``: id, group_key, pin, hashed) their splits.

    ``order``: the order of ``_new`` (the splits rows go in in that order).  Returns (number added, counts
    of the added by split).
    """
    # Split: the pin, else the split the group already has (test beats eval beats train), else the hash.
    # ORDER BY: the rows go in in the order of ``_new``, which a join does not keep.
    con.execute(
        f"""
        INSERT INTO splits (example_id, split, pinned)
        SELECT n.id, coalesce(n.pin, g.split, n.hashed), n.pin IS NOT NULL
        FROM _new n
        LEFT JOIN (
            SELECT e.group_key,
                   arg_max(s.split, CASE s.split WHEN 'test' THEN 3 WHEN 'eval' THEN 2 ELSE 1 END) AS split
            FROM examples e JOIN splits s ON s.example_id = e.id
            WHERE e.group_key IN (SELECT group_key FROM _new)
            GROUP BY e.group_key
        ) g ON g.group_key = n.group_key
        ORDER BY {order}
        """
    )
    rows = con.execute(
        "SELECT s.split, count(*) FROM _new n JOIN splits s ON s.example_id = n.id GROUP BY 1"
    ).fetchall()
    added = con.execute("SELECT count(*) FROM _new").fetchall()[0][0]
    return int(added), {s: int(c) for s, c in rows}

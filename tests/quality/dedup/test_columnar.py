"""The compact pool and the low-memory cores give the answers of the plain ones, row for row.

* pool columns read like the lists they replace;
* ``load_pool`` has the rows, order (``created_at`` then id, as DuckDB sorts) and values of the SQL it replaces;
* exact keys as digests, grouped by a sort, equal ``key_of`` and the dict grouping;
* near-duplicates from band-by-band grouping and re-shingled candidate rows equal ``pairs_from_keys`` and
  ``verify_pairs_csr`` over the whole shard, also with tiny blocks and buckets past the chaining cap.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import orjson
import pyarrow as pa
import pytest

from curator.embed import example_text
from curator.quality.dedup import near
from curator.quality.dedup import run as run_mod
from curator.quality.dedup.columns import (
    Chain,
    CodeColumn,
    FixedStrColumn,
    HexColumn,
    StrColumn,
    take_list,
    text_blocks,
)
from curator.quality.dedup.exact import exact_digests, exact_keys, exact_pairs, first_of, key_of
from curator.quality.dedup.minhash import pairs_from_keys, sorted_unique, verify_pairs_csr
from curator.quality.dedup.near import (
    candidate_codes,
    near_bands,
    near_keys,
    near_pairs,
    near_shard,
)
from curator.quality.dedup.run import Pool, dedup, keeper_rank, load_pool

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega Straße café naïve ＦＵＬＬ don't top-up").split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    base = [" ".join(WORDS[int(j)] for j in rng.integers(len(WORDS), size=int(rng.integers(0, 25))))
            for _ in range(max(1, n // 3))]
    out = []
    for i in range(n):
        t = base[int(rng.integers(len(base)))]
        r = i % 7
        if r == 1:
            t = t.upper() + "!!"
        elif r == 2:
            t = t + " omega"
        elif r == 3:
            t = "  " + t.replace(" ", "\t  ") + " \n"
        elif r == 4:
            t = t + "\x00tail"
        out.append(t)
    out += ["", " ", "!!!", "a\x00b", "it’s", "its", "ＦＵＬＬ width", "full width"] * 3
    out += ["boiler plate prompt shared by many rows"] * 150  # one bucket past the chaining cap
    return out


# -- columns -------------------------------------------------------------------------------------------------------
def test_columns_read_like_lists() -> None:
    words = ["a", "", "café", "ＦＵＬＬ", "x" * 300, "z"]
    order = np.array([4, 0, 5, 1, 3, 2])
    want = [words[i] for i in order]
    s = StrColumn(pa.array(words), order)
    f = FixedStrColumn(np.array([w.encode() for w in words], dtype="S300"), order)
    c = CodeColumn(np.array([1, 0, 1, 1, 0, 2]), ["x", "y", "z"])
    hexes = ["00ff", "a0b1", "0000", "ffff", "1234", "c0de"]
    h = HexColumn(np.array([bytes.fromhex(x) for x in hexes], dtype="S2").view(np.uint8).reshape(-1, 2), order)
    chain = Chain(StrColumn.from_list(words[:2]), words[2:])
    for col, ref in ((s, want), (f, want), (c, ["y", "x", "y", "y", "x", "z"]), (chain, words),
                     (h, [hexes[i] for i in order])):
        assert len(col) == len(ref) and list(col) == ref and col[:] == ref
        assert [col[i] for i in range(-len(ref), len(ref))] == ref + ref
        assert col[1:4] == ref[1:4] and col[::2] == ref[::2] and col[4:1] == []
        assert take_list(col, [3, 0, 3]) == [ref[3], ref[0], ref[3]] and take_list(col, []) == []
        with pytest.raises(IndexError):
            col[len(ref)]
    assert list(s.take([5, 0]).take([1])) == [want[0]] and list(f.take([2, 2])) == [want[2], want[2]]
    assert s.arrow(1, 3).to_pylist() == want[1:3] and StrColumn(pa.array(words)).arrow(2, 4).to_pylist() == words[2:4]
    assert list(c.take([5, 0])) == ["z", "y"] and c.lookup({"y": 7}, 3).tolist() == [7, 3, 7, 7, 3, 3]
    assert [lo for lo, _ in text_blocks(s, 4)] == [0, 4] and sum((b for _, b in text_blocks(s, 4)), []) == want


# -- exact ---------------------------------------------------------------------------------------------------------
def test_exact_digests_are_key_of_and_group_like_a_dict() -> None:
    texts = _texts(3_000)
    digests = exact_digests(texts)
    assert [bytes(d).hex() for d in digests] == [key_of(t) for t in texts] == exact_keys(StrColumn.from_list(texts))
    assert bytes(exact_digests(["hello world"])[0]) == hashlib.blake2b(b"hello world", digest_size=16).digest()
    by_dict = exact_pairs(keys=[key_of(t) for t in texts])
    for got in (exact_pairs(texts), exact_pairs(digests=digests)):
        assert np.array_equal(got[0], by_dict[0]) and np.array_equal(got[1], by_dict[1]) and len(got[0]) > 500
    # a 64-bit tie with a different second half still keeps the two digests apart
    tied = np.zeros((4, 16), dtype=np.uint8)
    tied[1, 12] = tied[3, 12] = 1
    assert exact_pairs(digests=tied)[0].tolist() == [[0, 2], [1, 3]]
    assert exact_pairs([])[0].shape == (0, 2)
    stored = exact_digests(["b", "A", "a", "c"])
    assert first_of(stored, exact_digests(["a!", "z", "C", "b"])).tolist() == [1, -1, 3, 0]
    assert first_of(stored[:0], stored).tolist() == [-1] * 4


# -- near ----------------------------------------------------------------------------------------------------------
def _reference_near(texts: list[str], threshold: float, involving: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    bands, rows = near_bands(threshold)
    whole = near_shard(texts, bands=bands, rows=rows)
    cands = pairs_from_keys(whole.keys)
    if involving is not None:
        cands = cands[cands[:, 1] >= involving]
    return verify_pairs_csr(whole.flat, whole.offsets, cands, threshold)


@pytest.mark.parametrize("small", [False, True])
def test_near_pairs_in_blocks_equal_the_whole_shard(monkeypatch: pytest.MonkeyPatch, small: bool) -> None:
    texts = _texts(4_000, seed=1)
    if small:  # many key blocks, shingle blocks and verification blocks
        monkeypatch.setattr(near, "KEY_ROWS", 97)
        monkeypatch.setattr(near, "VERIFY_PAIRS", 1_000)
    bands, rows = near_bands(0.8)
    keys = near_shard(texts, bands=bands, rows=rows).keys
    assert np.array_equal(near_keys(StrColumn.from_list(texts), bands=bands, rows=rows), keys)
    ref = pairs_from_keys(keys)
    codes = candidate_codes([np.ascontiguousarray(keys[:, c]) for c in range(bands)])
    assert np.array_equal(codes, ref[:, 0] * len(texts) + ref[:, 1])
    for threshold, involving in ((0.8, None), (0.5, None), (0.8, 3_000)):
        want = _reference_near(texts, threshold, involving)
        for seq in (texts, StrColumn.from_list(texts), StrColumn(pa.array(texts)).take(np.arange(len(texts)))):
            got = near_pairs(seq, threshold, involving=involving)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and len(want[0]) > 100


def test_sorted_unique() -> None:
    a = np.random.default_rng(0).integers(0, 50, 1_000)
    assert np.array_equal(sorted_unique(a), np.unique(a)) and sorted_unique(a[:1]).tolist() == [int(a[0])]
    assert sorted_unique(a[:0]).size == 0


# -- load_pool -----------------------------------------------------------------------------------------------------
def _insert(ws, rows: list[tuple[str, str, str, dt.datetime, str | None, bool, str]]) -> None:
    """(id, text, origin, created_at, split or None, pinned, status) rows, straight into the tables."""
    with ws.transaction() as con:
        for eid, text, origin, created, split, pinned, status in rows:
            msgs = orjson.dumps([{"role": "system", "content": "sys"}, {"role": "user", "content": text},
                                 {"role": "assistant", "content": "ok " + text[:3]}]).decode()
            con.execute("INSERT INTO examples (id, messages, task, origin, group_key, created_at, status) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", [eid, msgs, "t" + origin[:1], origin, eid, created, status])
            if split is not None:
                con.execute("INSERT INTO splits (example_id, split, pinned) VALUES (?, ?, ?)", [eid, split, pinned])


def _old_pool(con, on: str, include_system: bool, splits=None) -> dict[str, list]:
    """What load_pool returned before it was columnar: the rows of one SQL query, ordered there."""
    where = ""
    if splits is not None:
        where = " AND coalesce(s.split, 'train') IN (" + ", ".join(f"'{s}'" for s in splits) + ")"
    rows = con.execute(
        f"""SELECT e.id, e.messages, e.origin, e.created_at, coalesce(s.split, 'train'), coalesce(s.pinned, false),
                   e.task
            FROM examples e LEFT JOIN splits s ON s.example_id = e.id
            WHERE e.status = 'active'{where} ORDER BY e.created_at, e.id""").fetchall()
    return {"ids": [r[0] for r in rows], "texts": [example_text(orjson.loads(r[1]), on, include_system) for r in rows],
            "origin": [r[2] for r in rows], "created": [r[3] for r in rows], "split": [r[4] for r in rows],
            "pinned": [bool(r[5]) for r in rows], "task": [r[6] for r in rows]}


def _as_lists(pool: Pool) -> dict[str, list]:
    return {"ids": list(pool.ids), "texts": list(pool.texts), "origin": list(pool.origin),
            "created": [np.datetime64(c, "us").item() for c in pool.created], "split": list(pool.split),
            "pinned": [bool(p) for p in pool.pinned], "task": list(pool.task)}


@pytest.mark.parametrize("long_ids", [False, True])
def test_load_pool_has_the_rows_and_order_of_the_sql(ws, long_ids: bool) -> None:  # noqa: ANN001
    t0 = dt.datetime(2024, 5, 1, 12, 0, 0)
    ids = ["b", "a", "ab", "a b", "B", "é", "e", "z" * 20, "0", "~", "Ab", "aé", "a\u00a0", "日本", "ab\x01"]
    if long_ids:
        ids.append("L" * 400)  # longer than a fixed-width id column takes: the ids stay an Arrow array
    origins = ["seed", "import", "feedback", "synthetic", "other"]
    splits = ["train", "eval", "test", None]
    rows = []
    for i, eid in enumerate(ids):
        created = t0 + dt.timedelta(microseconds=(i % 3) * 7 + (i % 2))  # many equal times: the id decides
        rows.append((eid, f"Text {i}: Top-up #{i % 4}" + (" é" if i % 5 == 0 else ""), origins[i % 5], created,
                     splits[i % 4], i % 3 == 0, "excluded" if i == 6 else "active"))
    _insert(ws, rows)
    with ws.connect() as con:
        for on, include_system in (("conversation", False), ("prompt", True), ("response", False)):
            pool = load_pool(con, on, include_system)
            assert _as_lists(pool) == _old_pool(con, on, include_system)
            assert isinstance(pool.ids, StrColumn if long_ids else FixedStrColumn)
            assert [keeper_rank(pool, i)[3] for i in range(len(pool))] == list(pool.ids)
        for wanted in (["eval", "test"], ["train"], ["nope"]):
            assert _as_lists(load_pool(con, splits=wanted)) == _old_pool(con, "conversation", False, wanted)
        assert _as_lists(load_pool(con, memory_limit=None)) == _old_pool(con, "conversation", False)
        before = con.execute("SELECT current_setting('memory_limit')").fetchall()
        load_pool(con)
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == before


def test_load_pool_on_an_empty_workspace(ws) -> None:  # noqa: ANN001
    with ws.connect() as con:
        pool = load_pool(con)
    assert len(pool) == 0 and list(pool.texts) == [] and list(pool.split) == []


def test_dedup_on_a_list_pool_equals_the_loaded_one(ws, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The keeper, reasons and samples come out the same from a pool of plain lists."""
    t0 = dt.datetime(2024, 5, 1)
    texts = _texts(300, seed=2)
    rows = [(hashlib.sha256(str(i).encode()).hexdigest(), t.replace("\x00", " ") or "empty", ["seed", "import", "synthetic"][i % 3],
             t0 + dt.timedelta(seconds=i % 5), ["train", "eval", "test", None][i % 4], i % 6 == 0, "active")
            for i, t in enumerate(texts)]
    _insert(ws, rows)
    plain = dedup(ws, ["exact", "near"], dry_run=True, samples=50)

    def as_lists(con, on="conversation", include_system=False, **kw):  # noqa: ANN001, ANN003, ANN202
        return Pool(**_as_lists(load_pool(con, on, include_system, **kw)))

    with ws.connect() as con:
        assert isinstance(load_pool(con).ids, HexColumn)
    monkeypatch.setattr(run_mod, "load_pool", as_lists)
    listed = dedup(ws, ["exact", "near"], dry_run=True, samples=50)
    assert plain.decisions == listed.decisions and len(plain.decisions) > 50
    for m in (*plain.methods, *listed.methods):
        m.seconds = 0.0
    assert [m.to_dict() for m in plain.methods] == [m.to_dict() for m in listed.methods]
    assert sum(len(m.samples) for m in plain.methods) > 50


def test_ids_leave_the_fixed_width_array_when_one_does_not_fit() -> None:
    batches = [["ab", "b", "abc"], ["b\x00x", "a"], ["toolong!", "c"]]
    flat = [i for b in batches for i in b]
    for first in (1, 2, 3):
        buf = run_mod._IdBuffer(len(flat), 3)
        for b in batches[:first]:
            buf.add(pa.array(b))
        assert (buf.fixed is not None) == (first == 1)
        for b in batches[first:]:
            buf.add(pa.array(b))
        created = np.zeros(len(flat), dtype=np.int64)
        created[-1] = -1
        column, order = buf.column(created)
        assert buf.fixed is None and isinstance(column, StrColumn)
        assert list(column) == ["c", *sorted(flat[:-1], key=str.encode)] == [flat[i] for i in order]


def test_hex_ids_are_packed_until_one_is_not_hex() -> None:
    hexes = [hashlib.sha256(str(i).encode()).hexdigest()[:8] for i in range(7)] + ["00000000", "ffffffff"]
    batches = [hexes[:4], hexes[4:]]
    buf = run_mod._IdBuffer(20, 8)
    for b in batches:
        buf.add(pa.array(b))
    column, order = buf.column(np.zeros(len(hexes), dtype=np.int64))
    assert isinstance(column, HexColumn) and list(column) == sorted(hexes) == [hexes[i] for i in order]
    for odd in (["ABCDEF12"], ["abc"], ["abcdefgh"]):
        buf = run_mod._IdBuffer(20, 8)
        for b in (*batches, odd, ["0123abcd"]):
            buf.add(pa.array(b))
        flat = [*hexes, *odd, "0123abcd"]
        column, order = buf.column(np.zeros(len(flat), dtype=np.int64))
        assert isinstance(column, FixedStrColumn) and list(column) == sorted(flat) == [flat[i] for i in order]

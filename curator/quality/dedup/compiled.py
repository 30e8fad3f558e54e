"""The numba-compiled loops behind :mod:`curator.quality.dedup.kernels` (imported only through it).

Importing this module imports numba; compiled code is cached in ``__pycache__`` (``cache=True``).
All arithmetic is on uint64 (numba would turn a mix of uint64 and int64 into float64).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["band_keys", "compact", "signatures", "text_shingles"]

_njit = numba.njit(cache=True, nogil=True, parallel=True)
_prange = numba.prange
_u64 = np.uint64


_SPACE = 2  # curator.quality.fold.SPACE
_DELETE = 1  # curator.quality.fold.DELETE


@numba.njit(cache=True, inline="always")
def _fmix64(h: Any, m1: Any, m2: Any) -> Any:  # pragma: no cover - compiled
    h ^= h >> _u64(33)
    h *= m1
    h ^= h >> _u64(33)
    h *= m2
    h ^= h >> _u64(33)
    return h


@numba.njit(cache=True, inline="always")
def _kind(c: Any, cls: Any) -> int:  # pragma: no cover - compiled
    """0: a character of a word, 1: deleted (apostrophes), 2: a separator (NUL, whitespace, punctuation)."""
    if c == 0:
        return 2
    return cls[c]


@_njit
def text_shingles(cps: Any, bounds: Any, slot_off: Any, cls: Any, table: Any, consts: Any, k: Any,
                  hashes: Any, spare: Any) -> Any:  # pragma: no cover - compiled
    """Every text's sorted unique shingles, written at ``spare[slot_off[t]:]``; returns the set sizes.

    Per text, in one pass: its words are hashed (the tabulation hash of their UTF-8 bytes, ASCII
    letters lower-cased; deleted characters neither start nor end a word) into ``hashes[slot_off[t]:]``,
    then combined ``k`` at a time (one shingle of all the words for a text of fewer than ``k``), as
    ``minhash._hash_words`` and ``minhash._shingles_from_words`` do. A slot holds ``(chars + 1) // 2 + 1``
    values: more than the words of the text and than its shingles.
    """
    prime, seed, m1, m2 = consts[0], consts[1], consts[2], consts[3]
    n = bounds.size - 1
    sizes = np.empty(n, dtype=np.int64)
    ki = np.int64(k)
    for t in _prange(n):
        base = slot_off[t]
        nw = 0
        s = _u64(0)
        p = 0
        end = bounds[t + 1]
        for i in range(bounds[t], end + 1):
            kind = _SPACE if i == end else _kind(cps[i], cls)
            if kind == _SPACE:
                if p:
                    hashes[base + nw] = _fmix64(s ^ (_u64(p) * prime), m1, m2)
                    nw += 1
                    s = _u64(0)
                    p = 0
                continue
            if kind == _DELETE:
                continue
            c = np.uint32(cps[i])
            if 65 <= c <= 90:
                c += np.uint32(32)
            if c < 0x80:  # the character's UTF-8 bytes
                nb = 1
                lead = c
            elif c < 0x800:
                nb = 2
                lead = np.uint32(0xC0) | (c >> np.uint32(6))
            elif c < 0x10000:
                nb = 3
                lead = np.uint32(0xE0) | (c >> np.uint32(12))
            else:
                nb = 4
                lead = np.uint32(0xF0) | (c >> np.uint32(18))
            for j in range(nb):
                if j == 0:
                    byte = lead
                else:
                    byte = np.uint32(0x80) | ((c >> np.uint32(6 * (nb - 1 - j))) & np.uint32(0x3F))
                v = table[((p & 255) << 8) | byte]
                if p >= 256:
                    v *= _u64(p >> 8) * _u64(2) + _u64(1)
                s += v
                p += 1
        if nw >= ki:
            m = int(nw - ki + 1)
            for j in range(m):
                h = seed
                for q in range(ki):
                    h = (((h << _u64(27)) | (h >> _u64(37))) ^ hashes[base + j + q]) * prime
                spare[base + j] = np.uint32(_fmix64(h ^ k, m1, m2) >> _u64(32))
        else:
            m = 1
            h = seed
            for q in range(nw):
                h = (((h << _u64(27)) | (h >> _u64(37))) ^ hashes[base + q]) * prime
            spare[base] = np.uint32(_fmix64(h ^ _u64(nw), m1, m2) >> _u64(32))
        part = spare[base : base + m]
        if m <= 24:  # insertion sort: most texts are short
            for j in range(1, m):
                x = part[j]
                q = j - 1
                while q >= 0 and part[q] > x:
                    part[q + 1] = part[q]
                    q -= 1
                part[q + 1] = x
        else:
            part.sort()
        size = 1
        for j in range(1, m):
            if part[j] != part[size - 1]:
                part[size] = part[j]
                size += 1
        sizes[t] = size
    return sizes


@_njit
def compact(spare: Any, slot_off: Any, offsets: Any, flat: Any) -> None:  # pragma: no cover - compiled
    """The sets of the slots, back to back."""
    for t in _prange(offsets.size - 1):
        src = slot_off[t]
        for j in range(offsets[t + 1] - offsets[t]):
            flat[offsets[t] + j] = spare[src + j]


@_njit
def signatures(flat: Any, offsets: Any, a: Any, b: Any) -> Any:  # pragma: no cover - compiled
    n = offsets.size - 1
    num_perm = a.size
    out = np.empty((n, num_perm), dtype=np.uint32)
    mask = _u64(0xFFFFFFFF)
    for t in _prange(n):
        row = np.full(num_perm, mask, dtype=np.uint64)
        for i in range(offsets[t], offsets[t + 1]):
            x = _u64(flat[i])
            for p in range(num_perm):
                v = (a[p] * x + b[p]) & mask
                if v < row[p]:
                    row[p] = v
        for p in range(num_perm):
            out[t, p] = np.uint32(row[p])
    return out



@_njit
def band_keys(sigs: Any, bands: int, rows: int, seeds: Any, prime: Any, m1: Any, m2: Any) -> Any:  # pragma: no cover
    """``(n, bands)`` uint64 bucket keys of signature rows, as ``minhash.band_keys``: per band, its seed, then
    rotate-xor-multiply of each of its ``rows`` values, finalised."""
    n = sigs.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for t in _prange(n):
        for band in range(bands):
            h = seeds[band]
            for col in range(band * rows, (band + 1) * rows):
                h = (((h << _u64(29)) | (h >> _u64(35))) ^ _u64(sigs[t, col])) * prime
            out[t, band] = _fmix64(h, m1, m2)
    return out

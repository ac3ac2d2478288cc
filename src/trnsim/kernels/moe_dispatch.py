"""Moving token rows to their experts and back: row gathers and scatters by index, and the integer arithmetic
on the index vectors between them (slot // k, int <-> float casts).

- `gather_rows(table, ids)`: out[i] = table[ids[i]] for a table [V, D] (or [V]) of any chip dtype.
- `scatter_rows(base, positions, values)`: out = base with out[positions[i]] = values[i] (torch index_put).
- `index_arith(x, op, divisor)`: elementwise floor / trunc division or cast of an int32 / float vector.

Gathers and scatters run as indirect DMAs: an SBUF index tile holds 128 indices (one per partition) and one
DMA moves the 128 rows they name, HBM to HBM (`table[idx_tile, :]` gathers,
`out[idx_tile, :] = ...` scatters; nki/tensor_indirect.py). NKI's DGE reference (nki/deep-dives/nki-dge.rst,
"relevant for Trn1, Trn2, Trn3") and the legacy dma_copy page (Inf2, Trn1, Trn2) document this gather/scatter
from a list of SBUF indices (software DGE: GpSimd writes the descriptors) on every generation trnsim models,
so no target falls back. The descriptor generation itself is not priced (no preset holds its cost); the DMA
pays one descriptor per row as any DMA of that many rows does.

The indices of up to 512 tiles come in with one DMA, partition-major (`_indirect`), so tile t names the
positions t, t + T, t + 2T, ...: a strided slice of the output rows (gather) or of the values (scatter).

The row-run path (one DMA per run of consecutive rows, as in the embedding kernel) stays for indices known
while tracing that form no more runs than there are index tiles (a nearly sorted routing in a functional
run), for a scatter to repeated positions (its writes then land in order, the last one winning, as torch's
index_put on CPU), and for indices given as a Python list or a non-int32 array (an index tile holds int32 /
uint32). In timing mode the values are unknown and every int32 index vector goes indirect.
"""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.kernels._common import cdiv, pmax, require, require_dtype, sbuf_bytes_per_partition
from trnsim.kernels._host_values import host_ints
from trnsim.kernels.embedding import runs
from trnsim.nki.tensor import NkiTensor

ROW_DTYPES = (
    dtypes.float32,
    dtypes.bfloat16,
    dtypes.float16,
    dtypes.float8_e4m3,
    dtypes.float8_e5m2,
    np.dtype(np.int32),
)
ARITH_DTYPES = (dtypes.float32, dtypes.bfloat16, dtypes.float16, np.dtype(np.int32))
ARITH_OPS = ("floor_divide", "trunc_divide", "cast")
INDEX_TILE_DTYPES = (np.dtype(np.int32), np.dtype(np.uint32))  # what an indirect DMA's index tile holds
BLOCK_TILES = 512  # index tiles loaded by one DMA (2 KiB of int32 per partition)


def _as_matrix(t):
    """A vector [N] as [N, 1] so that a run of rows is a 2-D slice; matrices as they are."""
    return t.reshape((t.shape[0], 1)) if t.ndim == 1 else t


def _checked_ids(ids, what, bound, kernel):
    values = host_ints(ids, what, kernel)
    require(values.ndim == 1, f"{kernel}: {what} must be a vector, got shape {list(values.shape)}")
    flat = [int(i) for i in values]
    bad = [i for i in flat if not 0 <= i < bound]
    require(not bad, f"{kernel}: {what} must be in 0..{bound - 1}, got {bad[:4]}", rule="bounds")
    return flat


def _index_plan(ids, what, bound, kernel):
    """(the indices as a list when known while tracing, whether the rows move by indirect DMA).

    An int32 / uint32 HBM vector goes indirect, unless its values are known and form few runs; in timing mode
    its values are unknown, the indirect stream does not depend on them."""
    tile_index = isinstance(ids, NkiTensor) and ids.dtype in INDEX_TILE_DTYPES
    if tile_index:
        require(ids.ndim == 1, f"{kernel}: {what} must be a vector, got shape {list(ids.shape)}")
        if ids.alloc.storage is None:
            return None, True
    flat = _checked_ids(ids, what, bound, kernel)
    return flat, tile_index and len(runs(flat)) > cdiv(len(flat), pmax())


def _indirect(ids, move):
    """Call `move(rows, idx)` once per index tile: `rows` a slice of the N positions, `idx` the SBUF tile of
    their indices, one per partition.

    The indices come in with one DMA per block of up to BLOCK_TILES tiles, partition-major (partition q holds
    the block's indices q*T .. q*T + T - 1, one contiguous descriptor each), so tile t holds positions
    b0 + q*T + t: a strided slice of rows. The < 128 left over take one more tile."""
    n, p = ids.shape[0], pmax()
    per_block = p * BLOCK_TILES
    for b0 in range(0, n - n % p, per_block):
        tiles = min(BLOCK_TILES, (n - b0) // p)
        idx = nl.ndarray((p, tiles), ids.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=idx, src=ids.ap([[tiles, p], [1, tiles]], offset=b0))
        for t in range(tiles):
            move(slice(b0 + t, b0 + p * tiles, tiles), idx[:, t : t + 1])
    left = n % p
    if left:
        idx = nl.ndarray((left, 1), ids.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=idx, src=ids.ap([[1, left], [1, 1]], offset=n - left))
        move(slice(n - left, n), idx)


@nki.jit
def gather_rows(table, ids):
    """table[ids]: table [V, D] or [V], ids [N] (an int32 HBM vector, or known while tracing) -> [N, D] or [N]."""
    name = "gather_rows"
    require(table.ndim in (1, 2), f"{name}: table must be [V, D] or [V], got {list(table.shape)}")
    require_dtype("table", table, ROW_DTYPES, name)
    flat, indirect = _index_plan(ids, "ids", table.shape[0], name)
    n = ids.shape[0] if flat is None else len(flat)
    out = nl.ndarray((n, *table.shape[1:]), table.dtype, buffer=nl.shared_hbm)
    src, dst = _as_matrix(table), _as_matrix(out)
    if indirect:

        def move(rows, idx):
            nisa.dma_copy(dst=dst[rows, :], src=src[idx, :])

        _indirect(ids, move)
        return out
    for t0, i0, k in runs(flat):
        nisa.dma_copy(dst=dst[t0 : t0 + k, :], src=src[i0 : i0 + k, :])
    return out


@nki.jit
def scatter_rows(base, positions, values):
    """index_put: a copy of base [V, D] or [V] with rows positions[i] replaced by values[i] (last write wins).

    base is copied first unless the positions cover every row; in timing mode (positions unknown) they are
    taken to cover it when there are at least as many as rows (the inverse of a sort permutation)."""
    name = "scatter_rows"
    require(base.ndim in (1, 2), f"{name}: base must be [V, D] or [V], got {list(base.shape)}")
    require_dtype("base", base, ROW_DTYPES, name)
    require(values.dtype == base.dtype, f"{name}: values must have base's dtype {dtypes.name(base.dtype)}")
    flat, indirect = _index_plan(positions, "positions", base.shape[0], name)
    if flat is not None and len(set(flat)) < len(flat):
        indirect = False  # repeated positions: the runs, in order, keep torch's last write winning
    n = positions.shape[0] if flat is None else len(flat)
    require(
        tuple(values.shape) == (n, *base.shape[1:]),
        f"{name}: values must be {[n, *base.shape[1:]]} (one row per position), got {list(values.shape)}",
    )
    out = nl.ndarray(tuple(base.shape), base.dtype, buffer=nl.shared_hbm)
    dst, src = _as_matrix(out), _as_matrix(values)
    covered = n >= base.shape[0] if flat is None else sorted(set(flat)) == list(range(base.shape[0]))
    if not covered:  # rows not overwritten keep base's values
        nisa.dma_copy(dst=dst, src=_as_matrix(base))
    if indirect:

        def move(rows, idx):
            nisa.dma_copy(dst=dst[idx, :], src=src[rows, :])

        _indirect(positions, move)
        return out
    # runs of consecutive positions are consecutive rows of values too
    for v0, p0, k in runs(flat):
        nisa.dma_copy(dst=dst[p0 : p0 + k, :], src=src[v0 : v0 + k, :])
    return out


@nki.jit
def index_arith(x, op, divisor=1, out_dtype=None):
    """Elementwise on a vector x [N]: floor(x / divisor), trunc(x / divisor) or a cast, in out_dtype.

    Integers go through fp32 on VectorE (exact below 2^24): q = (x - mod(x, d)) / d, the remainder taken with
    the sign of d (floor) or of x (trunc), so the division itself is exact.
    """
    name = "index_arith"
    require(x.ndim == 1 and x.shape[0] >= 1, f"{name}: x must be a non-empty vector [N], got {list(x.shape)}")
    require_dtype("x", x, ARITH_DTYPES, name)
    require(op in ARITH_OPS, f"{name}: op must be one of {', '.join(ARITH_OPS)}, got {op!r}", rule="op")
    require(op == "cast" or float(divisor) != 0.0, f"{name}: division by zero", rule="value")
    odt = x.dtype if out_dtype is None else dtypes.resolve(out_dtype)
    require(odt in ARITH_DTYPES, f"{name}: out_dtype {dtypes.name(odt)} is not supported", rule="dtype")
    (size,) = x.shape
    p = pmax()
    rows = p if size % p == 0 else 1  # whole partitions when the length allows, else one row
    cols = size // rows
    limit = sbuf_bytes_per_partition() // 16
    require(cols <= limit, f"{name}: {size} entries need {cols} per partition; at most {limit}")
    x2 = x.reshape((rows, cols))
    out = nl.ndarray((size,), odt, buffer=nl.shared_hbm)
    raw = nl.ndarray((rows, cols), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=raw, src=x2)
    result = nl.ndarray((rows, cols), odt, buffer=nl.sbuf)
    if op == "cast":
        nisa.tensor_copy(dst=result, src=raw)
    else:
        d = float(divisor)
        rem = nl.ndarray((rows, cols), nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=rem, data=raw, op0=nl.mod if op == "floor_divide" else nl.fmod, operand0=d)
        exact = nl.ndarray((rows, cols), nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=exact, data1=raw, data2=rem, op=nl.subtract)
        nisa.tensor_scalar(dst=result, data=exact, op0=nl.divide, operand0=d)
    nisa.dma_copy(dst=out.reshape((rows, cols)), src=result)
    return out

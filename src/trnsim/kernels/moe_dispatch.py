"""Moving token rows to their experts and back: row gathers and scatters by index, and the integer arithmetic
on the index vectors between them (slot // k, int <-> float casts).

- `gather_rows(table, ids)`: out[i] = table[ids[i]] for a table [V, D] (or [V]) of any chip dtype.
- `scatter_rows(base, positions, values)`: out = base with out[positions[i]] = values[i] (torch index_put).
- `index_arith(x, op, divisor)`: elementwise floor / trunc division or cast of an int32 / float vector.

The gathers and scatters are streams of DMAs, one per run of consecutive rows, as in the embedding kernel:
the simulator has no indirect DMA yet, so the indices are read while tracing (`_host_values`; a list in
timing mode). On hardware one descriptor-generating DMA per 128 indices would replace the per-run DMAs.
"""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.kernels._common import pmax, require, require_dtype, sbuf_bytes_per_partition
from trnsim.kernels._host_values import host_ints
from trnsim.kernels.embedding import runs

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


@nki.jit
def gather_rows(table, ids):
    """table[ids]: table [V, D] or [V], ids [N] (known while tracing) -> [N, D] or [N]."""
    name = "gather_rows"
    require(table.ndim in (1, 2), f"{name}: table must be [V, D] or [V], got {list(table.shape)}")
    require_dtype("table", table, ROW_DTYPES, name)
    flat = _checked_ids(ids, "ids", table.shape[0], name)
    out = nl.ndarray((len(flat), *table.shape[1:]), table.dtype, buffer=nl.shared_hbm)
    src, dst = _as_matrix(table), _as_matrix(out)
    for t0, i0, n in runs(flat):
        nisa.dma_copy(dst=dst[t0 : t0 + n, :], src=src[i0 : i0 + n, :])
    return out


@nki.jit
def scatter_rows(base, positions, values):
    """index_put: a copy of base [V, D] or [V] with rows positions[i] replaced by values[i] (last write wins)."""
    name = "scatter_rows"
    require(base.ndim in (1, 2), f"{name}: base must be [V, D] or [V], got {list(base.shape)}")
    require_dtype("base", base, ROW_DTYPES, name)
    require(values.dtype == base.dtype, f"{name}: values must have base's dtype {dtypes.name(base.dtype)}")
    flat = _checked_ids(positions, "positions", base.shape[0], name)
    require(
        tuple(values.shape) == (len(flat), *base.shape[1:]),
        f"{name}: values must be {[len(flat), *base.shape[1:]]} (one row per position), got {list(values.shape)}",
    )
    out = nl.ndarray(tuple(base.shape), base.dtype, buffer=nl.shared_hbm)
    dst, src = _as_matrix(out), _as_matrix(values)
    if sorted(set(flat)) != list(range(base.shape[0])):  # rows not overwritten keep base's values
        nisa.dma_copy(dst=dst, src=_as_matrix(base))
    # runs of consecutive positions are consecutive rows of values too
    for v0, p0, n in runs(flat):
        nisa.dma_copy(dst=dst[p0 : p0 + n, :], src=src[v0 : v0 + n, :])
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

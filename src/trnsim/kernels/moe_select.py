"""Per-row picks by index and masked selects, for routers that choose among expert groups (DeepSeek's
group-limited top-k: scores.gather(1, idx), mask.scatter_(1, idx, 1), scores.masked_fill(~mask, value)).

- `gather_last(x, idx)`: out[r, j] = x[r, idx[r, j]] for x [R, C], idx int32 [R, k].
- `scatter_last(x, idx, value)`: x with x[r, idx[r, j]] = value.
- `where(cond, on_true, on_false)`: elementwise select; cond is 1.0 / 0.0 (how comparisons leave the chip),
  either branch may be a number.

Rows sit on the partitions and columns on the free axis; an index column is compared against the column
numbers (VectorE, one pass per index), so no address depends on the data: the picked value is the max over
select(hit, x, -inf), exact for any x, and a write is a select into the row.
"""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.kernels._common import pmax, require, require_dtype, sbuf_bytes_per_partition

ROW_DTYPES = (dtypes.float32, dtypes.bfloat16, dtypes.float16)


def _check_rows(name, x, idx):
    require(x.ndim == 2, f"{name}: x must be [rows, columns], got {list(x.shape)}")
    require_dtype("x", x, ROW_DTYPES, name)
    require(
        idx.ndim == 2 and idx.shape[0] == x.shape[0],
        f"{name}: idx must be [{x.shape[0]}, k] (one row of indices per row of x), got {list(idx.shape)}",
    )
    require_dtype("idx", idx, (np.dtype(np.int32),), name)
    limit = sbuf_bytes_per_partition() // (4 * 4 * 2)
    require(x.shape[1] <= limit, f"{name}: rows of {x.shape[1]} entries exceed one SBUF tile; at most {limit}")


def _row_tiles(x, idx):
    """Per 128 rows: (first row, rows, x as fp32, the indices as fp32, column numbers) in SBUF."""
    rows, cols = x.shape
    p = pmax()
    columns = nl.ndarray((p, cols), nl.float32, buffer=nl.sbuf)
    nisa.iota(columns, [[1, cols]], offset=0, channel_multiplier=0)
    for r0 in range(0, rows, p):
        n = min(p, rows - r0)
        raw = nl.ndarray((p, cols), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=raw[:n], src=x[r0 : r0 + n])
        values = nl.ndarray((p, cols), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=values[:n], src=raw[:n])
        raw_idx = nl.ndarray((p, idx.shape[1]), nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(dst=raw_idx[:n], src=idx[r0 : r0 + n])
        where = nl.ndarray((p, idx.shape[1]), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=where[:n], src=raw_idx[:n])
        yield r0, n, values, where, columns


@nki.jit
def gather_last(x, idx):
    """out[r, j] = x[r, idx[r, j]] (torch.gather along the last dim): [R, k] in x's dtype."""
    name = "gather_last"
    _check_rows(name, x, idx)
    k = idx.shape[1]
    out = nl.ndarray((x.shape[0], k), x.dtype, buffer=nl.shared_hbm)
    p = pmax()
    for r0, n, values, where, columns in _row_tiles(x, idx):
        picked = nl.ndarray((p, k), x.dtype, buffer=nl.sbuf)
        hit = nl.ndarray((p, x.shape[1]), nl.float32, buffer=nl.sbuf)
        only = nl.ndarray((p, x.shape[1]), nl.float32, buffer=nl.sbuf)
        for j in range(k):
            nisa.tensor_scalar(dst=hit[:n], data=columns[:n], op0=nl.equal, operand0=where[:n, j : j + 1])
            nisa.select(dst=only[:n], predicate=hit[:n], on_true=values[:n], on_false=float("-inf"))
            nisa.tensor_reduce(dst=picked[:n, j : j + 1], op=nl.maximum, data=only[:n], axis=1)
        nisa.dma_copy(dst=out[r0 : r0 + n], src=picked[:n])
    return out


@nki.jit
def scatter_last(x, idx, value):
    """x with x[r, idx[r, j]] = value for every j (torch.Tensor.scatter(-1, idx, value)), in x's dtype."""
    name = "scatter_last"
    _check_rows(name, x, idx)
    out = nl.ndarray(tuple(x.shape), x.dtype, buffer=nl.shared_hbm)
    p = pmax()
    fill = nl.ndarray((p, x.shape[1]), nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=fill, value=float(value))
    for r0, n, values, where, columns in _row_tiles(x, idx):
        hit = nl.ndarray((p, x.shape[1]), nl.float32, buffer=nl.sbuf)
        for j in range(idx.shape[1]):
            nisa.tensor_scalar(dst=hit[:n], data=columns[:n], op0=nl.equal, operand0=where[:n, j : j + 1])
            nisa.select(dst=values[:n], predicate=hit[:n], on_true=fill[:n], on_false=values[:n])
        result = nl.ndarray((p, x.shape[1]), x.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=result[:n], src=values[:n])
        nisa.dma_copy(dst=out[r0 : r0 + n], src=result[:n])
    return out


def _load_rows(t, r0, n):
    tile = nl.ndarray((pmax(), t.shape[1]), t.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=tile[:n], src=t[r0 : r0 + n])
    return tile[:n]


@nki.jit
def where(cond, on_true, on_false):
    """cond ? on_true : on_false elementwise over [R, C]; cond holds 1.0 / 0.0, a branch may be a number."""
    name = "where"
    require(cond.ndim == 2, f"{name}: cond must be [rows, columns], got {list(cond.shape)}")
    tensors = [t for t in (on_true, on_false) if not isinstance(t, int | float)]
    require(bool(tensors), f"{name}: at least one branch must be a tensor")
    for t in (cond, *tensors):
        require(tuple(t.shape) == tuple(cond.shape), f"{name}: operands must all be {list(cond.shape)}")
        require_dtype("operand", t, ROW_DTYPES, name)
    odt = tensors[0].dtype
    rows, cols = cond.shape
    limit = sbuf_bytes_per_partition() // (4 * 4 * 2)
    require(cols <= limit, f"{name}: rows of {cols} entries exceed one SBUF tile; at most {limit}")
    out = nl.ndarray((rows, cols), odt, buffer=nl.shared_hbm)
    p = pmax()
    for r0 in range(0, rows, p):
        n = min(p, rows - r0)
        pred = _load_rows(cond, r0, n)
        if isinstance(on_true, int | float):  # select(pred, a, b) takes a number only as b: flip the predicate
            flipped = nl.ndarray((p, cols), nl.float32, buffer=nl.sbuf)
            nisa.tensor_scalar(dst=flipped[:n], data=pred, op0=nl.equal, operand0=0.0)
            pred, first, second = flipped[:n], _load_rows(on_false, r0, n), float(on_true)
        else:
            first = _load_rows(on_true, r0, n)
            second = float(on_false) if isinstance(on_false, int | float) else _load_rows(on_false, r0, n)
        result = nl.ndarray((p, cols), odt, buffer=nl.sbuf)
        nisa.select(dst=result[:n], predicate=pred, on_true=first, on_false=second)
        nisa.dma_copy(dst=out[r0 : r0 + n], src=result[:n])
    return out

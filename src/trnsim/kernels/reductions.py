"""Reductions over the last axis: `reduce_last` (add / max / min / mean) and a numerically stable `softmax`.

Rows go onto partitions (see _rows.py). Softmax keeps each block of rows resident in SBUF and makes one
pass per column chunk as it arrives:
    VectorE: m_c = max over the chunk                         (tensor_reduce, negated: -m_c)
    ScalarE: e = exp(x - m_c), s_c = sum(e)                   (one activation: bias -m_c, reduce_res)
then combines the chunks' statistics (m = max m_c, s = sum s_c * exp(m_c - m)) and scales chunk c by
exp(m_c - m) / s on whichever engine is less busy, storing each chunk as it is done. With one chunk this
is the textbook max / exp-with-sum / reciprocal / scale. Rows too long for SBUF take two passes over HBM:
statistics first, then y = exp(x - m - ln s), a single ScalarE instruction per chunk.

layernorm and rmsnorm live in norms.py and are re-exported here.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError
from trnsim.kernels._engine_load import EngineLoad
from trnsim.kernels._rows import RowPlan, check_rows, load_block, load_chunk, plan_rows, store_chunk
from trnsim.kernels._stream import DMA_RUN_BYTES, prefetch, prefetch_depth, skewed
from trnsim.kernels.norms import layernorm, rmsnorm
from trnsim.nki.context import outside_location

__all__ = ["layernorm", "reduce_last", "rmsnorm", "softmax"]

# reduce_last op names -> (ALU op, divide by the row length)
_REDUCE = {
    "add": ("add", False),
    "sum": ("add", False),
    "max": ("maximum", False),
    "maximum": ("maximum", False),
    "min": ("minimum", False),
    "minimum": ("minimum", False),
    "mean": ("add", True),
}


@nki.jit
def reduce_last(x, op):
    """Reduce x over its last axis: op is "add" (or "sum"), "max", "min" or "mean".

    The result has x's shape without the last axis ([1] for a 1-D x) and x's dtype; sums are fp32 on chip.
    """
    check_rows(x, "reduce_last")
    name = getattr(op, "nki_name", op)
    if name not in _REDUCE:
        raise UsageError(
            f"reduce_last: op {op!r} is not supported; supported: {', '.join(_REDUCE)}", outside_location(), rule="op"
        )
    alu, mean = _REDUCE[name]
    out = nl.ndarray(tuple(x.shape[:-1]) or (1,), x.dtype, buffer=nl.shared_hbm)
    # Nothing is stored per element, so blocks can be as large as the elementwise kernels' (fewer, longer DMAs).
    plan = plan_rows(x, x.itemsize, run_bytes=DMA_RUN_BYTES)
    out_flat = out.reshape((plan.rows,))
    load = EngineLoad()
    n_chunks = len(plan.chunks)
    # Partial results in x's dtype where that is exact (max / min, or a sum rounded once, as torch does):
    # VectorE reduces bf16 into bf16 at twice the rate.
    partial_dtype = x.dtype if alu != "add" or n_chunks == 1 else nl.float32
    items = [(b, c, c0, cs) for b in plan.blocks for c, (c0, cs) in enumerate(plan.chunks)]
    k_max = max(b.k for b in plan.blocks)
    depth = prefetch_depth(k_max * max(cs for _, cs in plan.chunks) * x.itemsize)
    partial: Any = None
    results: deque[tuple[Any, Any]] = deque()
    # Streamed chunk by chunk: each chunk reduces to one value per row; the chunks' values reduce at the end.
    for (b, c, _, cs), t in prefetch(items, lambda it: load_chunk(plan, it[0], it[2], it[3]), depth):
        if c == 0:
            partial = nl.ndarray((b.p, b.k, n_chunks), partial_dtype, buffer=nl.sbuf)
        ways = [{"vector": load.vector_reduce_cycles(b.k * cs, t, partial)}]
        if alu == "add":  # ScalarE sums for free alongside an identity activation (into fp32)
            ways.append({"scalar": b.k * load.activation_cycles(cs, reduce=True)})
        if load.choose(*ways) == 0:
            if n_chunks == 1:
                nisa.tensor_reduce(dst=partial[:, :, 0], op=getattr(nl, alu), data=t, axis=2)
            else:  # into a contiguous tile (VectorE writes it at full rate), then into column c
                part = nl.ndarray((b.p, b.k), partial_dtype, buffer=nl.sbuf)
                nisa.tensor_reduce(dst=part, op=getattr(nl, alu), data=t, axis=2)
                nisa.tensor_copy(dst=partial[:, :, c], src=part)
        else:
            sums = nl.ndarray((b.p, b.k), nl.float32, buffer=nl.sbuf)
            junk = nl.ndarray((b.p, cs), t.dtype, buffer=nl.sbuf)
            for j in range(b.k):
                nisa.activation(
                    dst=junk,
                    op=nl.copy,
                    data=t[:, j, :],
                    reduce_op=nl.add,
                    reduce_res=sums[:, j : j + 1],
                    reduce_cmd=nisa.reduce_cmd.reset_reduce,
                )
            nisa.tensor_copy(dst=partial[:, :, c], src=sums)
        if c == n_chunks - 1:
            total = partial
            if n_chunks > 1:
                total = nl.ndarray((b.p, b.k), nl.float32, buffer=nl.sbuf)
                nisa.tensor_reduce(dst=total, op=getattr(nl, alu), data=partial, axis=2)
            res = total
            if mean or total.dtype != x.dtype:
                res = nl.ndarray((b.p, b.k), x.dtype, buffer=nl.sbuf)
                scale = 1.0 / plan.cols if mean else 1.0
                nisa.tensor_scalar(dst=res, data=total, op0=nl.multiply, operand0=scale)
            results.append((b, res))
            # A result store waits for its reduction; issued a few blocks late it no longer holds up the
            # loads queued behind it (DMA queues run in order).
            if len(results) > depth + 1:
                _store_result(out_flat, *results.popleft())
    for b, res in results:
        _store_result(out_flat, b, res)
    return out


def _store_result(out_flat: Any, b: Any, res: Any) -> None:
    nisa.dma_copy(dst=out_flat[b.row : b.row + b.rows], src=res)


@nki.jit
def softmax(x):
    """Softmax over the last axis of x (any rank), numerically stable; fp32 statistics, output in x's dtype."""
    check_rows(x, "softmax")
    out = nl.ndarray(tuple(x.shape), x.dtype, buffer=nl.shared_hbm)
    plan = plan_rows(x, x.itemsize)
    out2 = out.reshape((plan.rows, plan.cols))
    if plan.resident:
        _softmax_resident(plan, out2)
    else:
        _softmax_streamed(plan, out2)
    return out


def _softmax_resident(plan: RowPlan, out2: Any) -> None:
    load = EngineLoad()
    n_chunks = len(plan.chunks)

    def exponentiate(block: tuple[Any, Any]) -> Any:
        b, xt = block
        # -max per chunk in x's dtype (exact: a max of x's values), so VectorE reduces at its bf16 rate
        neg_max = nl.ndarray((b.p, b.k, n_chunks), xt.dtype, buffer=nl.sbuf)
        sums = nl.ndarray((b.p, b.k, n_chunks), nl.float32, buffer=nl.sbuf)
        for c, (c0, cs) in enumerate(plan.chunks):
            _exp_chunk(xt[:, :, c0 : c0 + cs], neg_max, sums, c, load)
        return neg_max, sums

    def normalise(block: tuple[Any, Any], stats: Any) -> None:
        b, xt = block
        scale = _chunk_scales(*stats)  # issued here, not above: it waits on ScalarE's exps of this block
        for c, (c0, cs) in enumerate(plan.chunks):
            for j in range(b.k):
                chunk = xt[:, j, c0 : c0 + cs]
                s = scale[:, j, c : c + 1]
                if load.pick(vector=load.vector_scalar_cycles(cs, chunk), scalar=load.scalar_cycles(cs)) == "vector":
                    nisa.tensor_scalar(dst=chunk, data=chunk, op0=nl.multiply, operand0=s)
                else:
                    nisa.activation(dst=chunk, op=nl.copy, data=chunk, scale=s)
            store_chunk(out2, b, c0, cs, xt[:, :, c0 : c0 + cs])

    skewed(prefetch(plan.blocks, lambda b: load_block(plan, b), plan.depth), exponentiate, normalise, plan.skew)


def _exp_chunk(chunk: Any, neg_max: Any, sums: Any, c: int, load: EngineLoad) -> None:
    """In place: chunk [p, k, cs] <- exp(chunk - max), per row; -max and the sum of exp go to column c."""
    p, k, cs = chunk.shape
    n_chunks = neg_max.shape[2]
    # The max goes to a tile of its own (contiguous, so VectorE writes it at full rate), then to column c.
    m = neg_max[:, :, 0] if n_chunks == 1 else nl.ndarray((p, k), neg_max.dtype, buffer=nl.sbuf)
    load.add("vector", load.vector_reduce_cycles(k * cs, chunk, m))
    nisa.tensor_reduce(dst=m, op=nl.maximum, data=chunk, axis=2, negate=True)
    for j in range(k):
        load.add("scalar", load.activation_cycles(cs, reduce=True))
        nisa.activation(
            dst=chunk[:, j, :],
            op=nl.exp,
            data=chunk[:, j, :],
            bias=m[:, j : j + 1],
            reduce_op=nl.add,
            reduce_res=sums[:, j, c : c + 1],
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
        )
    if n_chunks > 1:
        nisa.tensor_copy(dst=neg_max[:, :, c], src=m)


def _combine(neg_max: Any, sums: Any) -> tuple[Any, Any, Any]:
    """Per row (k == 1): -m = min of the chunks' -m_c, exp(m_c - m) per chunk, and s = sum s_c exp(m_c - m)."""
    p, _, n = neg_max.shape
    neg_m = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=neg_m, op=nl.minimum, data=neg_max[:, 0, :], axis=1)
    corr = nl.ndarray((p, n), nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=corr, op=nl.exp, data=neg_max[:, 0, :], scale=-1.0, bias=neg_m)
    weighted = nl.ndarray((p, n), nl.float32, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=weighted, data1=sums[:, 0, :], data2=corr, op=nl.multiply)
    total = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=total, op=nl.add, data=weighted, axis=1)
    return neg_m, corr, total


def _chunk_scales(neg_max: Any, sums: Any) -> Any:
    """[p, k, n_chunks] factors turning chunk c's exp(x - m_c) into softmax: exp(m_c - m) / s."""
    p, k, n = neg_max.shape
    scale = nl.ndarray((p, k, n), nl.float32, buffer=nl.sbuf)
    if n == 1:
        nisa.reciprocal(dst=scale, data=sums)
        return scale
    _, corr, total = _combine(neg_max, sums)
    inv = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
    nisa.reciprocal(dst=inv, data=total)
    nisa.tensor_scalar(dst=scale[:, 0, :], data=corr, op0=nl.multiply, operand0=inv)
    return scale


def _softmax_streamed(plan: RowPlan, out2: Any) -> None:
    """Rows too long for SBUF: pass 1 streams the chunks for their statistics, pass 2 streams them again
    and writes exp(x - m - ln s) with one ScalarE instruction per chunk."""
    n_chunks = len(plan.chunks)
    items = [(b, pas, c) for b in plan.blocks for pas in (1, 2) for c in range(n_chunks)]
    stats: dict[int, Any] = {}

    def load(item: tuple[Any, int, int]) -> Any:
        b, _, c = item
        c0, cs = plan.chunks[c]
        return load_chunk(plan, b, c0, cs)

    for (b, pas, c), t in prefetch(items, load, plan.depth):
        if pas == 1:
            if c == 0:
                stats[b.row] = tuple(nl.ndarray((b.p, 1, n_chunks), dt, buffer=nl.sbuf) for dt in (t.dtype, nl.float32))
            neg_max, sums = stats[b.row]
            _exp_chunk(t, neg_max, sums, c, EngineLoad())
            if c == n_chunks - 1:  # bias = -m - ln(s)
                neg_m, _, total = _combine(neg_max, sums)
                log_s = nl.ndarray((b.p, 1), nl.float32, buffer=nl.sbuf)
                nisa.activation(dst=log_s, op=nl.log, data=total)
                bias = nl.ndarray((b.p, 1), nl.float32, buffer=nl.sbuf)
                nisa.tensor_tensor(dst=bias, data1=neg_m, data2=log_s, op=nl.subtract)
                stats[b.row] = bias
        else:
            nisa.activation(dst=t[:, 0, :], op=nl.exp, data=t[:, 0, :], bias=stats[b.row])
            c0, cs = plan.chunks[c]
            store_chunk(out2, b, c0, cs, t)
            if c == n_chunks - 1:
                del stats[b.row]

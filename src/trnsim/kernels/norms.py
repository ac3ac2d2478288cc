"""Normalisations over the last axis: `rmsnorm` and `layernorm`.

Both are two steps per row: statistics (rmsnorm: the sum of squares, a ScalarE `square` activation whose
free reduction gives the sum; layernorm: VectorE bn_stats on <= 512-element pieces, then bn_aggr), then
the normalisation y = (x - mean) * rstd * gamma + beta. The per-row part (x - mean) * rstd is free on
ScalarE (scale and bias are [P, 1] operands) or one VectorE tensor_scalar; gamma and beta are full rows
broadcast across partitions once (TensorE, _stream.broadcast_row) and applied with tensor_tensor. Each
step goes to the engine with room (_engine_load.EngineLoad), so the DMAs stay the bottleneck.

Rows are resident in SBUF when they fit (one HBM read, one write; see _rows.py), else streamed twice.
"""

from __future__ import annotations

import itertools
from typing import Any

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import core, pmax, psum_fmax, require, require_dtype, sbuf_bytes_per_partition
from trnsim.kernels._engine_load import EngineLoad
from trnsim.kernels._rows import ROW_DTYPES, check_rows, load_block, load_chunk, plan_rows, store_chunk
from trnsim.kernels._stream import SBUF_SHARE, broadcast_row, prefetch, skewed
from trnsim.nki.tensor import NkiTensor


@nki.jit
def rmsnorm(x, gamma, eps=1e-6):
    """x / sqrt(mean(x^2 over the last axis) + eps) * gamma; gamma [D] or None. Output in x's dtype."""
    check_rows(x, "rmsnorm")
    _check_vector(gamma, x, "gamma", "rmsnorm")
    return _normalize(x, _RmsNorm(x.shape[-1], float(eps)), [gamma])


@nki.jit
def layernorm(x, gamma, beta, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * gamma + beta over the last axis (population variance, like
    torch.nn.functional.layer_norm); gamma and beta [D] or None. Output in x's dtype."""
    check_rows(x, "layernorm")
    _check_vector(gamma, x, "gamma", "layernorm")
    _check_vector(beta, x, "beta", "layernorm")
    return _normalize(x, _LayerNorm(float(eps)), [gamma, beta])


def _check_vector(v: Any, x: Any, what: str, kernel: str) -> None:
    if v is None:
        return
    require(isinstance(v, NkiTensor), f"{kernel}: {what} must be a tensor or None, got {type(v).__name__}")
    require_dtype(what, v, ROW_DTYPES, kernel)
    d = x.shape[-1]
    require(tuple(v.shape) == (d,), f"{kernel}: {what} must have shape [{d}] (x's last dim), got {list(v.shape)}")


class _RmsNorm:
    """rstd = 1 / sqrt(sum(x^2) / D + eps); y = x * rstd * gamma."""

    def __init__(self, d: int, eps: float) -> None:
        self.d = d
        self.eps = eps

    def new_stats(self, p: int, k: int, chunks: list[tuple[int, int]], dtype: Any) -> Any:
        junk = nl.ndarray((p, max(cs for _, cs in chunks)), dtype, buffer=nl.sbuf)  # square's output, unused
        return nl.ndarray((p, k, len(chunks)), nl.float32, buffer=nl.sbuf), junk

    def accumulate(self, chunk: Any, stats: Any, c: int, load: EngineLoad) -> None:
        ss, junk = stats
        _, k, cs = chunk.shape
        for j in range(k):
            load.add("scalar", load.activation_cycles(cs, reduce=True))
            nisa.activation(
                dst=junk[:, :cs],
                op=nl.square,
                data=chunk[:, j, :],
                reduce_op=nl.add,
                reduce_res=ss[:, j, c : c + 1],
                reduce_cmd=nisa.reduce_cmd.reset_reduce,
            )

    def finish(self, stats: Any) -> Any:
        ss, _ = stats
        p, k, n = ss.shape
        total = ss[:, :, 0]
        if n > 1:
            total = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)
            nisa.tensor_reduce(dst=total, op=nl.add, data=ss, axis=2)
        return _rsqrt(total, 1.0 / self.d, self.eps)

    def apply(self, row: Any, rstd: Any, j: int, vectors: list[Any], c0: int, load: EngineLoad) -> None:
        """In place: row [p, cs] (columns c0 ..) <- row * rstd[:, j] * gamma."""
        (gamma,) = vectors
        r = rstd[:, j : j + 1]
        cs = row.shape[1]
        scale_ways = {
            "scalar": {"scalar": load.scalar_cycles(cs)},
            "vector": {"vector": load.vector_scalar_cycles(cs, row)},
        }
        # or both multiplies in one VectorE scalar_tensor_tensor: (x * rstd) * gamma
        fused = {"vector": load.fused_cycles(cs, row, gamma.sbuf)} if gamma is not None else None
        how, gamma_how = _choose_steps(load, scale_ways, [gamma.ways(load, row, c0)] if gamma else [], fused)
        if how == "fused":
            g = gamma.sbuf[: row.shape[0], c0 : c0 + cs]
            nisa.scalar_tensor_tensor(dst=row, data=row, op0=nl.multiply, operand0=r, op1=nl.multiply, operand1=g)
            return
        if how == "scalar":
            nisa.activation(dst=row, op=nl.copy, data=row, scale=r)
        else:
            nisa.tensor_scalar(dst=row, data=row, op0=nl.multiply, operand0=r)
        if gamma is not None:
            gamma.apply(row, c0, nl.multiply, gamma_how[0])


class _LayerNorm:
    """mean and var from bn_stats / bn_aggr; y = (x - mean) * rstd * gamma + beta."""

    def __init__(self, eps: float) -> None:
        self.eps = eps
        self.fmax = nl.tile_size.bn_stats_fmax

    def new_stats(self, p: int, k: int, chunks: list[tuple[int, int]], dtype: Any) -> Any:
        """bn_stats results, 6 per <= 512-element piece, for the pieces of every chunk side by side."""
        pieces = [-(-cs // self.fmax) for _, cs in chunks]
        self.first_slot = [sum(pieces[:c]) for c in range(len(chunks))]
        return nl.ndarray((p, k, 6 * sum(pieces)), nl.float32, buffer=nl.sbuf)

    def accumulate(self, chunk: Any, stats: Any, c: int, load: EngineLoad) -> None:
        _, k, cs = chunk.shape
        for j in range(k):
            for i, s0 in enumerate(range(0, cs, self.fmax)):
                s1 = min(cs, s0 + self.fmax)
                load.add("vector", load.bn_stats_cycles(s1 - s0, chunk))
                slot = 6 * (self.first_slot[c] + i)
                nisa.bn_stats(dst=stats[:, j, slot : slot + 6], data=chunk[:, j, s0:s1])

    def finish(self, stats: Any) -> Any:
        p, k, _ = stats.shape
        mv = nl.ndarray((p, k, 2), nl.float32, buffer=nl.sbuf)  # mean, variance
        for j in range(k):
            nisa.bn_aggr(dst=mv[:, j, :], data=stats[:, j, :])
        rstd = _rsqrt(mv[:, :, 1], 1.0, self.eps)
        shift = nl.ndarray((p, k), nl.float32, buffer=nl.sbuf)  # -mean * rstd: ScalarE's bias
        nisa.scalar_tensor_tensor(
            dst=shift, data=mv[:, :, 0], op0=nl.multiply, operand0=-1.0, op1=nl.multiply, operand1=rstd
        )
        return mv, rstd, shift

    def apply(self, row: Any, params: Any, j: int, vectors: list[Any], c0: int, load: EngineLoad) -> None:
        """In place: row [p, cs] (columns c0 ..) <- (row - mean) * rstd * gamma + beta."""
        mv, rstd, shift = params
        cs = row.shape[1]
        norm_ways = {
            "scalar": {"scalar": load.scalar_cycles(cs)},
            "vector": {"vector": load.vector_scalar_cycles(cs, row)},
        }
        steps = [(v, op) for v, op in zip(vectors, (nl.multiply, nl.add)) if v is not None]
        how, vec_hows = _choose_steps(load, norm_ways, [v.ways(load, row, c0) for v, _ in steps])
        if how == "scalar":
            nisa.activation(dst=row, op=nl.copy, data=row, scale=rstd[:, j : j + 1], bias=shift[:, j : j + 1])
        else:
            nisa.tensor_scalar(
                dst=row,
                data=row,
                op0=nl.subtract,
                operand0=mv[:, j, 0:1],
                op1=nl.multiply,
                operand1=rstd[:, j : j + 1],
            )
        for (v, op), vec_how in zip(steps, vec_hows):
            v.apply(row, c0, op, vec_how)


class _RowVector:
    """gamma or beta [D], broadcast to every partition once: an SBUF tile, plus (when PSUM has room) the
    fp32 PSUM tiles the broadcast went through. A VectorE tensor_tensor with one operand in PSUM runs at
    one element per cycle instead of two, and GpSimd, which cannot read PSUM, can take the SBUF copy."""

    def __init__(self, v: Any, p: int, keep_psum: bool) -> None:
        self.sbuf = nl.ndarray((p, v.shape[0]), v.dtype, buffer=nl.sbuf)
        self.psum = broadcast_row(self.sbuf, v, keep_psum)

    def _pieces(self, c0: int, cs: int) -> list[tuple[int, int, Any, int]]:
        """(start, stop, PSUM tile, tile's first column) for the PSUM tiles covering columns c0 .. c0 + cs."""
        out = []
        for t0, tile in self.psum:
            a, b = max(c0, t0), min(c0 + cs, t0 + tile.shape[1])
            if a < b:
                out.append((a, b, tile, t0))
        return out

    def ways(self, load: EngineLoad, row: Any, c0: int) -> dict[str, dict[str, float]]:
        """Engine cycles of `row op vector` by each way it can be done."""
        cs = row.shape[1]
        ways = {"vector": {"vector": load.vector_tensor_cycles(cs, row, self.sbuf)}}
        if load.gpsimd_helps():
            ways["gpsimd"] = {"gpsimd": load.gpsimd_tensor_cycles(cs, row, self.sbuf)}
        if self.psum:  # one tensor_tensor per PSUM tile the columns cross
            pieces = [load.vector_tensor_cycles(b - a, row, tile) for a, b, tile, _ in self._pieces(c0, cs)]
            ways["psum"] = {"vector": sum(pieces)}
        return ways

    def apply(self, row: Any, c0: int, op: Any, how: str) -> None:
        """In place: row [p, cs] <- row op vector[c0 : c0 + cs]."""
        p, cs = row.shape
        if how != "psum":
            engine = getattr(nisa, how + "_engine")
            nisa.tensor_tensor(dst=row, data1=row, data2=self.sbuf[:p, c0 : c0 + cs], op=op, engine=engine)
            return
        for a, b, tile, t0 in self._pieces(c0, cs):  # PSUM tiles are one bank (512 fp32) each
            piece = row[:, a - c0 : b - c0]
            nisa.tensor_tensor(dst=piece, data1=piece, data2=tile[:p, a - t0 : b - t0], op=op)


def _choose_steps(
    load: EngineLoad,
    first: dict[str, dict[str, float]],
    vectors: list[dict[str, dict[str, float]]],
    fused: dict[str, float] | None = None,
) -> tuple[str, tuple[str, ...]]:
    """Pick how to do the per-row step (`first`: way -> engine cycles) and each vector step after it,
    or the `fused` single instruction, by EngineLoad.choose over every combination."""
    combos: list[tuple[str, tuple[str, ...], dict[str, float]]] = []
    # GpSimd (slow per instruction) only for the last step: nothing on another engine then waits for it
    choices = [[h for h in w if h != "gpsimd" or i == len(vectors) - 1] for i, w in enumerate(vectors)]
    for name, cycles in first.items():
        for hows in itertools.product(*choices):
            total = dict(cycles)
            for ways, how in zip(vectors, hows):
                for engine, c in ways[how].items():
                    total[engine] = total.get(engine, 0.0) + c
            combos.append((name, hows, total))
    if fused is not None:
        combos.append(("fused", (), fused))
    name, hows, _ = combos[load.choose(*(c for _, _, c in combos))]
    return name, hows


def _rsqrt(data: Any, scale: float, eps: float) -> Any:
    """(data * scale + eps) ** -0.5 for per-row statistics [p, k], on VectorE.

    VectorE, not ScalarE's rsqrt: this waits on the block's statistics, and in ScalarE's in-order queue
    it would also wait behind the next block's squares (see _stream.skewed).
    """
    t = nl.ndarray(tuple(data.shape), nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=t, data=data, op0=nl.multiply, operand0=scale, op1=nl.add, operand1=eps)
    nisa.tensor_scalar(dst=t, data=t, op0=nl.power, operand0=-0.5)
    return t


def _normalize(x: Any, norm: Any, vectors: list[Any]) -> Any:
    """Shared driver: statistics per row, then each row normalised in place and stored."""
    out = nl.ndarray(tuple(x.shape), x.dtype, buffer=nl.shared_hbm)
    d = x.shape[-1]
    present = [v for v in vectors if v is not None]
    vec_bytes = sum(d * v.itemsize for v in present)
    plan = plan_rows(x, x.itemsize, vec_bytes)
    # gamma / beta stay in SBUF (broadcast to every partition once) unless they take more than half of it
    keep = plan.resident or vec_bytes <= sbuf_bytes_per_partition() * SBUF_SHARE / 2
    if not plan.resident:  # rows stream through twice, with their gamma / beta chunks if those are not kept
        plan = plan_rows(x, x.itemsize + (0 if keep else sum(v.itemsize for v in present)), vec_bytes * keep)
    out2 = out.reshape((plan.rows, plan.cols))
    load = EngineLoad()
    n_chunks = len(plan.chunks)

    # Kept vectors keep their PSUM copies too while PSUM has room (one bank is left for the next broadcast).
    resident: list[_RowVector | None] = []
    banks_free = core().psum.banks - 1
    for v in vectors:
        rv = None
        if v is not None and keep:
            banks = -(-d // psum_fmax())
            rv = _RowVector(v, pmax(), keep_psum=banks <= banks_free)
            banks_free -= banks if rv.psum else 0
        resident.append(rv)

    if plan.resident:

        def statistics(block: tuple[Any, Any]) -> Any:
            b, xt = block
            stats = norm.new_stats(b.p, b.k, plan.chunks, x.dtype)
            for c, (c0, cs) in enumerate(plan.chunks):
                norm.accumulate(xt[:, :, c0 : c0 + cs], stats, c, load)
            return stats

        def normalise(block: tuple[Any, Any], stats: Any) -> None:
            b, xt = block
            params = norm.finish(stats)  # issued here: it waits on this block's statistics
            for c0, cs in plan.chunks:
                for j in range(b.k):
                    norm.apply(xt[:, j, c0 : c0 + cs], params, j, resident, c0, load)
                store_chunk(out2, b, c0, cs, xt[:, :, c0 : c0 + cs])

        skewed(prefetch(plan.blocks, lambda b: load_block(plan, b), plan.depth), statistics, normalise, plan.skew)
        return out

    # Rows longer than SBUF holds: pass 1 streams the chunks for the statistics, pass 2 streams them again
    # (with the matching gamma / beta chunks) and normalises.
    items = [(b, pas, c) for b in plan.blocks for pas in (1, 2) for c in range(n_chunks)]

    def load_item(item: tuple[Any, int, int]) -> Any:
        b, _, c = item
        return load_chunk(plan, b, *plan.chunks[c])

    stats: Any = None
    params: Any = None
    for (b, pas, c), t in prefetch(items, load_item, plan.depth):
        c0, cs = plan.chunks[c]
        if pas == 1:
            if c == 0:
                stats = norm.new_stats(b.p, 1, plan.chunks, x.dtype)
            norm.accumulate(t, stats, c, load)
            if c == n_chunks - 1:
                params = norm.finish(stats)
            continue
        if keep:
            norm.apply(t[:, 0, :], params, 0, resident, c0, load)
        else:
            vs = [None if v is None else _RowVector(v[c0 : c0 + cs], b.p, keep_psum=False) for v in vectors]
            norm.apply(t[:, 0, :], params, 0, vs, 0, load)
        store_chunk(out2, b, c0, cs, t)
    return out

"""Block sizes of the library GEMM, chosen from the target core's SBUF, PSUM, TensorE and DMA numbers.

The GEMM computes out[R, C] = S[R, K] @ V[K, C]. S is the stationary side: its rows become PSUM
partitions, 128 per tile, and they are taken in strips of a few tiles whose transposed k-tiles stay in
SBUF while every V block streams past them. V is the moving side, up to 512 columns per matmul, taken
in blocks of a few 512-column sub-tiles. Each (strip, V block) accumulates over all of K in PSUM, one
bank per [128, 512] fp32 tile, so strip height x block width is bounded by the PSUM banks left over
after the two banks the on-chip transposes double-buffer through.

What the blocking changes is DMA traffic: S is read once, V once per strip (or once in all, when it
fits in SBUF and stays resident), and every DMA holds its queues as the ISA says (isa/cost.py): its
partitions split over ceil(P/8) queues, each piece running at the efficiency of its contiguous row length
but holding its queue at least the per-transfer overhead. So few, large DMAs (wide V blocks, long S
chunks) are cheaper than many small ones moving the same bytes. TensorE work is the same for every plan.
So the planner walks the candidate (strip height, block width, K chunk, V resident) choices, drops
those that overflow SBUF, and keeps the one with the smallest estimate of max(TensorE time, DMA time)
+ pipeline fill and drain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost import (
    CostArgs,
    compute_cycles,
    dma_queue_occupancy_ns,
    dma_queue_pieces,
    dma_transfer_ns,
    steady_rate,
)
from trnsim.isa.opcodes import Engine, Opcode


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class GemmProblem:
    """Shape and dtype facts of out[R, C] = S[R, K] @ V[K, C] that the blocking depends on."""

    rows: int  # R: S rows, the output's partition dim
    cols: int  # C: V columns
    k: int
    in_bytes: int
    out_bytes: int
    v_row_major: bool  # V is stored [C, K] and made into k-tiles by transposes (linear's x)
    double_row: bool  # fp8 double-row matmuls: 256 rows of K per step
    fp32: bool  # fp32 matmuls (4x TensorE time)
    jobs: int = 1  # independent problems of this shape (batched matmul)


@dataclass(frozen=True)
class GemmPlan:
    strip_tiles: int  # 128-row S tiles per strip
    v_block: int  # V columns per block (a multiple of 512, or all of C)
    k_chunk: int  # K elements per DMA of a row-major operand (a multiple of the k-step)
    v_resident: bool  # V k-tiles stay in SBUF across strips (loaded or transposed once)
    dma_ahead: int  # k-steps the DMA loads run ahead of the matmuls
    tail_growth: float  # the last chunks shrink by this factor each (see _gemm._chunk_map)
    acc_sets: int  # PSUM accumulator sets used in turn (2 when the banks allow)
    transient_banks: int  # PSUM banks left for transposes (see _evacuate)
    transpose_ahead: int  # k-steps the on-chip transposes run ahead of the matmuls
    sbuf_bytes: int  # estimated SBUF use per partition
    estimate_ns: float  # estimated kernel time
    v_group: int = 1  # k-steps of a K-major V loaded per DMA (one transfer per queue piece for them all)


# Bytes per contiguous row the on-chip-transpose loads may use: longer rows run closer to the DMA
# queue's peak but need more SBUF for the chunks in flight.
_CHUNK_ROW_BYTES = (1024, 2048, 4096, 8192, 16384)
# SBUF kept free for the epilogue's constants (bias columns, identity, residual rows).
_SBUF_RESERVE_BYTES = 16 * 1024
# PSUM banks the transposes at least rotate through (_evacuate); the rest hold matmul accumulators.
_TRANSPOSE_BANKS = 2
# Fraction of the shorter of TensorE and DMA time the estimate charges for imperfect overlap, so that
# among plans TensorE hides equally well the one with more DMA headroom wins.
_OVERLAP_LOSS = 0.1
# Time from a TensorE transpose to the matmul that reads its copy in SBUF, in ns.
_ROUND_TRIP_NS = 600.0
# k-steps of a K-major V per DMA the planner tries: a [128, v_block] k-tile alone is near the per-transfer
# overhead's knee (8 rows x v_block per queue piece), several in one DMA move the same bytes in fewer transfers.
_V_GROUPS = (1, 2, 4, 8)


def v_group_slots(dma_ahead: int, v_group: int, ksteps: int) -> int:
    """Grouped V tiles a streaming V ring needs at most: groups touched by the steps loaded ahead plus the
    two being read (a group is loaded at once when its first step is due), where every block of `ksteps`
    k-steps in that window may end in a short group of its own."""
    window = dma_ahead + 2
    return _cdiv(window, v_group) + _cdiv(window, ksteps) + 1


def staging_cols(dma_ahead: int, transpose_ahead: int, kstep: int, k_chunk: int) -> int:
    """Columns per 128-row tile of a row-major operand's staging ring: the chunks loaded ahead of the
    transposes (dma_ahead - transpose_ahead k-steps), the partly read chunk at each end of that window,
    and a chunk's width lost when one wraps around the end of the ring."""
    return max(0, dma_ahead - transpose_ahead) * kstep + 3 * k_chunk


def strip_sets(ksteps: int, v_blocks: int, transpose_ahead: int) -> int:
    """Sets of a strip's transposed k-tiles used in turn when several V blocks reuse them: strip s + n
    overwrites set s's tile kk transpose_ahead steps before its first V block reaches kk, which must
    come after strip s's last V block has read it."""
    return ((v_blocks - 1) * ksteps + transpose_ahead) // (v_blocks * ksteps) + 1


def defer_steps(transpose_ahead: int) -> int:
    """k-steps work is deferred by (stores, and TensorE work that waits on another engine): long enough
    for the work it waits on, queued behind the transposes' copies, to be done when it issues."""
    return 2 * transpose_ahead + 2


def blocks_in_flight(dma_ahead: int, transpose_ahead: int, ksteps: int) -> int:
    """How many blocks' epilogue buffers can be in use at once: a block's residual rows are loaded
    dma_ahead steps before it starts, and its results are read until its twice-deferred stores issue."""
    return _cdiv(dma_ahead + 2 * defer_steps(transpose_ahead), max(1, ksteps)) + 2


def plan_gemm(p: GemmProblem, core: CoreSpec) -> GemmPlan:
    pmax = int(core.sbuf.partitions)
    fmax = int(core.psum.bank_bytes // 4)  # fp32 accumulator columns per bank
    acc_banks = max(1, int(core.psum.banks) - _TRANSPOSE_BANKS)
    kstep = 2 * pmax if p.double_row else pmax
    row_tiles = _cdiv(p.rows, pmax)
    best: GemmPlan | None = None
    for mt in range(1, min(acc_banks, row_tiles) + 1):
        for nb in range(1, acc_banks // mt + 1):
            if (nb - 1) * fmax >= p.cols:
                break
            v_block = min(p.cols, nb * fmax)
            for row_bytes in _CHUNK_ROW_BYTES:
                k_chunk = min(_cdiv(p.k, kstep) * kstep, max(kstep, row_bytes // p.in_bytes // kstep * kstep))
                for v_resident in (False, True):
                    # grouped V loads: K-major V (not linear's x) in plain k-steps (not double-row)
                    for v_group in _V_GROUPS if not (p.v_row_major or p.double_row) else (1,):
                        plan = _evaluate(p, core, mt, v_block, k_chunk, v_resident, kstep, v_group)
                        if plan is None:
                            continue
                        if best is None or (plan.estimate_ns, plan.sbuf_bytes) < (best.estimate_ns, best.sbuf_bytes):
                            best = plan
    if best is None:  # nothing fits the estimate's budget: the smallest blocking, and let allocation decide
        k_chunk = kstep
        best = GemmPlan(1, min(p.cols, fmax), k_chunk, False, 2, 2.0, 1, int(core.psum.banks) - 1, 1, 0, 0.0)
    return best


def _evaluate(
    p: GemmProblem,
    core: CoreSpec,
    mt: int,
    v_block: int,
    k_chunk: int,
    v_resident: bool,
    kstep: int,
    v_group: int = 1,
) -> GemmPlan | None:
    pmax = int(core.sbuf.partitions)
    row_tiles = _cdiv(p.rows, pmax)
    strips = _cdiv(row_tiles, mt)
    if v_resident and strips == 1:
        return None  # nothing to reuse
    v_blocks = _cdiv(p.cols, v_block)
    k_tiles = _cdiv(p.k, pmax)
    ksteps = _cdiv(p.k, kstep)
    chunk_steps = max(1, k_chunk // kstep)
    t = core.tensor
    mf = int(t.moving_fmax)
    # Cycle counts come from the ISA's cost model, never recomputed here.
    transpose_cycles = compute_cycles(Opcode.NC_TRANSPOSE, Engine.TENSOR, core, CostArgs(n=pmax, p=pmax))

    def matmul_cycles(n_moving: int) -> float:
        args = CostArgs(n_stationary=pmax, n_moving=n_moving, fp32_matmul=p.fp32)
        return compute_cycles(Opcode.NC_MATMUL, Engine.TENSOR, core, args)

    # Transposes run far enough ahead to cover a transpose -> PSUM copy -> matmul round trip (~0.6 us:
    # the copy and two pipeline latencies), counted in this plan's k-steps of TensorE work.
    step_cycles = int(mt * (_cdiv(v_block, mf) * matmul_cycles(min(v_block, mf)) + transpose_cycles))
    transpose_ahead = min(16, max(2, _cdiv(int(_ROUND_TRIP_NS * t.clock_ghz), step_cycles) + 1))
    dma_ahead = max(4, 2 * chunk_steps, chunk_steps + transpose_ahead)
    strip_rows = min(p.rows, mt * pmax)
    ib, ob = p.in_bytes, p.out_bytes

    # SBUF per partition, as _gemm allocates it: the strip's transposed k-tiles (all of K, in one or two
    # sets, when several V blocks reuse them; else a few in turn), the staging rings of the row-major
    # operands, V's tiles (all of V when resident, else a few in turn) and the output staging.
    g = 2 if p.double_row else 1
    if v_blocks > 1:
        s_bytes = ksteps * strip_sets(ksteps, v_blocks, transpose_ahead) * g * strip_rows * ib
    else:
        s_bytes = (transpose_ahead + 2) * g * strip_rows * ib
    stage = staging_cols(dma_ahead, transpose_ahead, kstep, k_chunk) * ib
    s_bytes += min(mt, row_tiles) * stage
    if v_group > 1 and ksteps < 2 * v_group:
        return None  # too few k-steps to group
    if v_resident:
        v_bytes = _cdiv(p.cols, v_block) * _cdiv(ksteps, v_group) * v_group * g * v_block * ib
        v_bytes *= 2 if p.jobs > 1 else 1  # the next job's V loads while this job's is still held
    elif v_group > 1:
        v_bytes = v_group_slots(dma_ahead, v_group, ksteps) * v_group * v_block * ib
    else:
        v_bytes = (dma_ahead + 2) * g * v_block * ib
    if p.v_row_major:
        v_bytes += _cdiv(v_block, pmax) * stage
    depth = blocks_in_flight(dma_ahead, transpose_ahead, ksteps)
    if p.v_row_major:  # linear: activation results, transposed-back rows, residual rows (fp32 at most)
        tokens = _cdiv(v_block, pmax)
        ys = mt * _cdiv(v_block, mf) * min(v_block, mf) * 4
        out_bytes = depth * (ys + tokens * strip_rows * (p.out_bytes + 4))
    else:  # matmul: each block's rows, cast
        out_bytes = depth * min(mt, row_tiles) * v_block * p.out_bytes
    sbuf = s_bytes + v_bytes + out_bytes + _SBUF_RESERVE_BYTES
    if sbuf > core.sbuf.partition_bytes:
        return None

    # Compute. TensorE: matmuls (the same for every blocking) and the transposes of S (and of V, once).
    mm_cycles = ksteps * row_tiles * _cdiv(p.cols, mf) * matmul_cycles(min(p.cols, mf))
    tr_cycles = row_tiles * k_tiles * transpose_cycles
    if p.v_row_major:
        tr_cycles += _cdiv(p.cols, pmax) * k_tiles * transpose_cycles
    tensor_ns = (mm_cycles + tr_cycles) / t.clock_ghz
    # VectorE / ScalarE: copying the transposes and the accumulators out of PSUM at the ISA's rates of a
    # tensor_copy (VectorE) and an activation copy (ScalarE), on both at once unless they share a PSUM port.
    shared_port = any({"vector", "scalar"} <= set(grp) for grp in core.psum_exclusive_engines)
    from_psum = CostArgs(p=pmax, sbuf_only=False, psum_input=True)
    for_16bit = steady_rate(core, Opcode.TENSOR_COPY, Engine.VECTOR, replace(from_psum, all_bf16=ib == 2))
    vec_rate = steady_rate(core, Opcode.TENSOR_COPY, Engine.VECTOR, from_psum)
    sca_rate = steady_rate(core, Opcode.ACTIVATION, Engine.SCALAR, from_psum)
    copy_rate = max(for_16bit, sca_rate) if shared_port else for_16bit + sca_rate
    acc_rate = max(vec_rate, sca_rate) if shared_port else vec_rate + sca_rate
    transposed = (row_tiles + (_cdiv(p.cols, pmax) if p.v_row_major else 0)) * k_tiles * pmax
    evac_ns = transposed / copy_rate + row_tiles * p.cols / acc_rate
    compute_ns = max(tensor_ns, evac_ns)

    # DMA: each transfer of `rows` partitions x `part_bytes` (in contiguous runs of `run_bytes`) splits into
    # pieces over the queues; each piece holds its queue for its data time, at least the per-transfer
    # overhead (the ISA's rules, isa/cost.py). Time = queue busy time of all transfers / queues.
    d = core.dma

    def dma_ns(nbytes: float, rows: int, part_bytes: int, run_bytes: int | None = None) -> float:
        rows = max(1, min(rows, pmax))
        pieces = dma_queue_pieces(core, rows)
        per_piece = rows * part_bytes / pieces
        data = dma_transfer_ns(d, per_piece, run_bytes or part_bytes, d.queue_bytes_per_ns)
        transfers = nbytes / (rows * part_bytes)
        return transfers * pieces * dma_queue_occupancy_ns(d, data) / d.queues

    # Per strip: its share of TensorE work against its DMA: its S rows, its output, and V (every strip
    # when V streams; only the first when V stays resident, which makes strip 0 the heavy one).
    s_read = dma_ns(p.rows * p.k * ib, p.rows, k_chunk * ib)
    out_write = dma_ns(p.rows * p.cols * ob, p.rows, v_block * ob)
    v_row = v_block * ib
    v_all = p.k * p.cols * ib
    k_rows = kstep // g  # partitions of a V k-tile (g K rows each)
    if p.v_row_major:
        v_first = dma_ns(v_all, p.cols, k_chunk * ib)
        # strip 0 writes the transposed V back for the later strips to read (unless it stays resident)
        v_later = 0.0 if v_resident or strips == 1 else dma_ns(v_all, k_rows, g * v_row, v_row)
        v_first += v_later
    else:
        v_first = dma_ns(v_all, k_rows, v_group * g * v_row, v_row)
        v_later = 0.0 if v_resident else v_first
    # The kernel's last chunks shrink towards one k-step so little compute is left after the last load;
    # each may shrink only as fast as compute is faster than DMA, or compute falls a chunk behind.
    dma_all = s_read + out_write + v_first + v_later * (strips - 1)
    tail_growth = min(2.0, max(1.08, 0.95 * dma_all / compute_ns))
    total = 0.0
    for si in range(strips):
        share = (row_tiles // strips + (1 if si < row_tiles % strips else 0)) / row_tiles
        t_strip = compute_ns * share
        d_strip = (s_read + out_write) * share + (v_first if si == 0 else v_later)
        # Overlap is never perfect: charge a little of the shorter side too.
        total += max(t_strip, d_strip) + _OVERLAP_LOSS * min(t_strip, d_strip)

    # Fill (the first chunk of S and the first V tile) and drain (the last block's stores).
    # (the first chunks ramp up from one k-step, so the fill does not grow with k_chunk).
    fill = dma_ns(strip_rows * kstep * ib, strip_rows, kstep * ib)
    fill += dma_ns(v_group * kstep * v_row, k_rows, v_group * g * v_row, v_row)
    drain = dma_ns(strip_rows * v_block * ob, strip_rows, v_block * ob)
    est = p.jobs * total + fill + drain + 2 * d.fixed_latency_ns
    # PSUM: the accumulators, twice over if that leaves the transposes their two banks; the rest for those.
    banks = int(core.psum.banks)
    n_acc = min(mt, row_tiles) * _cdiv(v_block, mf)
    acc_sets = 2 if 2 * n_acc + _TRANSPOSE_BANKS <= banks else 1
    transient = banks - acc_sets * n_acc
    return GemmPlan(
        mt,
        v_block,
        k_chunk,
        v_resident,
        dma_ahead,
        tail_growth,
        acc_sets,
        transient,
        transpose_ahead,
        sbuf,
        est,
        v_group,
    )

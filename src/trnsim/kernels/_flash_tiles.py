"""Flash attention's tiles and the instructions of each step (attention.py places them in the pipeline).

Layouts: a query tile keeps Q^T [D, 128 queries] (the scores' stationary); a KV head keeps K^T [D, keys] (the
scores' moving) and V [128 keys, blocks, D + 1] (one key per partition, the P V moving; column D is ones, so
the P V matmul also sums each row of P); scores S [128 queries, 512 keys] are one PSUM bank; P^T [128 keys,
128 queries] per key block is the P V stationary; O [128 queries, D + 1] accumulates in PSUM, its column D the
softmax's running row sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import cdiv, pmax, psum_fmax
from trnsim.kernels._online_softmax import OnlineSoftmax

# Added to the scores of future keys on the causal diagonal: exp() of it underflows to exactly 0, and it is
# finite in bf16, so the mask matmul never forms 0 * inf.
MASK_VALUE = -30000.0


@dataclass
class Plan:
    """Shapes and tile sizes of one flash_attention call."""

    batch: int
    heads: int
    kv_heads: int
    s_q: int
    s_kv: int
    d: int
    causal: bool
    scale: float
    dtype: Any
    p: int  # partitions: queries per tile, keys per P^T block
    kb: int  # keys per score block (one PSUM bank of fp32)
    g: int = 1  # score blocks per unit
    mode: str = "stream"  # "prefetch", "resident" or "stream": where K^T and V live
    q_block_tiles: int = 1  # query tiles per QBlock (Q loaded in one DMA)
    store_tiles: int = 1  # finished query tiles of a QBlock stored per DMA (attention_plan.store_tiles)
    evac_on_scalar: float = 0.0  # share of the P^T copies given to ScalarE, the rest to VectorE
    mask_on_vector: bool = False  # causal mask added by VectorE (mask_scores), else by a TensorE matmul
    transposed: bool = False  # the transposed-scores variant (attention_transposed.py)
    dma_share: float = 0.0  # share of units whose P^T the DMA engines transpose (attention_dma_transpose.py)
    rescale_on_vector: float = 0.0  # share of the O rescales given to VectorE, the rest to ScalarE
    dma_load_t: bool = False  # Q^T and K^T loaded by the DMA engines' HBM -> SBUF transpose (NeuronCore-v3+)

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    def key_end(self, q0: int, rows: int) -> int:
        """One past the last key the query tile [q0, q0 + rows) attends to."""
        return min(self.s_kv, q0 + rows) if self.causal else self.s_kv


def block_rows(t: Any, b: int, h: int, r0: int, n: int) -> Any:
    """Rows r0 + i * P + p of t[b, h] ([B, H, S, D] in HBM) seen as [P, n, D]: row p of block i at [p, i]."""
    p, (_, heads, s, d) = pmax(), t.shape
    return t.ap([[d, p], [p * d, n], [1, d]], offset=((b * heads + h) * s + r0) * d)


def copy_blocks(tile: Any, t: Any, b: int, h: int, r0: int, rows: int, way: str) -> None:
    """Rows [r0, r0 + rows) of t[b, h] <-> SBUF `tile` [P, blocks, D] (row r0 + i * P + p at [p, i]): the
    full blocks in one DMA, a ragged last block in a second. Each DMA holds every queue it spans for at
    least the per-transfer overhead, so one DMA for many blocks beats one per block."""
    p = pmax()
    full, ragged = divmod(rows, p)
    pairs = [(tile[:, :full, :], block_rows(t, b, h, r0, full))] if full else []
    if ragged:
        r = r0 + full * p
        pairs.append((tile[:ragged, full, :], t[b, h, r : r + ragged, :]))
    for sbuf, hbm in pairs:
        if way == "load":
            nisa.dma_copy(dst=sbuf, src=hbm)
        else:
            nisa.dma_copy(dst=hbm, src=sbuf)


class KV:
    """K^T [D, keys] and V [128 keys, blocks, D + 1] of keys [lo, hi) of one KV head, in SBUF.

    V's column D is ones: P V then yields rowsum(P) in O's column D, accumulated and rescaled with O, which
    takes the row sums off ScalarE's exp (no reduce_res) and the running sum off the small-ops engine.
    """

    def __init__(self, plan: Plan, k: Any, v: Any, b: int, g: int, lo: int, hi: int, defer_v: bool = False) -> None:
        """Issue the loads: natural layout, one key per partition (a DMA row is one key's D elements). With
        `defer_v` V's load waits for transpose_k, so loads issued in between (the first Q) go first."""
        self.plan, self.lo, self.hi = plan, lo, hi
        p, d = plan.p, plan.d
        nblk = cdiv(hi - lo, p)
        self.blocks = [(lo + j * p, min(p, hi - lo - j * p)) for j in range(nblk)]  # (first key, keys)
        self.v = nl.ndarray((p, nblk, d + 1), plan.dtype, buffer=nl.sbuf)
        nisa.memset(dst=self.v[:, :, d : d + 1], value=1.0, engine=nisa.gpsimd_engine)
        self.kt: Any = None
        self.k_rows: Any = None
        if plan.dma_load_t:  # K^T straight from HBM: one DMA transpose, no TensorE transposes or copies
            self.kt = nl.ndarray((p, hi - lo), plan.dtype, buffer=nl.sbuf)
            nisa.dma_transpose(dst=self.kt[:d, :], src=k[b, g, lo:hi, :])
        else:
            self.k_rows = nl.ndarray((p, nblk, d), plan.dtype, buffer=nl.sbuf)
            copy_blocks(self.k_rows, k, b, g, lo, hi - lo, "load")
        self.v_source: Any = (v, b, g)
        if not defer_v:
            self.load_v()

    def load_v(self) -> None:
        if self.v_source is not None:
            v, b, g = self.v_source
            copy_blocks(self.v[:, :, : self.plan.d], v, b, g, self.lo, self.hi - self.lo, "load")
            self.v_source = None

    def transpose_k(self) -> None:
        """K^T on TensorE, 128 keys at a time into a PSUM bank, copied out by VectorE a bank at a time (V's
        load, where deferred, is issued here; with dma_load_t K^T is already loading)."""
        self.load_v()
        plan = self.plan
        if plan.dma_load_t:
            return
        p, d, kb = plan.p, plan.d, plan.kb
        self.kt = nl.ndarray((p, self.hi - self.lo), plan.dtype, buffer=nl.sbuf)
        per_bank = kb // p
        for c0 in range(0, len(self.blocks), per_bank):
            chunk = self.blocks[c0 : c0 + per_bank]
            stage = nl.ndarray((p, kb), plan.dtype, buffer=nl.psum)
            for jj, (_, wk) in enumerate(chunk):
                nisa.nc_transpose(dst=stage[:d, jj * p : jj * p + wk], data=self.k_rows[:wk, c0 + jj, :])
            width = sum(wk for _, wk in chunk)
            off = chunk[0][0] - self.lo
            nisa.tensor_copy(dst=self.kt[:d, off : off + width], src=stage[:d, :width])
        self.k_rows = None  # the natural-layout copy is no longer needed

    def block_index(self, key: int) -> int:
        return (key - self.lo) // self.plan.p


class ORing:
    """O accumulators [128, D + 1] of consecutive query tiles: slots in PSUM banks, reused round-robin.

    One allocation per bank, so the dependency tracking sees a slot's reuse wait for its previous tile's last
    read; at least `slots` slots (a slot never spans two banks).
    """

    def __init__(self, plan: Plan, slots: int) -> None:
        self.width = plan.d + 1
        per_bank = psum_fmax() // self.width
        self.banks = [
            nl.ndarray((plan.p, psum_fmax()), nl.float32, buffer=nl.psum) for _ in range(cdiv(slots, per_bank))
        ]
        self.slots = per_bank * len(self.banks)
        self.per_bank = per_bank
        self.next = 0

    def take(self) -> Any:
        slot = self.next % self.slots
        self.next += 1
        bank, i = divmod(slot, self.per_bank)
        return self.banks[bank][:, i * self.width : (i + 1) * self.width]


class StageRing:
    """Q^T transposes' PSUM staging: the next free columns of one bank set aside for them, in turn.

    A stage allocated per transpose could land on PSUM a later P^T transpose also takes, which would then
    wait for the Q^T copy to finish reading it; in their own bank, stages are reused only after a full turn.
    """

    def __init__(self, plan: Plan) -> None:
        self.bank = nl.ndarray((plan.p, psum_fmax()), nl.float32, buffer=nl.psum)
        self.view = self.bank.view(plan.dtype)
        self.cols = self.view.shape[1]
        self.pos = 0

    def take(self, cols: int) -> Any:
        if self.pos + cols > self.cols:
            self.pos = 0
        self.pos += cols
        return self.view[:, self.pos - cols : self.pos]


@dataclass
class Rings:
    """The PSUM a query tile takes from rotating pools: its O accumulator and its Q^T staging."""

    o: ORing
    q_stage: StageRing


class QBlock:
    """Consecutive query tiles [q0, q0 + rows) of one head: their Q loaded in one DMA when the first of them
    starts (or earlier: when the previous block's middle tile starts, so a large DMA is not waited for), their
    results staged in SBUF and stored in one DMA when the last of them finishes."""

    def __init__(self, plan: Plan, b: int, h: int, q0: int, rows: int) -> None:
        self.plan, self.b, self.h, self.q0, self.rows = plan, b, h, q0, rows
        self.tiles = cdiv(rows, plan.p)
        self.done = [False] * self.tiles
        self.stored = 0  # tiles [0, stored) have been stored
        self.q: Any = None  # [P, tiles, D] (row q0 + i * P + p at [p, i]), or Q^T [D, rows] with dma_load_t
        self.res: Any = None
        self.next: QBlock | None = None  # the block whose Q this one's start prefetches
        self.loaded = False

    def load(self, q: Any, prefetch: bool) -> None:
        """Load this block's Q (if not yet), and with `prefetch` the next block's."""
        for block in (self, self.next if prefetch else None):
            if block is not None and not block.loaded:
                plan = self.plan
                shape = (plan.p, block.tiles, plan.d)
                block.res = nl.ndarray(shape, plan.dtype, buffer=nl.sbuf)
                if plan.dma_load_t:  # Q^T of the block's rows in one HBM -> SBUF DMA transpose
                    block.q = nl.ndarray((plan.p, block.tiles * plan.p), plan.dtype, buffer=nl.sbuf)
                    rows = q[block.b, block.h, block.q0 : block.q0 + block.rows, :]
                    nisa.dma_transpose(dst=block.q[: plan.d, : block.rows], src=rows)
                else:
                    block.q = nl.ndarray(shape, plan.dtype, buffer=nl.sbuf)
                    copy_blocks(block.q, q, block.b, block.h, block.q0, block.rows, "load")
                block.loaded = True

    def finished(self, out: Any, index: int) -> None:
        """Tile `index` has its result in `res`. Finished tiles are stored in runs of plan.store_tiles (the
        rest with the last tile): one DMA for the whole block would hold every queue for its whole transfer
        at once, and the DMA transposes queued behind it (FIFO) would stall TensorE."""
        self.done[index] = True
        end = self.stored
        while end < self.tiles and self.done[end]:
            end += 1
        step = self.plan.store_tiles
        while end - self.stored >= step or (end == self.tiles and self.stored < end):
            t1 = min(end, self.stored + step) if end < self.tiles else end
            p = self.plan.p
            rows = min(self.rows, t1 * p) - self.stored * p
            copy_blocks(self.res[:, self.stored : t1, :], out, self.b, self.h, self.q0 + self.stored * p, rows, "store")
            self.stored = t1
        if self.stored == self.tiles:
            self.q = self.res = None


class QTile:
    """One tile of queries of one head (tile `index` of its QBlock): Q^T, the online-softmax state, O."""

    def __init__(
        self, plan: Plan, block: QBlock, index: int, rings: Rings, softmax: type[OnlineSoftmax] = OnlineSoftmax
    ) -> None:
        self.plan, self.block, self.index = plan, block, index
        self.b, self.h = block.b, block.h
        self.q0 = block.q0 + index * plan.p
        self.rows = min(plan.p, block.q0 + block.rows - self.q0)
        self.o = rings.o.take()  # [128, D + 1] fp32 in PSUM: O and, in column D, the row sums
        self.stages = rings.q_stage
        self.softmax = softmax(self.rows, plan.scale, plan.dtype, sum_column=plan.d, packed=True)
        self.qt: Any = None
        self.o_written = False
        self.units = 0  # units issued so far

    def load(self, q: Any) -> None:
        """The block's Q; halfway through the block, the next block's too (well before it is needed, and
        after the first group's V, which is loaded when its K is transposed)."""
        self.block.load(q, prefetch=self.index == self.block.tiles // 2)

    def transpose_q(self) -> None:
        """Q^T on TensorE through PSUM, copied out by VectorE (with dma_load_t: the block's Q^T columns)."""
        plan = self.plan
        p, d, rows = plan.p, plan.d, self.rows
        if plan.dma_load_t:
            self.qt = self.block.q[:, self.index * p : self.index * p + p]
            return
        stage = self.stages.take(p)
        nisa.nc_transpose(dst=stage[:d, :rows], data=self.block.q[:rows, self.index, :])
        self.qt = nl.ndarray((p, p), plan.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=self.qt[:d, :rows], src=stage[:d, :rows])

    def result(self) -> Any:
        """Where this tile's output rows go: [P, D] of the block's staging tile."""
        return self.block.res[:, self.index, :]


@dataclass
class Consts:
    identity: Any  # [128, 128] bf16
    mask: Any  # [128, 128] bf16: 0 where key <= query, MASK_VALUE above the diagonal
    transposed: Any = None  # attention_transposed.TransposedConsts, for that variant


def constants(p: int) -> Consts:
    """Identity and causal-mask tiles, generated on GpSimd with affine_select (value = partition - column)."""
    ones = nl.ndarray((p, p), nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(dst=ones, value=1.0)
    identity = nl.ndarray((p, p), nl.bfloat16, buffer=nl.sbuf)
    nisa.affine_select(
        dst=identity, pattern=[[-1, p]], channel_multiplier=1, on_true_tile=ones, on_false_value=0.0, cmp_op=nl.equal
    )
    zeros = nl.ndarray((p, p), nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(dst=zeros, value=0.0)
    mask = nl.ndarray((p, p), nl.bfloat16, buffer=nl.sbuf)
    nisa.affine_select(
        dst=mask,
        pattern=[[-1, p]],
        channel_multiplier=1,
        on_true_tile=zeros,
        on_false_value=MASK_VALUE,
        cmp_op=nl.greater_equal,
    )
    return Consts(identity, mask)


def scores(plan: Plan, qt: QTile, kv: KV, consts: Consts, k_lo: int, k_hi: int) -> list[tuple[Any, int]]:
    """TensorE: S = Q K^T for keys [k_lo, k_hi), one PSUM bank per `kb` keys; returns (tile, width) pairs."""
    rows, d = qt.rows, plan.d
    tiles = []
    for c0 in range(k_lo, k_hi, plan.kb):
        w = min(plan.kb, k_hi - c0)
        s = nl.ndarray((plan.p, plan.kb), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(dst=s[:rows, :w], stationary=qt.qt[:d, :rows], moving=kv.kt[:d, c0 - kv.lo : c0 - kv.lo + w])
        diag_lo = max(c0, qt.q0)
        if plan.causal and not plan.mask_on_vector and diag_lo < c0 + w:
            # Keys from q0 on are the diagonal block: add the mask (identity stationary, mask moving).
            nisa.nc_matmul(
                dst=s[:rows, diag_lo - c0 : w],
                stationary=consts.identity[:rows, :rows],
                moving=consts.mask[:rows, : c0 + w - diag_lo],
                accumulate=True,
            )
        tiles.append((s, w))
    return tiles


def mask_scores(plan: Plan, qt: QTile, consts: Consts, tiles: list[tuple[Any, int]], k_lo: int) -> None:
    """VectorE: add the causal mask to the diagonal block of the scores, in PSUM (the plan's alternative to the
    mask matmul in `scores`, where TensorE is the busier engine)."""
    if not plan.causal:
        return
    rows = qt.rows
    for c, (s, w) in enumerate(tiles):
        c0 = k_lo + c * plan.kb
        diag_lo = max(c0, qt.q0)
        if diag_lo < c0 + w:
            view = s[:rows, diag_lo - c0 : w]
            nisa.tensor_tensor(
                dst=view, data1=view, data2=consts.mask[:rows, : c0 + w - diag_lo], op=nl.add, engine=nisa.vector_engine
            )


def transpose_probs(plan: Plan, qt: QTile, probs: Any, k_lo: int, k_hi: int) -> tuple[Any, list[int]]:
    """TensorE: P^T [keys, queries] per 128-key block into one PSUM bank; returns (tile, block widths)."""
    p, rows = plan.p, qt.rows
    widths = [min(p, k_hi - k_lo - j * p) for j in range(cdiv(k_hi - k_lo, p))]
    stage = nl.ndarray((p, len(widths) * p), plan.dtype, buffer=nl.psum)
    for j, wk in enumerate(widths):
        # Score banks are full except the last, so 128-key block j starts at column j * 128 of probs.
        nisa.nc_transpose(dst=stage[:wk, j * p : j * p + rows], data=probs[:rows, j * p : j * p + wk])
    return stage, widths


def copy_out(plan: Plan, qt: QTile, stage: Any, widths: list[int], index: int) -> Any:
    """P^T from PSUM to SBUF (matmuls read SBUF), on VectorE or ScalarE in the plan's proportion."""
    p, rows = plan.p, qt.rows
    nblk = len(widths)
    pt = nl.ndarray((p, nblk * p), plan.dtype, buffer=nl.sbuf)
    full = rows == p and all(wk == p for wk in widths)
    pieces = [(0, nblk)] if full else [(j, j + 1) for j in range(nblk)]  # ragged: copy only what was written
    for i, (j0, j1) in enumerate(pieces):
        wk = min(widths[j0:j1])
        width = (j1 - j0) * p if full else rows
        src = stage[:wk, j0 * p : j0 * p + width]
        dst = pt[:wk, j0 * p : j0 * p + width]
        n = index * len(pieces) + i
        if int((n + 1) * plan.evac_on_scalar) == int(n * plan.evac_on_scalar):
            nisa.tensor_copy(dst=dst, src=src, engine=nisa.vector_engine)
        else:
            nisa.activation(dst=dst, op=nl.copy, data=src)
    return pt


def pv(plan: Plan, qt: QTile, kv: KV, pt: Any, widths: list[int], k_lo: int) -> None:
    """TensorE: O += P V (P^T block stationary, V block moving), accumulating in the tile's PSUM slot."""
    rows = qt.rows
    for j, wk in enumerate(widths):
        nisa.nc_matmul(
            dst=qt.o[:rows, :],
            stationary=pt[:wk, j * plan.p : j * plan.p + rows],
            moving=kv.v[:wk, kv.block_index(k_lo + j * plan.p), :],
            accumulate=qt.o_written,
        )
        qt.o_written = True

"""Decode attention: one new token per sequence attending over its KV cache, sequences of different lengths.

`decode_attention(q, k_cache, v_cache, lengths, scale=None)`: q [B, H, D], k_cache and v_cache
[B, Hkv, S_max, D] (H a multiple of Hkv), lengths [B] -> [B, H, D]; sequence b attends to its first
lengths[b] cache entries. fp32, bf16 or fp16.

`lengths` must be known when the kernel is traced (the simulator traces every call afresh, and the loop
bounds and DMA sizes depend on them): pass a Python sequence of ints (any mode), or an int32 numpy array in
functional mode, whose values are read while tracing. With mode="timing" and TensorSpec arguments, pass a
list.

The kernel is bound by reading the cache from HBM, so it is built around the DMAs:
- K and V are read in blocks of 128 * r keys per KV head with key p * r + j on partition p, slot j, so each
  partition's DMA row is r contiguous keys (r * D * itemsize >= 4 KiB where SBUF allows: ~94% of the DMA
  rate by the descriptor rule), and the next block's loads are issued while the current block computes.
- Attention is order-free over keys, so the permuted order costs nothing: K^T of keys {p * r + j} comes
  from one TensorE transpose of slot j, and the same slot of V meets the matching P^T rows.
- All query heads of a sequence share one score tile: the H / Hkv heads of a KV group are the rows of one
  matmul (stationary Q^T [D, group], moving K^T [D, 512 keys]), groups stacked on partitions, so the softmax
  runs on up to 128 rows at once. The online softmax over key chunks is the one flash attention uses.
- Results wait in SBUF and are stored a wave of row tiles at a time, STORE_LAG steps after the wave's last
  result, so a store rarely waits for its data in an (in-order) DMA queue ahead of the next loads.
On trn2, batch 32 x context 2048 (Llama-3-8B heads) runs at ~92% of the KV-cache roofline, bound by the
DMA queues (bench/kernels_attention.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.kernels._common import (
    cdiv,
    moving_fmax,
    pmax,
    psum_fmax,
    require,
    require_dtype,
    saturating_dma_row_bytes,
)
from trnsim.kernels._common import sbuf_bytes_per_partition as sbuf_bytes
from trnsim.kernels._host_values import host_ints
from trnsim.kernels._online_softmax import OnlineSoftmax
from trnsim.kernels._pipeline import run_pipelined

DECODE_DTYPES = (dtypes.float32, dtypes.bfloat16, dtypes.float16)
# Planner policy, not hardware: bytes per partition kept for everything but K/V blocks and output staging,
# and (per partition) for the results of a wave of row tiles waiting for their stores
SBUF_RESERVE = 48 * 1024
OUT_WAVE_BYTES = 16 * 1024
STORE_LAG = 8  # steps after a wave's last result that its stores are issued, so they do not wait in the
# (in-order) DMA queues ahead of later loads

# (stage, priority) of a chunk's ops, as in _flash_units.SCHEDULE
SCHEDULE = {
    "k_transpose": (0, 0),  # TensorE K^T per KV head into PSUM; VectorE / ScalarE copy it out
    "scores": (1, 0),  # TensorE S = Q K^T, one matmul per KV group
    "rowmax": (2, 0),  # VectorE row max
    "runmax": (2, 2),  # GpSimd running max and alpha
    "exp": (3, 0),  # ScalarE P = exp(S - m) with row sums
    "transpose": (4, 1),  # TensorE P^T per slot of keys
    "rowsum": (4, 1),  # GpSimd l = alpha * l + rowsum(P)
    "evac": (5, 1),  # VectorE P^T PSUM -> SBUF
    "rescale": (6, 2.5),  # ScalarE O *= alpha, before this step's P V
    "pv": (6, 3),  # TensorE O += P V
    "recip": (7, 0),  # VectorE 1 / l after a row tile's last chunk
    "finalize": (8, 2),  # ScalarE O / l into the output staging tile
}


def host_lengths(lengths: Any, batch: int, s_max: int) -> list[int]:
    """The per-sequence lengths as Python ints (see _host_values), checked against the cache."""
    values = host_ints(lengths, "lengths", "decode_attention")
    require(values.shape == (batch,), f"decode_attention: lengths must have shape [{batch}], got {list(values.shape)}")
    out = [int(x) for x in values]
    bad = [x for x in out if not 1 <= x <= s_max]
    require(not bad, f"decode_attention: lengths must be in 1..{s_max} (the cache length), got {bad[:4]}")
    return out


class _Plan:
    def __init__(self, q: Any, k_cache: Any, scale: Any) -> None:
        self.batch, self.heads, self.d = q.shape
        _, self.kv_heads, self.s_max, _ = k_cache.shape
        self.group = self.heads // self.kv_heads
        self.dtype = q.dtype
        self.scale = 1.0 / math.sqrt(self.d) if scale is None else float(scale)
        self.p = pmax()
        self.kb = min(moving_fmax(), psum_fmax())  # keys per score tile (one PSUM bank)
        self.slots_per_chunk = self.kb // self.p
        self.kv_per_tile, self.r_max = self._block_shape()
        self.rows = self.kv_per_tile * self.group

    def _block_shape(self) -> tuple[int, int]:
        """(KV heads per row tile, keys per partition of a K/V block), as large as SBUF allows.

        A block stays live while its chunks pass the pipeline up to their P V, and the next block is loaded
        meanwhile: blocks live = chunks in flight / chunks per block + 2. Rows of the DMA's saturating row size
        (the preset's) come first,
        then as many KV heads per row tile as fit (a divisor of Hkv, so row tiles are alike).
        """
        itemsize = dtypes.resolve(self.dtype).itemsize
        budget = sbuf_bytes() - SBUF_RESERVE - 2 * OUT_WAVE_BYTES
        hold = SCHEDULE["pv"][0] + 1

        def live(r: int) -> int:
            return cdiv(hold, cdiv(r, self.slots_per_chunk) + 1) + 2

        r = max(1, saturating_dma_row_bytes() // (self.d * itemsize))
        per_head = 2 * r * self.d * itemsize * live(r)  # K + V bytes per partition
        fit = min(self.kv_heads, self.p // self.group, max(1, budget // per_head))
        kv = max(n for n in range(1, fit + 1) if self.kv_heads % n == 0)
        while r > 1 and 2 * r * self.d * itemsize * live(r) * kv > budget:
            r -= 1
        return kv, r

    def key_blocks(self, length: int) -> list[tuple[int, int, int]]:
        """(first key, partitions, keys per partition) covering keys [0, length), full blocks evenly sized."""
        p, slots = self.p, length // self.p
        blocks = []
        if slots:
            n = cdiv(slots, self.r_max)
            r = cdiv(slots, n)
            blocks = [(j * p * r, p, min(r, slots - j * r)) for j in range(n)]
        if length > slots * p:
            blocks.append((slots * p, length - slots * p, 1))
        return blocks


class _Block:
    """K and V of keys [k0, k0 + n * r) for the KV heads of a row tile: key k0 + p * r + j at [p, head, j]."""

    def __init__(self, plan: _Plan, b: int, kv0: int, nkv: int, span: tuple[int, int, int]) -> None:
        self.plan, self.b, self.kv0, self.nkv = plan, b, kv0, nkv
        self.k0, self.n, self.r = span
        self.k: Any = None
        self.v: Any = None

    def load(self, k_cache: Any, v_cache: Any) -> None:
        plan, n, r = self.plan, self.n, self.r
        self.k = nl.ndarray((plan.p, self.nkv, r, plan.d), plan.dtype, buffer=nl.sbuf)
        self.v = nl.ndarray((plan.p, self.nkv, r, plan.d), plan.dtype, buffer=nl.sbuf)
        keys = slice(self.k0, self.k0 + n * r)
        for i in range(self.nkv):
            nisa.dma_copy(dst=self.k[:n, i, :, :], src=k_cache[self.b, self.kv0 + i, keys, :])
            nisa.dma_copy(dst=self.v[:n, i, :, :], src=v_cache[self.b, self.kv0 + i, keys, :])


class _LoadUnit:
    """A one-stage pipeline unit that issues a block's loads (placed a block ahead of its compute)."""

    stages = 1

    def __init__(self, block: _Block, caches: tuple[Any, Any]) -> None:
        self.block, self.caches = block, caches

    def ops(self, stage: int) -> list[tuple[float, Any]]:
        return [(0.0, lambda: self.block.load(*self.caches))]


class _RowTile:
    """The query heads of KV heads [kv0, kv0 + nkv) of sequence b: Q^T columns, softmax state, O slot."""

    def __init__(self, plan: _Plan, b: int, kv0: int, nkv: int, qt_all: Any, o_slot: Any, wave: _Wave) -> None:
        self.plan, self.b, self.kv0, self.nkv = plan, b, kv0, nkv
        self.rows = nkv * plan.group
        col = b * plan.heads + kv0 * plan.group
        self.qt = qt_all[: plan.d, col : col + self.rows]  # [D, rows]
        self.o = o_slot  # [128, D] fp32 in PSUM
        self.out = wave.slot(self)  # [128, D] in SBUF, where the result waits for its store
        self.out_wave = wave
        self.softmax = OnlineSoftmax(self.rows, plan.scale, plan.dtype)
        self.o_written = False


class _Wave:
    """Output staging for consecutive row tiles: results wait in SBUF, stored together once all are in."""

    def __init__(self, plan: _Plan, capacity: int) -> None:
        self.tile: Any = nl.ndarray((plan.p, capacity, plan.d), plan.dtype, buffer=nl.sbuf)
        self.capacity = capacity
        self.members: list[_RowTile] = []

    def slot(self, tile: _RowTile) -> Any:
        self.members.append(tile)
        return self.tile[:, len(self.members) - 1, :]

    def store(self, out: Any) -> None:
        for i, t in enumerate(self.members):
            h0 = t.kv0 * t.plan.group
            nisa.dma_copy(dst=out[t.b, h0 : h0 + t.rows, :], src=self.tile[: t.rows, i, :])
        self.tile = None


class _StoreUnit:
    """Issues a wave's stores `wait` steps after it enters the pipeline."""

    def __init__(self, wave: _Wave, out: Any, wait: int) -> None:
        self.wave, self.out, self.stages = wave, out, wait + 1

    def ops(self, stage: int) -> list[tuple[float, Any]]:
        return [(0.0, lambda: self.wave.store(self.out))] if stage == self.stages - 1 else []


class _Chunk:
    """Up to 512 keys (slots j0.. of a block) of one row tile: a pipeline unit (see SCHEDULE)."""

    LAST_USE: ClassVar[dict[str, str]] = {"kt": "scores", "tiles": "exp", "probs": "transpose", "pt": "pv"}

    def __init__(
        self, tile: _RowTile, block: _Block, j0: int, flags: tuple[bool, bool], kt_ring: Any, index: int
    ) -> None:
        self.tile, self.block, self.j0, self.kt_ring, self.index = tile, block, j0, kt_ring, index
        self.last_of_block, self.last = flags  # last chunk of its block / of its row tile
        plan = tile.plan
        self.nj = min(plan.slots_per_chunk, block.r - j0)
        self.width = self.nj * block.n
        self.kt: Any = None
        self.tiles: Any = None
        self.neg_max: Any = None
        self.r_new: Any = None
        self.probs: Any = None
        self.alpha: Any = None
        self.row_sum: Any = None
        self.pt: Any = None
        self.stages = max(stage for stage, _ in SCHEDULE.values()) + 1

    def ops(self, stage: int) -> list[tuple[float, Any]]:
        out: list[tuple[float, Any]] = []
        releases = [attr for attr, op in self.LAST_USE.items() if SCHEDULE[op][0] + 1 == stage]
        if releases:
            out.append((-1.0, lambda: self._release(self, releases)))
        if self.last_of_block and stage == SCHEDULE["k_transpose"][0] + 1:
            out.append((-1.0, lambda: self._release(self.block, ["k"])))
        if self.last_of_block and stage == SCHEDULE["pv"][0] + 1:
            out.append((-1.0, lambda: self._release(self.block, ["v"])))
        out.extend((prio, getattr(self, op)) for op, (st, prio) in SCHEDULE.items() if st == stage)
        return out

    @staticmethod
    def _release(holder: Any, attrs: list[str]) -> None:
        """Drop the references: the buffers go back to SBUF / PSUM (Python liveness is buffer liveness)."""
        for attr in attrs:
            setattr(holder, attr, None)

    def k_transpose(self) -> None:
        """K^T [D, keys] per KV head: TensorE transposes into a PSUM ring, copies out alternate engines."""
        plan, blk, n = self.tile.plan, self.block, self.block.n
        self.kt = nl.ndarray((plan.p, blk.nkv, plan.kb), plan.dtype, buffer=nl.sbuf)
        for i in range(blk.nkv):
            stage = self.kt_ring.take()
            for jj in range(self.nj):
                nisa.nc_transpose(dst=stage[: plan.d, jj * n : (jj + 1) * n], data=blk.k[:n, i, self.j0 + jj, :])
            dst, src = self.kt[: plan.d, i, : self.width], stage[: plan.d, : self.width]
            if (self.index * blk.nkv + i) % 2 == 0:
                nisa.tensor_copy(dst=dst, src=src, engine=nisa.vector_engine)
            else:
                nisa.activation(dst=dst, op=nl.copy, data=src)

    def scores(self) -> None:
        """S [rows, keys]: the G heads of each KV group are the rows of one matmul."""
        plan, g = self.tile.plan, self.tile.plan.group
        s = nl.ndarray((plan.p, plan.kb), nl.float32, buffer=nl.psum)
        for i in range(self.block.nkv):
            nisa.nc_matmul(
                dst=s[i * g : (i + 1) * g, : self.width],
                stationary=self.tile.qt[:, i * g : (i + 1) * g],
                moving=self.kt[: plan.d, i, : self.width],
            )
        self.tiles = [(s, self.width)]

    def rowmax(self) -> None:
        self.neg_max = self.tile.softmax.block_max(self.tiles)

    def runmax(self) -> None:
        self.alpha, self.r_new = self.tile.softmax.running_max(self.neg_max)

    def exp(self) -> None:
        self.probs, self.row_sum = self.tile.softmax.exp(self.tiles, self.r_new, stride=self.tile.plan.kb)

    def transpose(self) -> None:
        """P^T [keys of slot j, rows] per slot, side by side in one PSUM bank."""
        plan, rows, n = self.tile.plan, self.tile.rows, self.block.n
        self.pt = nl.ndarray((plan.p, self.nj * rows), plan.dtype, buffer=nl.psum)
        for jj in range(self.nj):
            nisa.nc_transpose(
                dst=self.pt[:n, jj * rows : (jj + 1) * rows], data=self.probs[:rows, jj * n : (jj + 1) * n]
            )

    def rowsum(self) -> None:
        self.tile.softmax.update_sum(self.alpha, self.row_sum)

    def evac(self) -> None:
        plan, n = self.tile.plan, self.block.n
        pt = nl.ndarray((plan.p, self.nj * self.tile.rows), plan.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=pt[:n, :], src=self.pt[:n, :], engine=nisa.vector_engine)
        self.pt = pt

    def rescale(self) -> None:
        if self.alpha is not None:
            self.tile.softmax.rescale(self.tile.o, self.alpha, self.tile.rows)

    def pv(self) -> None:
        """O[group rows] += P V: P^T columns of the group stationary, the same slot of V moving."""
        tile, blk, n = self.tile, self.block, self.block.n
        g, rows = tile.plan.group, tile.rows
        for jj in range(self.nj):
            for i in range(blk.nkv):
                nisa.nc_matmul(
                    dst=tile.o[i * g : (i + 1) * g, :],
                    stationary=self.pt[:n, jj * rows + i * g : jj * rows + (i + 1) * g],
                    moving=blk.v[:n, i, self.j0 + jj, :],
                    accumulate=tile.o_written or jj > 0,
                )
        tile.o_written = True

    def recip(self) -> None:
        if self.last:
            self.tile.softmax.reciprocal()

    def finalize(self) -> None:
        if self.last:
            self.tile.softmax.normalize(self.tile.out, self.tile.o)


class _Ring:
    """Slots of `width` columns in `banks` PSUM tiles, taken round-robin; each tile is one allocation, so the
    dependency tracking sees a slot's reuse wait for its last reader."""

    def __init__(self, p: int, width: int, dtype: Any, banks: int) -> None:
        per_bank = (4 * psum_fmax()) // (width * dtypes.resolve(dtype).itemsize)
        self.tiles = [nl.ndarray((p, per_bank * width), dtype, buffer=nl.psum) for _ in range(banks)]
        self.width, self.per_bank, self.next = width, per_bank, 0

    def take(self) -> Any:
        n = self.next
        self.next += 1
        tile = self.tiles[n % len(self.tiles)]
        slot = (n // len(self.tiles)) % self.per_bank
        return tile[:, slot * self.width : (slot + 1) * self.width]


def _q_transposed(plan: _Plan, q: Any) -> Any:
    """Q^T [D, B * H] for every sequence and head: loaded 128 rows at a time, transposed on TensorE."""
    p, d, n = plan.p, plan.d, plan.batch * plan.heads
    rows = q.reshape((n, d))
    qt_all = nl.ndarray((p, n), plan.dtype, buffer=nl.sbuf)
    for r0 in range(0, n, p):
        m = min(p, n - r0)
        q_rows = nl.ndarray((p, d), plan.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=q_rows[:m, :], src=rows[r0 : r0 + m, :])
        stage = nl.ndarray((p, p), plan.dtype, buffer=nl.psum)
        nisa.nc_transpose(dst=stage[:d, :m], data=q_rows[:m, :])
        nisa.tensor_copy(dst=qt_all[:d, r0 : r0 + m], src=stage[:d, :m])
    return qt_all


@nki.jit
def decode_attention(q, k_cache, v_cache, lengths, scale=None):
    """softmax(scale * q K[:len]^T) V[:len] per sequence, for q [B, H, D] and caches [B, Hkv, S_max, D]."""
    name = "decode_attention"
    require(len(q.shape) == 3, f"{name}: q must be [B, H, D], got {list(q.shape)}")
    require(len(k_cache.shape) == 4, f"{name}: k_cache must be [B, Hkv, S_max, D], got {list(k_cache.shape)}")
    require(
        tuple(k_cache.shape) == tuple(v_cache.shape),
        f"{name}: k_cache {list(k_cache.shape)} and v_cache {list(v_cache.shape)} differ",
    )
    batch, heads, d = q.shape
    require(
        k_cache.shape[0] == batch and k_cache.shape[3] == d,
        f"{name}: caches {list(k_cache.shape)} do not match q {list(q.shape)}",
    )
    kv_heads = k_cache.shape[1]
    require(heads % kv_heads == 0, f"{name}: query heads ({heads}) must be a multiple of KV heads ({kv_heads})")
    p = pmax()
    require(d <= p, f"{name}: head dim {d} exceeds {p} (nl.tile_size.pmax, the matmul contraction limit)")
    require(
        heads // kv_heads <= p,
        f"{name}: {heads // kv_heads} query heads per KV head exceed {p} (nl.tile_size.pmax): a group is one tile",
    )
    for t, what in ((q, "q"), (k_cache, "k_cache"), (v_cache, "v_cache")):
        require_dtype(what, t, DECODE_DTYPES, name)
    require(
        q.dtype == k_cache.dtype == v_cache.dtype, f"{name}: q, k_cache and v_cache must share one dtype", rule="dtype"
    )
    plan = _Plan(q, k_cache, scale)
    require(plan.scale > 0, f"{name}: scale must be positive, got {plan.scale}")
    lens = host_lengths(lengths, batch, plan.s_max)

    out = nl.ndarray(q.shape, q.dtype, buffer=nl.shared_hbm)
    qt_all = _q_transposed(plan, q)
    run_pipelined(_stream(plan, lens, qt_all, (k_cache, v_cache, out)))
    return out


def _stream(plan: _Plan, lens: list[int], qt_all: Any, io: tuple[Any, Any, Any]) -> Iterator[Any]:
    """Pipeline units: row tile after row tile, each K/V block's loads a block ahead of its chunks, each wave's
    stores STORE_LAG steps after its last result."""
    k_cache, v_cache, out = io
    o_ring = _Ring(plan.p, plan.d, nl.float32, 1)
    kt_ring = _Ring(plan.p, plan.kb, plan.dtype, 2)
    capacity = max(1, OUT_WAVE_BYTES // (plan.d * dtypes.resolve(plan.dtype).itemsize))
    per = plan.slots_per_chunk

    def blocks() -> Iterator[tuple[_RowTile, _Block, bool]]:
        wave = _Wave(plan, capacity)
        for b in range(plan.batch):
            for kv0 in range(0, plan.kv_heads, plan.kv_per_tile):
                if len(wave.members) == capacity:
                    wave = _Wave(plan, capacity)
                tile = _RowTile(plan, b, kv0, plan.kv_per_tile, qt_all, o_ring.take(), wave)
                spans = plan.key_blocks(lens[b])
                for n, span in enumerate(spans):
                    yield tile, _Block(plan, b, kv0, plan.kv_per_tile, span), n + 1 == len(spans)

    ahead = blocks()
    nxt = next(ahead, None)
    if nxt is not None:
        yield _LoadUnit(nxt[1], (k_cache, v_cache))
    index = 0
    while nxt is not None:
        tile, blk, last_block = nxt
        nxt = next(ahead, None)
        if nxt is not None:
            yield _LoadUnit(nxt[1], (k_cache, v_cache))
        for j0 in range(0, blk.r, per):
            last = j0 + per >= blk.r
            yield _Chunk(tile, blk, j0, (last, last and last_block), kt_ring, index)
            index += 1
        wave = tile.out_wave
        if last_block and (nxt is None or nxt[0].out_wave is not wave):
            yield _StoreUnit(wave, out, SCHEDULE["finalize"][0] + 1 + STORE_LAG)

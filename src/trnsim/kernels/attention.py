"""Flash attention (prefill); decode attention over a KV cache is in attention_decode.py, exported here.

`flash_attention(q, k, v, causal=True, scale=None)`: q [B, H, S, D], k and v [B, Hkv, S_kv, D] with H a
multiple of Hkv (GQA; Hkv = 1 is MQA), D <= 128, any S (ragged tiles are sliced) -> [B, H, S, D] in q's
dtype (fp32, bf16, fp16). Causal masking is top-left aligned, like
`torch.nn.functional.scaled_dot_product_attention(is_causal=True)`: query i sees keys 0..i.

The score matrix never exists in full. Each tile of 128 queries visits its keys in units of `g` blocks of
512 keys (one PSUM bank of fp32 scores each) with an online softmax (_online_softmax.py): running row max,
and the O accumulator in PSUM rescaled whenever the max moves. Per unit:

  TensorE  S = Q K^T: Q^T stationary [D, 128 queries], K^T moving [D, 512 keys]. On the causal diagonal the
           mask (-30000 above it) is added into the same PSUM bank, by a second matmul (identity
           stationary, mask moving) or by a VectorE add, whichever engine has room (attention_plan.py).
  VectorE  row max of S, read as bf16 (the upper halves of the fp32 scores: half the fp32 read time)
  GpSimd   running max and alpha = exp(scale * (m_old - m_new))
  ScalarE  P = exp(scale * S - scale * max) (the max as the activation bias), straight from PSUM
  TensorE  P^T per 128-key block (nc_transpose into PSUM), copied to SBUF by VectorE / ScalarE
  TensorE  O += P [V | 1]: P^T stationary, V with a ones column moving, accumulated in PSUM over all of the
           tile's keys; the ones column makes O's last column the softmax's row sum l, rescaled with O,
           so exp needs no reduction and l no update. At the end one VectorE divide: O / l.

Causal tiles stop at their diagonal: key blocks wholly in the future are never computed and the last block
is only as wide as needed (a matmul costs its moving width), so half of one 128x128 block per query tile
is wasted. K^T and V of a KV head stay in SBUF for all query heads of its group when they fit, the next
group's prefetched while the current one finishes if two fit; otherwise each unit loads its own keys.
Every DMA holds each queue it spans for a fixed per-transfer time, so data moves in few large DMAs: K and V
of a KV head in one each, Q of a block of query tiles (QBlock, QO_BLOCK_BYTES) in one, the next block's Q
(the next KV group's first one too) loaded halfway through the current block; results are stored in runs
of the fewest tiles that pay for that per-transfer time (attention_plan.store_tiles), not one DMA per
block: a block's store would hold every queue at once, with the DMA transposes queued behind it. On
NeuronCore-v3+ Q^T and K^T come straight from HBM by the DMA engines' transpose (90% of the DMA rate from
HBM, against 50% for Q/K rows of 256 bytes), as AWS's attention_cte loads Q: no TensorE transposes or
VectorE copies for them.

Units are software-pipelined (_pipeline.py, SCHEDULE below) so TensorE, VectorE, ScalarE and GpSimd work
on neighbouring units at once; the P^T copies and the O rescales are split between VectorE and ScalarE in
the proportion that balances them on the target (attention_plan.py). Per block of 128 queries x 512 keys
on trn2, TensorE needs 640 ns (S, P^T and P V; 427 ns of it useful FLOPs), VectorE 533 ns (the row max,
267 ns, and the P^T copies) and ScalarE 587 ns (exp 480 ns, the O rescale 107 ns). With TensorE transposes
alone the P^T transposes cap the kernel at 427 / 640 = 67% (63% causal, with the diagonal's waste): P must be transposed
for P V (the keys are its contraction dim) and TensorE writes only PSUM and reads only SBUF. On
NeuronCore-v3+ the DMA engines transpose SBUF -> SBUF (attention_dma_transpose.py, as AWS's attention_cte
does): a planner-chosen share of the units (about 3/4 on trn2) has its P^T transposed there, two units per
transpose, which also takes their P^T copies off VectorE / ScalarE; P V then comes DMA_LAG steps later. On
trn2 causal bf16 prefill [1, 8, 4096, 128] this reaches 73% of TensorE's peak on useful FLOPs (83% without
the mask; bench/kernels_attention.py), with TensorE ~93% and the DMA queues ~91% busy. The
transposed-score variant (attention_transposed.py: S^T = K Q^T, exp straight to P^T) needs no transposes
but a bias matmul for the per-query max that costs TensorE as much; the planner takes it where VectorE and
ScalarE, not TensorE, are the limit (NeuronCore-v2, whose two share a PSUM port and which has no DMA
transpose: trn1 at 43%).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import trnsim.nki as nki
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.kernels import attention_dma_transpose, attention_plan
from trnsim.kernels._common import cdiv, moving_fmax, pmax, psum_fmax, require, require_dtype
from trnsim.kernels._flash_tiles import (
    KV,
    Consts,
    ORing,
    Plan,
    QBlock,
    QTile,
    Rings,
    StageRing,
    constants,
)
from trnsim.kernels._flash_units import SCHEDULE, DmaUnit, PrepKV, TransposedUnit, Unit
from trnsim.kernels._online_softmax import OnlineSoftmax
from trnsim.kernels._pipeline import run_pipelined
from trnsim.kernels.attention_decode import decode_attention
from trnsim.kernels.attention_plan import engine_split
from trnsim.kernels.attention_transposed import (
    TransposedSoftmax,
    transposed_constants,
)

__all__ = ["decode_attention", "flash_attention"]

ATTENTION_DTYPES = (dtypes.float32, dtypes.bfloat16, dtypes.float16)

INTERLEAVE = 3  # query tiles in turn, so a tile's consecutive units (chained by its softmax state) are 3 steps apart
O_SLOTS = 3  # O accumulators in PSUM: one per tile in flight, one more so a new tile need not wait for a result
PREFETCH = 8  # units before a KV group ends that the next group's K/V loads start (when two groups fit); with
# DMA transposes DMA_LAG more: the loads queue behind up to DMA_LAG steps of transposes (FIFO queues)
PSUM_BANKS_FOR_UNITS = 6  # of 8 banks: scores and P^T of the units in flight; the rest: O ring, transposes


def check_attention_dtypes(kernel: str, **tensors: Any) -> Any:
    """All inputs share one supported float dtype; returns it."""
    first = next(iter(tensors.values()))
    for name, t in tensors.items():
        require_dtype(name, t, ATTENTION_DTYPES, kernel)
        require(
            t.dtype == first.dtype,
            f"{kernel}: {name} is {dtypes.name(t.dtype)} but the other inputs are {dtypes.name(first.dtype)}",
            rule="dtype",
        )
    return first.dtype


def _query_blocks(plan: Plan, groups: list[tuple[int, int]]) -> list[list[QBlock]]:
    """The QBlocks of each KV group (b, g), each linked to the next one, across groups too: a block's Q is
    loaded halfway through the block before it, so the next group's first Q is not waited for either."""
    per_block = plan.q_block_tiles * plan.p
    out = [
        [
            QBlock(plan, b, h, b0, min(per_block, plan.s_q - b0))
            for h in range(g * plan.group, (g + 1) * plan.group)
            for b0 in range(0, plan.s_q, per_block)
        ]
        for b, g in groups
    ]
    for block, nxt in itertools.pairwise(itertools.chain.from_iterable(out)):
        block.next = nxt
    return out


def _group_units(
    plan: Plan, consts: Consts, io: Any, blocks: list[QBlock], kv_box: list[KV], rings: Rings
) -> Iterator[Any]:
    """The units of one KV group (its query blocks): its query tiles INTERLEAVE at a time, round-robin."""
    pending = [(block, i) for block in blocks for i in range(block.tiles)][::-1]
    span = plan.g * plan.kb
    active: list[tuple[QTile, list[tuple[int, int]]]] = []
    index = 0
    last_dma: Any = None  # a DMA-transposing unit waiting for a partner
    while pending or active:
        while pending and len(active) < INTERLEAVE:
            qt = QTile(plan, *pending.pop(), rings, TransposedSoftmax if plan.transposed else OnlineSoftmax)
            end = plan.key_end(qt.q0, qt.rows)
            active.append((qt, [(lo, min(end, lo + span)) for lo in range(0, end, span)]))
        for entry in list(active):
            qt, spans = entry
            first = qt.units == 0
            qt.units += 1
            unit = TransposedUnit if plan.transposed else DmaUnit if plan.dma_share else Unit
            made = unit(plan, consts, io, qt, kv_box, spans.pop(0), (first, not spans, index))
            if isinstance(made, DmaUnit):
                last_dma = attention_dma_transpose.pair(last_dma, made)
            yield made
            index += 1
            if not spans:
                active.remove(entry)
    attention_dma_transpose.unpaired(last_dma)


def _with_prefetch(
    plan: Plan, consts: Consts, io: Any, groups: list[Any], blocks: list[list[QBlock]], make_kv: Any, rings: Rings
) -> Iterator[Any]:
    """All KV groups in one pipeline; group n+1's K/V loads start PREFETCH units before group n's last."""
    boxes: list[list[KV]] = [[] for _ in groups]
    prep = SCHEDULE["prep"][0]
    yield PrepKV(boxes[0], make_kv(*groups[0], defer_v=True), 1 + prep)
    count = sum(
        cdiv(plan.key_end(q0, min(plan.p, plan.s_q - q0)), plan.g * plan.kb) for q0 in range(0, plan.s_q, plan.p)
    )
    count *= plan.group  # units per group
    start = max(0, count - PREFETCH - (attention_dma_transpose.DMA_LAG if plan.dma_share else 0))
    for n in range(len(groups)):
        if n >= 2:  # group n-2 has drained from the pipeline: free its K/V (SBUF is freed by liveness)
            boxes[n - 2].clear()
        for i, unit in enumerate(_group_units(plan, consts, io, blocks[n], boxes[n], rings)):
            if i == start and n + 1 < len(groups):
                yield PrepKV(boxes[n + 1], make_kv(*groups[n + 1]), count - i + 1 + prep)
            yield unit


def _banks_per_unit(kb: int, itemsize: int) -> int:
    """Score banks per unit: as many as fit PSUM_BANKS_FOR_UNITS with every unit in flight holding its own.

    Scores live from "scores" through "exp"; a unit's P^T (one bank at most) from "transpose" to "evac".
    """
    bank_bytes = 4 * psum_fmax()
    live = SCHEDULE["exp"][0] - SCHEDULE["scores"][0] + 1
    g = 1
    while (g + 1) * kb * itemsize <= bank_bytes and live * (g + 1) + 2 <= PSUM_BANKS_FOR_UNITS:
        g += 1
    return g


@nki.jit
def flash_attention(q, k, v, causal=True, scale=None):
    """softmax(scale * Q K^T [+ causal mask]) V for q [B, H, S, D], k/v [B, Hkv, S_kv, D] -> [B, H, S, D]."""
    name = "flash_attention"
    require(len(q.shape) == 4, f"{name}: q must be [B, H, S, D], got {list(q.shape)}")
    require(len(k.shape) == 4 and len(v.shape) == 4, f"{name}: k and v must be [B, Hkv, S_kv, D]")
    batch, heads, s_q, d = q.shape
    _, kv_heads, s_kv, _ = k.shape
    require(tuple(k.shape) == tuple(v.shape), f"{name}: k {list(k.shape)} and v {list(v.shape)} differ")
    require(k.shape[0] == batch and k.shape[3] == d, f"{name}: k {list(k.shape)} does not match q {list(q.shape)}")
    require(
        kv_heads >= 1 and heads % kv_heads == 0,
        f"{name}: query heads ({heads}) must be a multiple of KV heads ({kv_heads})",
    )
    p = pmax()
    require(d <= p, f"{name}: head dim {d} exceeds {p} (nl.tile_size.pmax, the matmul contraction limit)")
    require(s_q >= 1 and s_kv >= 1 and d >= 1, f"{name}: empty dimension in q {list(q.shape)} / k {list(k.shape)}")
    dtype = check_attention_dtypes(name, q=q, k=k, v=v)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    require(scale > 0, f"{name}: scale must be positive, got {scale}")

    kb = min(moving_fmax(), psum_fmax())
    plan = Plan(batch, heads, kv_heads, s_q, s_kv, d, bool(causal), scale, dtype, p, kb)
    plan.dma_load_t = attention_dma_transpose.available()
    plan.g = _banks_per_unit(kb, dtypes.resolve(dtype).itemsize)
    split = engine_split(plan)
    plan.evac_on_scalar, plan.mask_on_vector = split.evac_on_scalar, split.mask_on_vector
    plan.transposed = split.transposed
    plan.rescale_on_vector = split.rescale_on_vector
    plan.dma_share = split.dma_share
    if plan.transposed:
        plan.g = 1  # a unit's S^T blocks fill one PSUM bank
    plan.mode = attention_plan.kv_mode(plan)
    plan.q_block_tiles = attention_plan.q_block_tiles(plan)
    plan.store_tiles = attention_plan.store_tiles(plan)

    out = nl.ndarray(q.shape, q.dtype, buffer=nl.shared_hbm)
    io = (q, k, v, out)
    consts = constants(p)
    if plan.transposed:
        consts.transposed = transposed_constants(p)
    rings = Rings(ORing(plan, O_SLOTS), StageRing(plan))
    groups = [(b, g) for b in range(batch) for g in range(kv_heads)]

    def make_kv(b: int, g: int, defer_v: bool = False) -> Any:
        return lambda: KV(plan, k, v, b, g, 0, s_kv, defer_v)

    blocks = _query_blocks(plan, groups)
    if plan.mode == "prefetch":
        run_pipelined(_with_prefetch(plan, consts, io, groups, blocks, make_kv, rings))
    elif plan.mode == "resident":  # one group's K/V at a time: the pipeline drains between groups
        for (b, g), group_blocks in zip(groups, blocks, strict=True):
            box: list[KV] = []
            prep = PrepKV(box, make_kv(b, g), 1 + SCHEDULE["prep"][0])
            run_pipelined(itertools.chain([prep], _group_units(plan, consts, io, group_blocks, box, rings)))
    else:
        for group_blocks in blocks:
            run_pipelined(_group_units(plan, consts, io, group_blocks, [], rings))
    return out

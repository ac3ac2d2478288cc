"""Flash attention's plan: where K/V live, how many query tiles move per DMA, and which engine takes the P^T
copies and the causal mask, each from the ISA's cost of the instructions on the target.

Per block of `kb` keys of one 128-query tile the kernel issues (attention.py):
  TensorE  S = Q K^T (kb columns), P^T (kb / 128 transposes), P V (kb / 128 matmuls of D + 1 columns)
  VectorE  the row max over the scores' bf16 upper halves
  ScalarE  exp, and the O rescale (D + 1 columns)
  either   the P^T copies out of PSUM (VectorE or ScalarE), and on the causal diagonal the mask (a TensorE
           matmul that accumulates it into the scores, or a VectorE add of it in PSUM)
  DMA      on NeuronCore-v3+, for a share of the units instead of TensorE's P^T and the copies: the DMA
           engines' SBUF -> SBUF transpose, two units per transpose (attention_dma_transpose.py)
The shared steps go where the busiest of the engines (and the DMA queues) ends least busy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from trnsim import dtypes
from trnsim.isa.cost import dma_queue_occupancy_ns, dma_queue_pieces, dma_transfer_ns
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.kernels import attention_dma_transpose
from trnsim.kernels._common import cdiv, core
from trnsim.kernels._common import sbuf_bytes_per_partition as sbuf_bytes
from trnsim.kernels._engine_load import instruction_ns
from trnsim.kernels._ports import share_port

# Planner policy, not hardware: bytes per partition kept for per-unit tiles when deciding if K/V stay resident
SBUF_RESERVE = 16 * 1024
# Planner policy: at most this many bytes per partition of Q rows of a block of query tiles loaded in one
# DMA (results stored in one), where the SBUF left by K/V allows
QO_BLOCK_BYTES = 8 * 1024
# Planner policy: VectorE's and ScalarE's work sits on each unit's dependency chain (scores -> max -> exp ->
# P^T), so they need some slack to keep TensorE fed; their per-block time counts this much more against
# TensorE's (D = 64 on trn2: the mask on VectorE left VectorE at 100% of TensorE's time and ran 5% slower
# than with it on TensorE, which the plain per-block bound preferred).
CHAIN_SLACK = 0.10
# Planner policy: the DMA-transpose shares tried, in steps of 1 / this
DMA_SHARE_STEPS = 20
# Planner policy: the O-rescale shares on VectorE tried, in steps of 1 / this
RESCALE_SHARE_STEPS = 10
# Planner policy: splits whose bound is within this fraction of the least count as equal
TIE = 0.01


@dataclass(frozen=True)
class EngineSplit:
    """Which engine takes the steps more than one engine can do."""

    evac_on_scalar: float  # share of the P^T copies for ScalarE, the rest VectorE
    mask_on_vector: bool  # causal mask added by VectorE in PSUM instead of a TensorE matmul
    bound_ns: float  # the busiest engine's time per block of kb keys under this split
    transposed: bool = False  # transposed scores (attention_transposed.py): no P^T transposes or copies
    dma_share: float = 0.0  # share of units whose P^T the DMA engines transpose (attention_dma_transpose.py)
    rescale_on_vector: float = 0.0  # share of the O rescales for VectorE, the rest ScalarE


def block_costs(plan: Any) -> dict[str, float]:
    """ns per block of kb keys x 128 queries of each step, on the target (the ISA's instruction costs)."""
    p, kb, d = plan.p, plan.kb, plan.d
    small = Engine.VECTOR if share_port("vector", "gpsimd", "sbuf") else Engine.GPSIMD
    fp32 = dtypes.resolve(plan.dtype) == dtypes.float32
    low = dtypes.resolve(plan.dtype) in dtypes.LOW_PRECISION_FLOATS
    per_block = kb / p  # 128-key blocks per score block

    def mm(n_moving: int, fp32_inputs: bool) -> float:
        return instruction_ns(
            Opcode.NC_MATMUL, Engine.TENSOR, n_moving, n_moving=n_moving, n_stationary=p, fp32_matmul=fp32_inputs
        )

    transpose = instruction_ns(Opcode.NC_TRANSPOSE, Engine.TENSOR, p)
    psum = {"sbuf_only": False, "psum_input": True}
    itemsize = dtypes.resolve(plan.dtype).itemsize
    dma = core().dma
    return {
        "transposes": per_block * transpose,
        # P^T by the DMA engines: one transpose per pair of units (attention_dma_transpose.py), per block
        "dma_transpose": attention_dma_transpose.unit_ns(plan, 2 * plan.g * kb) / (2 * plan.g),
        # once per query tile: its Q loaded and its result stored on the same queues (a block of tiles per
        # DMA, QO_BLOCK_BYTES: the per-transfer floor is shared by the block's tiles); with dma_load_t Q comes
        # as Q^T by an HBM -> SBUF DMA transpose
        "tile_dma": dma_transfer_ns(dma, p * d * itemsize / dma.queues, d * itemsize, dma.queue_bytes_per_ns)
        + (
            attention_dma_transpose.load_ns(plan, p * d * itemsize)
            if plan.dma_load_t
            else dma_transfer_ns(dma, p * d * itemsize / dma.queues, d * itemsize, dma.queue_bytes_per_ns)
        ),
        "tensor": mm(kb, fp32) + per_block * (transpose + mm(d + 1, fp32)),
        "vector": instruction_ns(Opcode.TENSOR_REDUCE, Engine.VECTOR, kb, alu_op="maximum", all_bf16=True, **psum),
        "scalar": sum(instruction_ns(Opcode.ACTIVATION, Engine.SCALAR, n, sbuf_only=False) for n in (kb, d + 1)),
        # the O rescale (D + 1 fp32 columns in PSUM) on either engine: ScalarE's copy with scale, VectorE's multiply
        "rescale_scalar": instruction_ns(Opcode.ACTIVATION, Engine.SCALAR, d + 1, sbuf_only=False),
        "rescale_vector": instruction_ns(
            Opcode.TENSOR_SCALAR, Engine.VECTOR, d + 1, alu_op="multiply", sbuf_only=False, psum_input=True
        ),
        "copy_vector": instruction_ns(Opcode.TENSOR_COPY, Engine.VECTOR, kb, all_bf16=low, **psum),
        "copy_scalar": instruction_ns(Opcode.ACTIVATION, Engine.SCALAR, kb, sbuf_only=False),
        # the mask matmul's operands are bf16 constants; the VectorE add reads PSUM and the SBUF mask
        "mask_tensor": mm(p, False),
        "mask_vector": instruction_ns(Opcode.TENSOR_TENSOR, Engine.VECTOR, p, n_inputs=2, alu_op="add", **psum),
        # transposed scores: S^T and the bias matmul (bf16 ones and diag(-m)) per 128-key block instead of the
        # P^T transpose; exp straight to P^T; diag(-m) built once per unit by the small-ops engine
        "tensor_t": mm(kb, fp32) + per_block * (mm(p, fp32) + mm(p, False) + mm(d + 1, fp32)),
        "diag": instruction_ns(Opcode.TENSOR_SCALAR, small, p, all_bf16=True),
        # once per query tile: Q^T (a TensorE transpose, a VectorE copy out of PSUM; none with dma_load_t) and
        # O / l on VectorE
        "tile_tensor": 0.0 if plan.dma_load_t else transpose,
        "tile_vector": (
            0.0 if plan.dma_load_t else instruction_ns(Opcode.TENSOR_COPY, Engine.VECTOR, p, all_bf16=low, **psum)
        )
        + instruction_ns(Opcode.TENSOR_SCALAR, Engine.VECTOR, d, alu_op="divide", **psum),
    }


def rescale_shares() -> tuple[float, ...]:
    """The shares of the O rescales the planner tries on VectorE (the rest on ScalarE)."""
    return tuple(i / RESCALE_SHARE_STEPS for i in range(RESCALE_SHARE_STEPS + 1))


def dma_shares() -> tuple[float, ...]:
    """The shares of units the planner tries for DMA transposes: none where the core has no DMA transpose."""
    if not attention_dma_transpose.available():
        return (0.0,)
    return tuple(i / DMA_SHARE_STEPS for i in range(DMA_SHARE_STEPS + 1))


def paired_share(plan: Any) -> float:
    """Of the units picked for DMA transposes, the share that finds a partner (the others go to TensorE): the
    full units (causal tiles end in a narrower unit at the diagonal unless it falls on a unit boundary)."""
    span = plan.g * plan.kb
    units = full = 0
    for q0 in range(0, plan.s_q, plan.p):
        rows = min(plan.p, plan.s_q - q0)
        end = plan.key_end(q0, rows)
        n = cdiv(end, span)
        units += n
        full += n - (1 if end % span else 0) if rows == plan.p else 0
    return full / max(1, units)


def tile_share(plan: Any) -> float:
    """Query tiles per score block: the weight of once-per-tile work (and, causal, of the diagonal's mask:
    causal tiles cross the diagonal once each) in a block's costs."""
    tiles = cdiv(plan.s_q, plan.p)
    blocks = sum(cdiv(plan.key_end(q0, min(plan.p, plan.s_q - q0)), plan.kb) for q0 in range(0, plan.s_q, plan.p))
    return tiles / max(1, blocks)


def engine_split(plan: Any) -> EngineSplit:
    """The P^T copy share and the mask's engine that leave the busiest engine least busy per block.

    VectorE and ScalarE balance through the copies, each at its engine's cost; where the two share a PSUM
    port (NC-v2) everything they do here reads PSUM, so their work adds up and the copies go to the faster
    one. VectorE's and ScalarE's times count CHAIN_SLACK more than TensorE's.
    """
    c = block_costs(plan)
    per_tile = tile_share(plan)
    diag = per_tile if plan.causal else 0.0
    shared = share_port("vector", "scalar", "psum")
    c["tensor"] += per_tile * c["tile_tensor"]
    c["tensor_t"] += per_tile * c["tile_tensor"]
    c["vector"] += per_tile * c["tile_vector"]
    c["dma"] = per_tile * c["tile_dma"]
    # (split, the larger of TensorE's and the DMA's time, the larger of VectorE's and ScalarE's)
    splits: list[tuple[EngineSplit, float, float]] = []
    paired = paired_share(plan)
    for on_vector, dma_share, rescale in itertools.product((False, True), dma_shares(), rescale_shares()):
        # the DMA share's paired units take no TensorE transposes and leave no P^T to copy out of PSUM
        moved = dma_share * paired
        tensor = c["tensor"] + (0.0 if on_vector else diag * c["mask_tensor"]) - moved * c["transposes"]
        vector = c["vector"] + (diag * c["mask_vector"] if on_vector else 0.0) + rescale * c["rescale_vector"]
        scalar = c["scalar"] - rescale * c["rescale_scalar"]
        copy_v, copy_s = (1 - moved) * c["copy_vector"], (1 - moved) * c["copy_scalar"]
        if shared:
            share = 1.0 if copy_s < copy_v else 0.0
            pair = vector + scalar + min(copy_s, copy_v)
        else:
            share = (vector + copy_v - scalar) / (copy_v + copy_s) if copy_v + copy_s > 0 else 0.0
            share = min(1.0, max(0.0, share))
            pair = max(vector + (1 - share) * copy_v, scalar + share * copy_s)
        dma = c["dma"] + moved * c["dma_transpose"]
        bound = max(tensor, pair * (1 + CHAIN_SLACK), dma)
        split = EngineSplit(share, on_vector, bound, dma_share=dma_share, rescale_on_vector=rescale)
        splits.append((split, max(tensor, dma), pair))
    # among the splits within TIE of the least bound: one without DMA transposes if there is one (they add
    # DMA_LAG steps of pipeline, so they must pay for themselves), then one with the mask on TensorE
    # (VectorE also copies each KV group's K^T, which the per-block costs leave out), then the one that
    # balances TensorE and the DMA queues best (a transpose waits behind the loads and stores on its queues),
    # then the rescale share that leaves VectorE and ScalarE least busy (both sit on every unit's chain)
    least = min(x[0].bound_ns for x in splits)
    ties = [x for x in splits if x[0].bound_ns <= least * (1 + TIE)]
    best = min(ties, key=lambda x: (x[0].dma_share > 0, x[0].mask_on_vector, x[1], x[2]))[0]
    # transposed scores: the masks both by TensorE (S for the max, S^T for exp), no copies
    tensor = c["tensor_t"] + 2 * diag * c["mask_tensor"]
    vector = c["vector"] + (c["diag"] if shared else 0.0)
    pair = vector + c["scalar"] if shared else max(vector, c["scalar"])
    transposed = EngineSplit(0.0, False, max(tensor, pair * (1 + CHAIN_SLACK)), transposed=True)
    return transposed if transposed.bound_ns < best.bound_ns else best


def kv_mode(plan: Any) -> str:
    """Where K^T and V live: resident per KV group (the next group prefetched if two fit) or streamed.

    While K is transposed its natural-layout copy is live too, so a group peaks at K + K^T + V.
    """
    need = kv_bytes(plan)
    budget = sbuf_bytes() - SBUF_RESERVE
    if need["prefetch"] <= budget:
        return "prefetch"
    return "resident" if need["resident"] <= budget else "stream"


def kv_bytes(plan: Any) -> dict[str, int]:
    """SBUF bytes per partition K/V take at their peak in each mode (streamed units' keys: in the reserve).

    V carries a ones column (the row sums), so it is D + 1 wide."""
    itemsize = dtypes.resolve(plan.dtype).itemsize
    blocks = cdiv(plan.s_kv, plan.p)
    k_bytes = blocks * plan.d * itemsize  # natural K per partition
    v_bytes = blocks * (plan.d + 1) * itemsize
    kt_bytes = plan.s_kv * itemsize  # K^T per partition
    group = kt_bytes + v_bytes
    return {"prefetch": 2 * group + k_bytes, "resident": group + k_bytes, "stream": 0}


def q_block_tiles(plan: Any) -> int:
    """Query tiles per QBlock: up to QO_BLOCK_BYTES of Q rows per partition, in the SBUF the K/V mode leaves
    (Q and results of three blocks are live at once: one finishing, one running, the next one's Q loading);
    at least one tile."""
    row = plan.d * dtypes.resolve(plan.dtype).itemsize
    left = sbuf_bytes() - SBUF_RESERVE - kv_bytes(plan)[plan.mode]
    return max(1, min(QO_BLOCK_BYTES, left // 6) // row)


def store_tiles(plan: Any) -> int:
    """Query tiles per result store: the fewest whose bytes keep each DMA queue busy at least the per-transfer
    overhead (ISA: a queue's piece of a smaller DMA costs that overhead whatever its bytes), so splitting a
    QBlock's store costs no queue time; at most the block."""
    c = core()
    dma = c.dma
    itemsize = dtypes.resolve(plan.dtype).itemsize
    pieces = dma_queue_pieces(c, plan.p)
    tile_ns = dma_transfer_ns(dma, plan.p * plan.d * itemsize / pieces, plan.d * itemsize, dma.queue_bytes_per_ns)
    return max(1, min(plan.q_block_tiles, math.ceil(dma_queue_occupancy_ns(dma, 0.0) / tile_ns)))

"""Block sizes of the MX GEMM (mx_pipeline.py), from the target core's preset and the problem's shape.

out[tokens, features] accumulates in PSUM as [<= 128 tokens, <= 512 features] fp32 tiles (one bank each), a
token strip of `strip_tiles` such tiles per feature block, over all K groups. A strip's quantised x stays in
SBUF while every feature block's weights stream past it, so the weights are read once per strip: the taller
the strip, the less weight traffic per FLOP. NC-v4's MX rate is ~600 FLOPs per byte of a core's DMA, so the
strip is as tall as PSUM allows: all banks but the transient ones the x transposes use, in one accumulator
set (the next block's first matmul into a tile waits for that tile's evacuation, which the strip's other
matmuls hide).

Weights arrive `w_groups` K groups per DMA, enough for each queue's transfer to outlast the per-transfer
overhead (a shorter transfer holds its queue as long anyway); x arrives `x_groups` K groups per row DMA for the
same reason. The next strip's x is quantised while the current strip computes, into a second SBUF set when
both fit (spread over the strip), else into the one set right behind the last block's reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost import dma_queue_pieces
from trnsim.kernels.mx_weights import K_GROUP

TRANSIENT_BANKS = 2  # PSUM banks for the x transposes (each token tile's four land in one [128, 4 x 128] tile)
SCALE_BLOCKS = 3  # blocks whose weight scales are in SBUF at once (the one computing, the next, one loading)
X_CHUNKS = 3  # x row chunks in SBUF at once (mx_pipeline)
STORE_DELAY = 2  # steps between a block's epilogue and its stores (mx_pipeline)
# staged output blocks: a block's slot is refilled STORE_DELAY + 2 blocks later, at least that many steps on, after
# its store (a block is one step when K is one group)
STAGED_BLOCKS = STORE_DELAY + 2
SBUF_SHARE = 0.9  # of a partition's bytes the kernel plans to use (the rest: bias / scratch tiles)
BF16_BYTES = 2
FP32_BYTES = 4


@dataclass(frozen=True)
class MxPlan:
    strip_tiles: int  # 128-token tiles per strip (accumulators in PSUM)
    block: int  # features per block (moving free size)
    k_groups: int  # K groups of 512 values
    w_groups: int  # K groups per weight DMA
    x_groups: int  # K groups per x row DMA
    x_sets: int  # quantised-x sets in SBUF (2: the next strip's is made while this one computes)
    w_ahead: int  # weight chunks in flight ahead of the one computing
    sbuf_bytes: int  # per partition, as planned


def _groups_per_transfer(core: CoreSpec, bytes_per_group: int, partitions: int) -> int:
    """K groups per DMA so that one queue's piece moves at least the bytes its transfer overhead lasts."""
    dma = core.dma
    rows_per_queue = partitions / dma_queue_pieces(core, partitions)
    knee = dma.transfer_overhead_ns * dma.queue_bytes_per_ns  # bytes a queue moves in one transfer overhead
    return max(1, math.ceil(knee / (rows_per_queue * bytes_per_group)))


def plan_mx(core: CoreSpec, rows: int, n: int, k: int, w_bytes: int, out_bytes: int, residual: bool) -> MxPlan:
    """Blocking of a [rows, k] x [k, n] MX GEMM with packed weight elements of `w_bytes` (4 fp8, 2 fp4)."""
    p = int(core.sbuf.partitions)
    k_groups = math.ceil(k / K_GROUP)
    block = min(n, int(core.psum.bank_bytes) // FP32_BYTES)
    w_groups = min(k_groups, _groups_per_transfer(core, block * w_bytes, p))
    w_ahead = 2
    tiles_needed = math.ceil(rows / p)
    strip = max(1, min(tiles_needed, int(core.psum.banks) - TRANSIENT_BANKS))
    budget = SBUF_SHARE * int(core.sbuf.partition_bytes)
    # the tallest strip first (weight traffic), then two x sets (overlap), then long x transfers
    for tiles in range(strip, 0, -1):
        for x_sets in (2, 1):
            # an x chunk is one transfer for the strip's tiles: [128, tiles, groups x 512] bf16
            x_groups = min(k_groups, _groups_per_transfer(core, tiles * K_GROUP * BF16_BYTES, p))
            for xg in sorted({x_groups, max(1, x_groups // 2)}, reverse=True):
                used = _sbuf_bytes(p, tiles, block, k_groups, w_groups, xg, x_sets, w_ahead, w_bytes, out_bytes)
                used += residual * 2 * tiles * block * out_bytes  # residual rows
                if used <= budget:
                    return MxPlan(tiles, block, k_groups, w_groups, xg, x_sets, w_ahead, int(used))
    return MxPlan(1, block, k_groups, 1, 1, 1, 1, int(budget))  # the kernel checks the allocation itself


def _sbuf_bytes(
    p: int,
    tiles: int,
    block: int,
    k_groups: int,
    w_groups: int,
    x_groups: int,
    x_sets: int,
    w_ahead: int,
    w_bytes: int,
    out_bytes: int,
) -> int:
    """Per-partition SBUF bytes of the kernel's buffers (mx_pipeline allocates exactly these)."""
    quantised = x_sets * k_groups * tiles * p * (FP32_BYTES + 1)  # packed fp8 x4 (4 bytes) + its scale row
    weights = (w_ahead + 2) * w_groups * block * w_bytes + SCALE_BLOCKS * k_groups * block  # chunks + scales
    staged_x = X_CHUNKS * tiles * x_groups * K_GROUP * BF16_BYTES  # x row chunks
    to_quantise = 2 * tiles * 4 * p * BF16_BYTES  # transposed x, [128, 4 x tokens] per token tile
    out = STAGED_BLOCKS * tiles * block * out_bytes + 2 * block * FP32_BYTES  # staged outputs, fp32 temporaries
    bias = 2 * block * FP32_BYTES
    return quantised + weights + staged_x + to_quantise + out + bias

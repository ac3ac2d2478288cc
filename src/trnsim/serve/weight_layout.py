"""Weights laid out for serving: each linear layer priced in the better of its two weight layouts.

trnsim's estimate runs `nn.Linear` on PyTorch's weight layout, `[out, in]` row-major. Each partition then
streams one `in`-long row, which is short for a row-parallel shard (Llama-2-70B's o_proj at tp=32: 256
features, 512 bytes). The DMA model charges such short rows their descriptor and per-transfer cost
(machine_model.md). The Neuron serving stacks store weights in the layout their decode kernels stream best.
transformers-neuronx has `weight_tiling`, `qkv_tiling` and `mlp_out_weight_transpose`, and NxD Inference
fuses QKV and MLP kernels with their own layouts (libraries/nxd-inference/developer_guides/
migrate-from-tnx-to-nxdi.rst lists the options). The weights are laid out once, at load time.

`relaid_seconds(records, k_major_us)` re-prices each linear kernel of an estimate's profile at the lower of
its own time and the time of the library matmul on the transposed weight `[in, out]` (`kernels.matmul`). It
chooses between two simulated kernels and adds no constant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from math import prod
from typing import Any

LINEAR_KERNEL = "linear"  # the library kernel aten.linear (and its fused epilogues) lower to
_OPERAND = re.compile(r"\[([0-9, ]*)\]:(\w+)")


def parse_operands(shapes: str) -> list[tuple[tuple[int, ...], str]]:
    """'[1, 1, 4096]:bfloat16, [128, 4096]:bfloat16' -> [((1, 1, 4096), 'bfloat16'), ((128, 4096), 'bfloat16')]."""
    return [(tuple(int(d) for d in dims.split(",") if d.strip()), dtype) for dims, dtype in _OPERAND.findall(shapes)]


def linear_problem(shapes: str) -> tuple[int, int, int, str, str] | None:
    """(tokens M, in K, out N, x dtype, w dtype) of a linear kernel's operands, or None if they are not x [..., K]
    and w [N, K]."""
    operands = parse_operands(shapes)
    if len(operands) < 2:
        return None
    (x, x_dtype), (w, w_dtype) = operands[0], operands[1]
    if len(w) != 2 or not x or x[-1] != w[1]:
        return None
    return prod(x[:-1]), w[1], w[0], x_dtype, w_dtype


def relaid_seconds(records: Iterable[Any], k_major_us: Callable[[int, int, int, str, str], float | None]) -> float:
    """Device seconds of a profile's records with every linear kernel at its better weight layout.

    records: the estimate's profile records (kind, kernel, shapes, count, device_us, total_device_us) that
    belong to the part being priced. k_major_us(m, k, n, x_dtype, w_dtype): microseconds of one x [m, k] @
    w [k, n] on the rank, or None where that kernel cannot run the operands."""
    total_us = 0.0
    for r in records:
        problem = linear_problem(r.shapes) if r.kind == "kernel" and r.kernel == LINEAR_KERNEL else None
        alternative = k_major_us(*problem) if problem is not None else None
        if alternative is None:
            total_us += r.total_device_us
        else:
            total_us += r.count * min(r.device_us, alternative)
    return total_us * 1e-6

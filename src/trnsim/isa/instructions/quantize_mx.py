"""quantize_mx (NC-v4, VectorE): bf16/fp16 src[P, F] -> MXFP8 dst[P, F // 4] (x4-packed) + e8m0 scales.

Each 32-value group (8 partitions x 4 values) gets the block scale X = 2^(floor(log2 max|v|) - (E_max - 1)),
2^-127 for an all-zero group, and its values become clip(v / X) in the element type (NKI docs,
nki.isa.quantize_mx). Scales are [P // 8, F // 4] (mx_format.py).

That scale is NKI 0.5.0's (Neuron 2.31 release notes: quantize_mx "now uses a block scale two times larger than
the sample conversion algorithm described in the OCP Microscaling specification"). Before 0.5.0 it was the OCP
sample rule X = 2^(floor(log2 max|v|) - E_max) (OCP MX v1.0 §6.3), which `ocp_scale=True` gives; the kernel
language picks the rule by the NKI version a kernel is declared for (nki/emit_mx.py).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.instructions import mx_format as mx
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

SRC_DTYPES = (dtypes.bfloat16, dtypes.float16)
DST_DTYPES = (dtypes.float8_e4m3fn_x4, dtypes.float8_e5m2_x4)


def quantize(src: np.ndarray, element_dtype: np.dtype, ocp_scale: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """src [P, F] (fp32 values) -> (values [P, F] rounded to `element_dtype`, biased exponents [P // 8, F // 4]).

    `ocp_scale`: the OCP sample rule (before NKI 0.5.0), a block scale half as large (see the module docstring)."""
    p, f = src.shape
    groups = np.abs(src.astype(np.float32)).reshape(p // mx.GROUP_PARTITIONS, mx.GROUP_PARTITIONS, f // 4, 4)
    amax = groups.max(axis=(1, 3))
    _, e = np.frexp(amax)  # amax = m 2^e with m in [0.5, 1): floor(log2 amax) = e - 1
    headroom = mx.MAX_EXPONENT[element_dtype] - (0 if ocp_scale else 1)
    biased = (e - 1) - headroom + mx.E8M0_BIAS
    biased = np.where(amax > 0, np.clip(biased, 0, mx.E8M0_MAX_BIASED), 0).astype(np.uint8)
    scale = mx.expand_scales(mx.scale_factors(biased), p)  # [P, F // 4, 1]
    scaled = src.astype(np.float32).reshape(p, f // 4, 4) / scale
    limit = float(np.finfo(element_dtype).max)
    values = np.clip(scaled, -limit, limit).astype(element_dtype).reshape(p, f)
    return values, biased


def semantics(src: np.ndarray, element_dtype: np.dtype, ocp_scale: bool = False) -> np.ndarray:
    """The quantized values as fp32 [P, F] (the builder packs them and writes the scales)."""
    return quantize(src, element_dtype, ocp_scale)[0].astype(np.float32)


def check(call: Call) -> None:
    core, loc = call.core, call.location
    dst, src, scale = call.dst, call.inputs["src"], call.outputs["dst_scale"]
    assert dst is not None
    mx.require_mx_target(call, "quantize_mx", core.vector.mx_quantize_elems_per_cycle > 0)
    for t, what in ((src, "src"), (dst, "dst")):
        mx.require_sbuf(t, f"quantize_mx {what}", loc)
    if src.dtype not in SRC_DTYPES:
        raise DtypeError(
            f"quantize_mx src must be bfloat16 or float16, got {dtypes.name(src.dtype)}", loc, rule="mx-dtype"
        )
    if dst.dtype not in DST_DTYPES:
        raise DtypeError(
            f"quantize_mx dst must be float8_e4m3fn_x4 or float8_e5m2_x4, got {dtypes.name(dst.dtype)}",
            loc,
            rule="mx-dtype",
        )
    mx.require_quadrants(src, "quantize_mx src", loc)
    if src.free % mx.VALUES_PER_PACKED:
        raise TileShapeError(
            f"quantize_mx src free size {src.free} must be a multiple of {mx.VALUES_PER_PACKED}", loc, rule="mx-free"
        )
    if dst.partitions != src.partitions or dst.free * mx.VALUES_PER_PACKED != src.free:
        raise ShapeMismatchError(
            f"quantize_mx dst must be [{src.partitions}, {src.free // mx.VALUES_PER_PACKED}] (src {list(src.shape)} "
            f"packed 4 to an element), got {list(dst.shape)}",
            loc,
            rule="shape",
        )
    mx.check_scale(scale, dst, "quantize_mx dst_scale", loc)


def cost_args(call: Call) -> CostArgs:
    src = call.inputs["src"]
    return replace(streaming_args(call, "src", "dst"), n=src.free, p=src.partitions)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N / rate): VectorE converts `mx_quantize_elems_per_cycle` src elements per partition per cycle."""
    rate = core.vector.mx_quantize_elems_per_cycle
    if rate <= 0:  # planners asking a target without MX
        raise UsageError(f"quantize_mx needs NeuronCore-v4 or newer; this is NeuronCore-v{core.nc_version}", "")
    return streaming(core, engine, a, lambda ii, n: max(ii, n / rate))


RECORD = InstructionRecord(
    opcode=Opcode.QUANTIZE_MX,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.quantize_mx (rules, scale formula); trainium.md §3.6 (4 elements/partition/cycle)",
)

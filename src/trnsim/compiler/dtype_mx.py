"""MXFP8 / MXFP4 weight matmuls on NeuronCore-v4: the simulated MX GEMM kernel, and its roofline as the check.

While an MX format is active (dtype_estimate.matmul_format), the lowering runs each weight matmul of the bf16
graph (the `linear` and `matmul` kernels, y[M, N] = x[M, K] @ W, and the experts' `grouped_matmul`) as the
library's MX GEMM instead (kernels/mx_matmul.py, through the kernel runner and its cache like every kernel):
`mx_invocation` maps the bf16 call to linear_mx / grouped_matmul_mx on shapes alone, W given as the packed x4
values and e8m0 scales an offline conversion stores (mx_weights.py), the epilogue (bias, activation,
residual, output dtype) carried over. A weight matmul the MX kernel cannot take (K not a multiple of 128, an
operand not bf16 / fp16) keeps its bf16 kernel and is re-priced afterwards by the roofline below
(price_weight_matmuls_mx; its records are named `<kernel>_mx<bits>_formula`).

The roofline (mx_matmul_cost), the MX kernel's lower bound over the isa's own costs:

- W is stored pre-quantised in HBM: `element_bits` per value plus one e8m0 scale byte per 32 values, read once.
- x arrives bf16 and is quantised on chip: per 128-token tile, K / 128 TensorE transposes put K on the
  partitions (nc_transpose), then VectorE's quantize_mx packs each [128, 4 x tokens] tile once.
- TensorE: one nc_matmul_mx per (512-value K group, 128 output features, up to 512 tokens) at the record's MX
  rate (mx_speedup x bf16).
- ScalarE empties every [128, 512] fp32 PSUM tile (with the bias / activation of a fused epilogue); VectorE
  adds a fused residual.
- DMA: W's bytes, x and y (and a residual) once each, at the DMA rules of isa.cost over the core's queues.

Its time is the busiest of TensorE, VectorE, ScalarE and DMA plus one fixed DMA latency: no pipeline fill or
drain, and W read once whatever the token count (the kernel reads it once per token strip, as PSUM allows).
tests/kernels/test_mx_timing.py holds the kernel within ~10% above it on compute-bound shapes.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from typing import Any

from trnsim import dtypes
from trnsim.errors import CompileError
from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import (
    CostArgs,
    compute_cycles,
    dma_queue_occupancy_ns,
    dma_queue_pieces,
    dma_transfer_ns,
    engine_clock_ghz,
)
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.kernels.mx_weights import K_ALIGN, raw_dtype
from trnsim.nki.kernel import Kernel, TensorSpec
from trnsim.runtime.graph_profile import GraphProfile, OpRecord

VALUES_PER_PACKED = 4  # an x4-packed MX element holds 4 values of the contraction
SCALE_GROUP = 32  # values per e8m0 scale byte
BF16_BYTES = 2
FP32_BYTES = 4
# The tile sizes come from the core's preset: partitions (contraction rows), PE columns (stationary free size),
# one PSUM bank of fp32 (moving free size); weights laid out for the kernel move in runs of the preset's
# efficient row, x / y rows in its saturating row (or the whole row when shorter).

_SHAPE = re.compile(r"\[([\d, ]*)\]:(\w+)")
GROUPED = "grouped_matmul"  # the experts' matmul (kernels/grouped_matmul.py)


@dataclass(frozen=True)
class MxMatmul:
    """One weight matmul y[m, n] = x[m, k] @ W[n, k].T, with the epilogue the library kernel fused into it."""

    m: int
    n: int
    k: int
    residual: bool = False


@dataclass(frozen=True)
class MxCost:
    latency_us: float
    engine_busy_us: dict[str, float]
    hbm_bytes: int
    flops: int


def require_mx_target(spec: HardwareSpec, dtype: str) -> None:
    if spec.core.tensor.mx_speedup <= 0 or spec.core.vector.mx_quantize_elems_per_cycle <= 0:
        raise CompileError(
            f"dtype {dtype!r}: {spec.name} (NeuronCore-v{spec.core.nc_version}) has no MX matmul; MXFP8/MXFP4 run "
            "on NeuronCore-v4 (trn3); use fp8 or bf16 here"
        )


def _engine_us(spec: HardwareSpec, op: Opcode, engine: Engine, args: CostArgs, count: float) -> float:
    return count * compute_cycles(op, engine, spec.core, args) / engine_clock_ghz(spec.core, engine) / 1000.0


def _dma_us(spec: HardwareSpec, nbytes: float, run_bytes: int) -> float:
    """Moving `nbytes` between HBM and SBUF over all the core's queues, capped by the chip's HBM bandwidth."""
    core = spec.core
    pieces = dma_queue_pieces(core, core.sbuf.partitions)
    rate = min(core.dma.queue_bytes_per_ns, spec.chip.hbm_bytes_per_ns / pieces)
    data_ns = dma_transfer_ns(core.dma, nbytes / pieces, run_bytes, rate)
    return dma_queue_occupancy_ns(core.dma, data_ns) / 1000.0


def _blocks(total: int, size: int) -> list[int]:
    """Sizes of the blocks `total` splits into (all `size` but the last)."""
    full, rest = divmod(total, size)
    return [size] * full + ([rest] if rest else [])


def mx_matmul_cost(spec: HardwareSpec, mm: MxMatmul, element_bits: int) -> MxCost:
    """Latency and engine busy time of `mm` as an MX kernel on one physical core of `spec` (module docstring)."""
    return _mx_cost(spec, [mm.m], mm.n, mm.k, element_bits, mm.residual)


def mx_grouped_cost(spec: HardwareSpec, group_rows: list[int], n: int, k: int, element_bits: int) -> MxCost:
    """An experts' grouped matmul as MX: group g's rows times its own weight [K, N], all in one kernel (the
    weights of every group streamed once, x and y once)."""
    return _mx_cost(spec, group_rows, n, k, element_bits, False)


def _mx_cost(spec: HardwareSpec, group_rows: list[int], n: int, k: int, element_bits: int, residual: bool) -> MxCost:
    core = spec.core
    partitions = core.sbuf.partitions
    k_groups = math.ceil(k / (partitions * VALUES_PER_PACKED))  # contraction of one nc_matmul_mx
    out_tiles = _blocks(n, core.tensor.pe_cols)
    m = sum(group_rows)
    token_blocks = [t for rows in group_rows for t in _blocks(rows, core.psum.bank_bytes // FP32_BYTES)]
    # TensorE: x's transposes (one [128 tokens, 128 K] tile each), then the MX matmuls
    transposes = sum(math.ceil(rows / partitions) for rows in group_rows) * math.ceil(k / partitions)
    tensor = _engine_us(spec, Opcode.NC_TRANSPOSE, Engine.TENSOR, CostArgs(n=partitions, p=partitions), transposes)
    for tokens in token_blocks:
        for cols in out_tiles:
            args = CostArgs(n_stationary=cols, n_moving=tokens, p=partitions)
            tensor += _engine_us(spec, Opcode.NC_MATMUL_MX, Engine.TENSOR, args, k_groups)
    # VectorE: quantize_mx of x^T, [128, 4 x tokens] bf16 per K group and token block; a fused residual add
    vector = 0.0
    for tokens in token_blocks:
        args = CostArgs(n=VALUES_PER_PACKED * tokens, p=partitions, all_bf16=True)
        vector += _engine_us(spec, Opcode.QUANTIZE_MX, Engine.VECTOR, args, k_groups)
    # ScalarE: every [128 features, <= 512 tokens] fp32 PSUM tile to bf16 (with a fused bias / activation)
    scalar = 0.0
    for tokens in token_blocks:
        args = CostArgs(n=tokens, p=partitions, psum_input=True, sbuf_only=False)
        scalar += _engine_us(spec, Opcode.ACTIVATION, Engine.SCALAR, args, len(out_tiles))
        if residual:
            add = CostArgs(n=tokens, p=partitions, n_inputs=2, all_bf16=True)
            vector += _engine_us(spec, Opcode.TENSOR_TENSOR, Engine.VECTOR, add, len(out_tiles))
    groups = sum(1 for rows in group_rows if rows)  # an expert no token reached is not loaded
    weight_bytes = groups * (n * k * element_bits / 8 + n * k / SCALE_GROUP)
    act_bytes = BF16_BYTES * (m * k + m * n * (2 if residual else 1))
    act_run = min(core.dma.saturating_row_bytes, BF16_BYTES * max(k, n))
    dma = _dma_us(spec, weight_bytes, core.dma.efficient_row_bytes) + _dma_us(spec, act_bytes, act_run)
    busy = {"tensor": tensor, "vector": vector, "scalar": scalar, "dma": dma}
    latency = max(busy.values()) + spec.core.dma.fixed_latency_ns / 1000.0
    return MxCost(latency, busy, math.ceil(weight_bytes + act_bytes), 2 * m * n * k)


def _shapes(record: OpRecord) -> list[list[int]]:
    return [[int(d) for d in dims.split(",") if d.strip()] for dims, _ in _SHAPE.findall(record.shapes)]


def grouped_dims(record: OpRecord) -> tuple[int, int, tuple[int, int, int]]:
    """(rows, K, w [G, K, N]) of a grouped_matmul kernel record."""
    shapes = _shapes(record)
    if len(shapes) < 2 or len(shapes[0]) != 2 or len(shapes[1]) != 3:
        raise CompileError(f"cannot read the grouped matmul shapes of node {record.node}: {record.shapes!r}")
    (rows, k), (g, wk, n) = shapes[0], shapes[1]
    return rows, k, (g, wk, n)


def weight_matmul(record: OpRecord) -> MxMatmul:
    """The matmul a library `linear` / `matmul` kernel record ran, from its operand shapes."""
    shapes = _shapes(record)
    if len(shapes) < 2 or len(shapes[1]) != 2 or not shapes[0]:
        raise CompileError(f"cannot read the operand shapes of {record.kernel} node {record.node}: {record.shapes!r}")
    x, w = shapes[0], shapes[1]
    m = math.prod(x[:-1])
    if record.kernel == "matmul":  # a [M, K] @ b [K, N] (a K-major weight)
        return MxMatmul(m, w[1], w[0])
    residual = any(len(s) >= 2 for s in shapes[2:])  # (a bias is 1-D)
    return MxMatmul(m, w[0], w[1], residual)


def price_weight_matmuls_mx(profile: GraphProfile, kernels: frozenset[str], element_bits: int) -> None:
    """Re-price the weight-matmul kernel records (linear, matmul, the experts' grouped_matmul) the MX kernel
    could not take (mx_invocation) by the roofline (per logical core, as the rest)."""
    spec = profile.spec
    for record in profile.records:
        if record.kind != "kernel" or record.kernel not in kernels:
            continue
        if record.kernel == GROUPED:
            rows, k, (groups, _, n) = grouped_dims(record)
            # as the timing-mode lowering spreads them: rows evenly over the groups (lowering/moe.py)
            split = [rows * (g + 1) // groups - rows * g // groups for g in range(groups)]
            cost = mx_grouped_cost(spec, split, n, k, element_bits)
        else:
            cost = mx_matmul_cost(spec, weight_matmul(record), element_bits)
        share = max(1, profile.cores_per_rank)  # the physical cores of a logical core split the work
        record.device_us = cost.latency_us / share
        record.engine_busy_us = {e: us / share for e, us in cost.engine_busy_us.items()}
        record.hbm_bytes = cost.hbm_bytes
        record.flops = cost.flops
        record.kernel = f"{record.kernel}_mx{element_bits}_formula"


# -- the simulated MX kernel in place of a bf16 weight matmul ------------------------------------------------
W_DTYPES = {8: "float8_e4m3fn_x4", 4: "float4_e2m1fn_x4"}  # the weights' packed type by MX element bits


def _bound(kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    try:
        bound = inspect.signature(kernel.fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None  # the kernel will say what is wrong when it runs
    bound.apply_defaults()
    return dict(bound.arguments)


def _mx_weights(k: int, n: int, element_bits: int, groups: int | None = None) -> tuple[TensorSpec, TensorSpec]:
    """Specs of W [K, N] (or [G, K, N]) as mx_weights stores it: packed values and scales."""
    lead = () if groups is None else (groups,)
    packed = raw_dtype(W_DTYPES[element_bits])
    return TensorSpec((*lead, k // 4, n), packed), TensorSpec((*lead, k // SCALE_GROUP, n), dtypes.uint8)


def mx_invocation(
    kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any], element_bits: int
) -> tuple[Kernel, tuple[Any, ...], dict[str, Any]] | None:
    """The MX GEMM call standing for a bf16 weight-matmul call on shapes alone (TensorSpecs), or None (keep it)."""
    from trnsim.kernels.mx_matmul import X_DTYPES, grouped_matmul_mx, linear_mx

    name = getattr(kernel, "name", "")
    if name not in ("linear", "matmul", GROUPED) or element_bits not in W_DTYPES:
        return None
    bound = _bound(kernel, args, kwargs)
    if bound is None:
        return None
    x = bound.get("a" if name == "matmul" else "x")
    w = bound.get("b" if name == "matmul" else "w")
    if not (isinstance(x, TensorSpec) and isinstance(w, TensorSpec)) or x.dtype not in X_DTYPES:
        return None
    k = x.shape[-1]
    if k % K_ALIGN:
        return None
    w_dtype = W_DTYPES[element_bits]
    if name == GROUPED:
        groups, _, n = w.shape
        wq, ws = _mx_weights(k, n, element_bits, groups)
        call = (x, wq, ws, bound["offsets"])
        return grouped_matmul_mx, call, {"out_dtype": bound.get("out_dtype"), "w_dtype": w_dtype}
    n = w.shape[1] if name == "matmul" else w.shape[0]
    wq, ws = _mx_weights(k, n, element_bits)
    epilogue = {key: bound.get(key) for key in ("bias", "activation", "residual", "out_dtype")}
    return linear_mx, (x, wq, ws), {**epilogue, "w_dtype": w_dtype}

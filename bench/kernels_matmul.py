"""GEMM kernels on the simulated NeuronCore: matmul, batched_matmul and linear against their roofline
(issue 3: matmul 4096x8192x8192 bf16 >= 90% of TensorE peak on trn1 and trn2, 2048^3 >= 80%; linear at
decode shapes, M = 1..64 and K = N = 4096..16384, >= 80% of the HBM roofline).

Run: .venv/bin/python bench/kernels_matmul.py [--targets trn1,trn2] [--quick]
Each row is one timing-mode run on one core. Roofline time = max(FLOPs / TensorE peak, ideal bytes /
core DMA bandwidth), with peak = 128 x 128 x 2 x the TensorE clock (x 1/4 for fp32, x 2 for fp8 on cores
with double-row matmuls) and DMA bandwidth = 16 queues x the queue rate (272 GB/s trn1, 368 GB/s trn2);
ideal bytes read every input once and write the output once. For the decode linear rows the target is
also checked against the stricter weight-only roofline (weight bytes / core DMA bandwidth). The
bottleneck is the engine (or the DMA queues) with the most busy time in the profile. Prints a markdown
table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from math import prod
from typing import Any

import trnsim.nki as nki
from trnsim import dtypes
from trnsim.hw import load_preset
from trnsim.kernels import batched_matmul, linear, matmul
from trnsim.nki import TensorSpec


@dataclass(frozen=True)
class Case:
    kernel: str
    shape: str
    dtype: str
    fn: Any
    args: tuple[Any, ...]  # TensorSpecs and plain arguments
    flops: int
    out_bytes: int
    goal: float = 0.0  # required fraction of the roofline (0: no target in issue 3)
    goal_bytes: int = 0  # if set, the goal is checked against these bytes alone (decode linear: the weights)


def _mm(m: int, k: int, n: int, dt: str, goal: float = 0.0, out_dt: str = "") -> Case:
    out_isz = dtypes.resolve(out_dt or ("bfloat16" if dt.startswith("float8") else dt)).itemsize
    args = (TensorSpec((m, k), dt), TensorSpec((k, n), dt))
    return Case("matmul", f"{m}x{k}x{n}", dt, matmul, args, 2 * m * n * k, m * n * out_isz, goal)


def _linear(m: int, k: int, n: int, dt: str, goal: float = 0.0, epilogue: bool = False) -> Case:
    args: tuple[Any, ...] = (TensorSpec((m, k), dt), TensorSpec((n, k), dt))
    name = "linear"
    out_bytes = m * n * dtypes.resolve(dt).itemsize
    if epilogue:  # bias, gelu and a residual add, fused into the PSUM evacuation
        args += (TensorSpec((n,), dt), "gelu", TensorSpec((m, n), dt))
        name = "linear +bias, gelu, +residual"
        out_bytes *= 2  # the residual is read once too
    weight_bytes = n * k * dtypes.resolve(dt).itemsize
    return Case(
        name, f"M={m} K={k} N={n}", dt, linear, args, 2 * m * n * k, out_bytes, goal, weight_bytes if goal else 0
    )


def cases(quick: bool) -> list[Case]:
    out = [_mm(2048, 2048, 2048, "bfloat16", 0.80)]
    if not quick:
        out.append(_mm(4096, 8192, 8192, "bfloat16", 0.90))
    sizes = (4096,) if quick else (4096, 8192, 16384)
    for kn in sizes:
        for m in (1, 64) if quick else (1, 16, 64):
            out.append(_linear(m, kn, kn, "bfloat16", 0.80))
    out += [
        _linear(64, 4096, 4096, "bfloat16", 0.80, epilogue=True),
        _mm(130, 257, 70, "bfloat16"),
        _mm(2048, 2048, 2048, "float32"),
        _mm(2048, 2048, 2048, "float8_e4m3"),
        Case(
            "batched_matmul",
            "8x512x512x512",
            "bfloat16",
            batched_matmul,
            (TensorSpec((8, 512, 512), "bfloat16"), TensorSpec((8, 512, 512), "bfloat16")),
            2 * 8 * 512**3,
            8 * 512 * 512 * 2,
        ),
    ]
    if not quick:
        out += [
            _mm(4096, 8192, 8192, "float8_e4m3"),
            _linear(4096, 4096, 4096, "bfloat16", epilogue=True),
        ]
    return out


def roofline_ns(case: Case, target: str) -> tuple[float, float]:
    """(compute time, DMA time) at the core's peaks, in ns."""
    core = load_preset(target).core
    t = core.tensor
    peak_flops_per_ns = t.pe_rows * t.pe_cols * 2 * t.clock_ghz
    if case.dtype == "float32":
        peak_flops_per_ns /= t.fp32_cost_factor
    elif case.dtype.startswith("float8") and t.fp8_double_row:
        peak_flops_per_ns *= 2
    in_bytes = sum(prod(a.shape) * a.dtype.itemsize for a in case.args if isinstance(a, TensorSpec))
    dma_bytes_per_ns = core.dma.queues * core.dma.queue_bytes_per_ns
    return case.flops / peak_flops_per_ns, (in_bytes + case.out_bytes) / dma_bytes_per_ns


def run(case: Case, target: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    prof = nki.profile(case.fn, target=target, mode="timing", cores=1)(*case.args)
    compute, dma = roofline_ns(case, target)
    roof_us = max(compute, dma) / 1000
    frac = roof_us / prof.latency_us
    goal = ""
    if case.goal:
        check = frac
        if case.goal_bytes:  # the stricter roofline of the brief: weight bytes / core DMA bandwidth
            core = load_preset(target).core
            check = case.goal_bytes / (core.dma.queues * core.dma.queue_bytes_per_ns) / 1000 / prof.latency_us
        goal = f">= {100 * case.goal:.0f}% {'met' if check >= case.goal else 'MISSED'}"
        if case.goal_bytes:
            goal += f" (weights only: {100 * check:.1f}%)"
    return {
        "kernel": case.kernel,
        "shape": case.shape,
        "dtype": case.dtype,
        "target": target,
        "time_us": prof.latency_us,
        "roof_us": roof_us,
        "bound": "TensorE" if compute >= dma else "HBM/DMA",
        "pct": 100 * frac,
        "goal": goal,
        "bottleneck": prof.bottleneck(),
        "wall_s": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="trn1,trn2", help="comma-separated targets (trn1, inf2, trn2, trn3)")
    ap.add_argument("--quick", action="store_true", help="skip the largest shapes")
    args = ap.parse_args()
    print(
        "| kernel | shape | dtype | target | simulated time (µs) | roofline (µs) | roofline bound "
        "| % of roofline | issue 3 target | bottleneck |"
    )
    print("|---|---|---|---|---:|---:|---|---:|---|---|")
    for target in args.targets.split(","):
        for case in cases(args.quick):
            r = run(case, target)
            print(
                f"| {r['kernel']} | {r['shape']} | {r['dtype']} | {r['target']} | {r['time_us']:,.1f} | "
                f"{r['roof_us']:,.1f} | {r['bound']} | {r['pct']:.1f}% | {r['goal']} | {r['bottleneck']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

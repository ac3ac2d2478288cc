"""Attention, RoPE and embedding kernels on the simulated NeuronCore against their roofline (issue 3: flash
attention prefill, S = 4096, d = 128, causal: >= 70% of TensorE peak on the useful FLOPs; decode attention,
batch 32, context 2048: >= 70% of the HBM roofline).

Run: .venv/bin/python bench/kernels_attention.py [--targets trn2,trn1] [--quick] [--only "H8/2 S4096 D128 causal"]
Each row is one timing-mode run on one core. Roofline time = max(useful FLOPs / TensorE peak, bytes / core
DMA bandwidth), with peak = 128 x 128 x 2 x the TensorE clock (x 1/4 for fp32) and DMA bandwidth = 16
queues x the queue rate (272 GB/s trn1, 368 GB/s trn2). Useful FLOPs of attention are 4 * S * S_kv * D per
head (QK^T and PV), halved when causal. Bytes: flash reads q, k, v and writes the output once; decode is
held to the KV-cache bytes of the valid lengths alone (the issue's definition); rope reads and writes
each element of x once (cos / sin once); embedding copies rows HBM -> HBM, so each row crosses the DMA
queues once. The last column lists the busiest engines / DMA queues (busy time as % of
the kernel's time): the first is the bottleneck. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

import trnsim.nki as nki
from trnsim import dtypes
from trnsim.kernels.attention import decode_attention, flash_attention
from trnsim.kernels.embedding import embedding
from trnsim.kernels.rope import rope
from trnsim.nki import TensorSpec


@dataclass(frozen=True)
class Case:
    kernel: str
    shape: str
    dtype: str
    fn: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    flops: float  # useful TensorE FLOPs
    nbytes: int  # bytes the roofline charges
    goal: float = 0.0  # required fraction of the roofline (0: no target in issue 3)
    slow: bool = False  # skipped with --quick


def _flash(b: int, h: int, hkv: int, s: int, d: int, dt: str, causal: bool, goal: float = 0.0) -> Case:
    q, kv = TensorSpec((b, h, s, d), dt), TensorSpec((b, hkv, s, d), dt)
    itemsize = dtypes.resolve(dt).itemsize
    flops = 4.0 * s * s * d * h * b / (2 if causal else 1)
    shape = f"B{b} H{h}/{hkv} S{s} D{d}" + (" causal" if causal else "")
    nbytes = 2 * (prod(q.shape) + prod(kv.shape)) * itemsize
    return Case("flash_attention", shape, dt, flash_attention, (q, kv, kv), {"causal": causal}, flops, nbytes, goal)


def _decode(b: int, h: int, hkv: int, s: int, d: int, dt: str, lengths: list[int], goal: float = 0.0) -> Case:
    cache = TensorSpec((b, hkv, s, d), dt)
    itemsize = dtypes.resolve(dt).itemsize
    ragged = "" if len(set(lengths)) == 1 else f" ragged (mean {int(np.mean(lengths))})"
    shape = f"B{b} H{h}/{hkv} ctx{s} D{d}{ragged}"
    kv_bytes = 2 * sum(lengths) * hkv * d * itemsize
    flops = 4.0 * sum(lengths) * h * d
    args = (TensorSpec((b, h, d), dt), cache, cache, lengths)
    return Case("decode_attention", shape, dt, decode_attention, args, {}, flops, kv_bytes, goal)


def cases() -> list[Case]:
    rng = np.random.default_rng(0)
    bf16 = "bfloat16"
    x, t = TensorSpec((1, 32, 4096, 128), bf16), TensorSpec((4096, 128), bf16)
    ids = rng.integers(0, 128256, 4096).tolist()
    return [
        _flash(1, 8, 2, 4096, 128, bf16, True, goal=0.70),
        _flash(1, 8, 2, 4096, 128, bf16, False),
        _flash(1, 8, 8, 4096, 64, bf16, True),
        _flash(1, 2, 2, 2048, 128, "float32", True),
        _flash(1, 1, 1, 32768, 128, bf16, True),
        _decode(32, 32, 8, 2048, 128, bf16, [2048] * 32, goal=0.70),
        _decode(32, 32, 8, 2048, 128, bf16, rng.integers(1, 2049, 32).tolist()),
        _decode(32, 32, 1, 2048, 128, bf16, [2048] * 32),
        Case(
            "rope", "B1 H32 S4096 D128", bf16, rope, (x, t, t), {}, 0.0, 2 * prod(x.shape) * 2 + 2 * prod(t.shape) * 2
        ),
        # HBM -> HBM: each gathered row crosses the DMA queues once
        Case(
            "embedding",
            "4096 ids, 128256x4096",
            bf16,
            embedding,
            (ids, TensorSpec((128256, 4096), bf16)),
            {},
            0.0,
            4096 * 4096 * 2,
        ),
    ]


def measure(case: Case, target: str) -> dict[str, Any]:
    prof = nki.profile(case.fn, target=target, mode="timing", cores=1)(*case.args, **case.kwargs)
    core = nki.get_target_spec(target).core
    peak = core.tensor.pe_rows * core.tensor.pe_cols * 2 * core.tensor.clock_ghz * 1e3  # FLOP per µs
    if case.dtype == "float32":
        peak /= core.tensor.fp32_cost_factor
    bandwidth = core.dma.queues * core.dma.queue_bytes_per_ns * 1e3  # bytes per µs
    roofline_us = max(case.flops / peak, case.nbytes / bandwidth)
    lat = prof.latency_us
    busy = sorted(prof.engine_busy_us.items(), key=lambda kv: -kv[1])[:3]
    return {
        "time_us": lat,
        "roofline_us": roofline_us,
        "pct": 100 * roofline_us / lat,
        "bound": "FLOPs" if case.flops / peak >= case.nbytes / bandwidth else "bytes",
        "busiest": ", ".join(f"{k} {100 * v / lat:.0f}%" for k, v in busy),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="trn2,trn1")
    parser.add_argument("--quick", action="store_true", help="only the issue's two attention targets")
    parser.add_argument(
        "--only", default="", help='only cases whose "kernel shape" contains this, e.g. "S4096 D128 causal"'
    )
    args = parser.parse_args()
    print("| kernel | shape | dtype | target | simulated time | roofline time | % of roofline | goal | bottleneck |")
    print("|---|---|---|---|---:|---:|---:|---:|---|")
    for target in args.targets.split(","):
        for case in cases():
            if (args.quick and not case.goal) or args.only not in f"{case.kernel} {case.shape}":
                continue
            t0 = time.perf_counter()
            r = measure(case, target)
            goal = f"≥ {100 * case.goal:.0f}%" if case.goal else ""
            print(
                f"| {case.kernel} | {case.shape} | {case.dtype} | {target} | {r['time_us']:,.1f} µs "
                f"| {r['roofline_us']:,.1f} µs ({r['bound']}) | {r['pct']:.0f}% | {goal} | {r['busiest']} |",
                flush=True,
            )
            if time.perf_counter() - t0 > 60:
                print(f"<!-- {case.kernel} {case.shape} took {time.perf_counter() - t0:.0f} s to simulate -->")


if __name__ == "__main__":
    main()

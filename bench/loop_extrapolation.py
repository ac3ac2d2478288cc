"""Loop extrapolation at model scale: extended vs full simulation of the library kernels a GPT-3-sized layer runs.

Each row simulates one kernel invocation twice from shapes alone, once extended from three short probes
(trnsim.compiler.loop_extrapolation) and once in full, and prints both latencies, the error and the wall
times. Shapes: GPT-3 175B layer (hidden 12288, 96 heads, FFN 32768) at batch 8 x 2048 tokens, tp=4 on trn2.

Run: .venv/bin/python bench/loop_extrapolation.py [--only NAME ...] (a few minutes: the full runs are the
slow part).
"""

from __future__ import annotations

import argparse
import time

from trnsim import kernels
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.hw import load_preset
from trnsim.nki.kernel import TensorSpec

BF16 = "bfloat16"


def _t(*shape: int) -> TensorSpec:
    return TensorSpec(shape, BF16)


CASES = [
    ("q/k/v projection (linear)", kernels.linear, (_t(8, 2048, 12288), _t(3072, 12288)), {}),
    ("q/k/v projection (matmul)", kernels.matmul, (_t(16384, 12288), _t(12288, 3072)), {}),
    ("scores Q K^T (batched_matmul)", kernels.batched_matmul, (_t(192, 2048, 128), _t(192, 128, 2048)), {}),
    ("P V (batched_matmul)", kernels.batched_matmul, (_t(192, 2048, 2048), _t(192, 2048, 128)), {}),
    ("flash attention, causal", kernels.flash_attention, (_t(8, 24, 2048, 128),) * 3, {}),
    ("output projection (linear)", kernels.linear, (_t(8, 2048, 3072), _t(12288, 3072)), {}),
    ("FFN up + SiLU (linear)", kernels.linear, (_t(8, 2048, 12288), _t(8192, 12288)), {"activation": "silu"}),
    ("FFN down (linear)", kernels.linear, (_t(8, 2048, 8192), _t(12288, 8192)), {}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None, help="substrings of the case names to run")
    ap.add_argument("--target", default="trn2")
    args = ap.parse_args()
    spec = load_preset(args.target)
    print(f"{'kernel':32s} {'full us':>12s} {'extended us':>12s} {'error':>8s} {'full s':>7s} {'ext. s':>7s}")
    for name, kernel, kargs, kwargs in CASES:
        if args.only and not any(o in name for o in args.only):
            continue
        t0 = time.perf_counter()
        _, fast = run_kernel(kernel, kargs, kwargs, spec, False, KernelCache(use_disk=False), extrapolate=True)
        t1 = time.perf_counter()
        _, full = run_kernel(kernel, kargs, kwargs, spec, False, KernelCache(use_disk=False), extrapolate=False)
        t2 = time.perf_counter()
        err = fast.latency_us / full.latency_us - 1
        print(
            f"{name:32s} {full.latency_us:12,.1f} {fast.latency_us:12,.1f} {err:+8.3%} {t2 - t1:7.1f} {t1 - t0:7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

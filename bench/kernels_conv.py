"""conv2d and pooling kernels on the simulated NeuronCore: time against the roofline (issue 3).

Run: .venv/bin/python bench/kernels_conv.py [--targets trn2,trn1]
Each row is one timing-mode run on one core. Roofline time = max(useful FLOPs / TensorE peak for the
dtype, ideal HBM bytes / the core's DMA bandwidth), where useful FLOPs count each multiply-add of the
convolution once (no zero padding, no off-diagonal zeros of packed groups) and ideal bytes read the input
and weights and write the output once. Pooling does no TensorE work, so its roofline is the DMA one.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import trnsim.kernels as K
import trnsim.nki as nki
from trnsim.nki import TensorSpec


@dataclass(frozen=True)
class Case:
    name: str
    kernel: Any
    x: tuple[int, int, int, int]
    w: tuple[int, int, int, int] | None  # conv weights; None for pooling
    kwargs: dict[str, Any]
    dtype: str = "bfloat16"


CASES = [
    Case("conv2d 3x3 (ResNet)", K.conv2d, (1, 256, 56, 56), (256, 256, 3, 3), {"padding": 1}),
    Case("conv2d 1x1 (ResNet)", K.conv2d, (1, 512, 28, 28), (512, 512, 1, 1), {}),
    Case("conv2d 1x1", K.conv2d, (1, 256, 56, 56), (256, 256, 1, 1), {}),
    Case("conv2d 3x3 depthwise", K.conv2d, (1, 256, 56, 56), (256, 1, 3, 3), {"padding": 1, "groups": 256}),
    Case("conv2d 7x7/2 stem", K.conv2d, (1, 3, 224, 224), (64, 3, 7, 7), {"stride": 2, "padding": 3}),
    Case("max_pool2d 3x3/2", K.max_pool2d, (1, 64, 112, 112), None, {"kernel_size": 3, "stride": 2, "padding": 1}),
    Case("avg_pool2d 3x3/2", K.avg_pool2d, (1, 64, 112, 112), None, {"kernel_size": 3, "stride": 2, "padding": 1}),
]


def measure(case: Case, target: str) -> dict[str, Any]:
    args = [TensorSpec(case.x, case.dtype)] + ([TensorSpec(case.w, case.dtype)] if case.w else [])
    prof = nki.profile(case.kernel, target=target, mode="timing", cores=1)(*args, **case.kwargs)
    out = prof.outputs.shape
    itemsize = 2 if case.dtype == "bfloat16" else 4
    elems = sum(_size(s) for s in (case.x, case.w or (), out))
    flops = 0
    if case.w:  # every output element sums C/groups * kh * kw products
        flops = 2 * _size(out) * _size(case.w[1:])
    spec = prof.spec
    peak = prof.peak_tflops * 1e12 / (spec.core.tensor.fp32_cost_factor if itemsize == 4 else 1)
    dma = spec.core.dma.queues * spec.core.dma.queue_bytes_per_ns * 1e9
    roofline_us = max(flops / peak, elems * itemsize / dma) * 1e6
    return {
        "kernel": case.name,
        "shape": f"x{list(case.x)}" + (f" w{list(case.w)}" if case.w else "") + _kw(case.kwargs),
        "dtype": case.dtype,
        "target": target,
        "time_us": prof.latency_us,
        "roofline_us": roofline_us,
        "pct_roofline": 100 * roofline_us / prof.latency_us,
        "pct_tensore": 100 * flops / (peak * prof.latency_us * 1e-6) if flops else None,
        "bottleneck": prof.bottleneck(),
    }


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _kw(kwargs: dict[str, Any]) -> str:
    return "".join(f" {k}={v}" for k, v in kwargs.items() if k != "kernel_size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="trn2,trn1", help="comma-separated presets")
    targets = parser.parse_args().targets.split(",")
    print(
        "| kernel | shape | dtype | target | simulated time (µs) | roofline time (µs) | % of roofline "
        "| % of TensorE peak | bottleneck |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---|")
    for target in targets:
        for case in CASES:
            r = measure(case, target)
            tensore = "-" if r["pct_tensore"] is None else f"{r['pct_tensore']:.0f}%"
            print(
                f"| {r['kernel']} | {r['shape']} | {r['dtype']} | {r['target']} | {r['time_us']:.1f} "
                f"| {r['roofline_us']:.1f} | {r['pct_roofline']:.0f}% | {tensore} | {r['bottleneck']} |"
            )


if __name__ == "__main__":
    main()

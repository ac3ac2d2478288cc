"""Memory-bound kernels on the simulated NeuronCore: elementwise, reductions, norms, softmax, transpose
against the HBM roofline (issue 3: rmsnorm, softmax and elementwise on >= 8 MiB at >= 80%).

Run: .venv/bin/python bench/kernels_memory.py [--targets trn2,trn1]
Each row is one timing-mode run on one core. Roofline time = ideal bytes / the core's DMA bandwidth
(16 queues x the queue rate: 272 GB/s on trn1, 368 GB/s on trn2), where ideal bytes read every input
once and write the output once. These kernels do no TensorE work worth counting (TensorE only broadcasts
gamma / bias rows and does transposes), so the FLOP side of the roofline is zero. Prints a markdown table;
the bottleneck is the engine or the DMA queues with the most busy time in the profile.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from math import prod
from typing import Any

import trnsim.nki as nki
from trnsim import dtypes
from trnsim.kernels.elementwise import binary, fused_chain, unary
from trnsim.kernels.reductions import layernorm, reduce_last, rmsnorm, softmax
from trnsim.kernels.transpose import transpose
from trnsim.nki import TensorSpec

MIB = 2**20


@dataclass(frozen=True)
class Case:
    name: str
    kernel: Any
    args: tuple[Any, ...]  # TensorSpecs and plain arguments
    out_shape: tuple[int, ...]
    out_dtype: str


def _spec(shape: tuple[int, ...], dtype: str) -> TensorSpec:
    return TensorSpec(shape, dtype)


def cases() -> list[Case]:
    out: list[Case] = []
    for dt in ("float32", "bfloat16"):
        rows = 2048 if dt == "float32" else 4096  # 8 MiB of x either way
        x = _spec((rows, 1024), dt)
        xs = (rows, 1024)
        out += [
            Case("unary gelu", unary, (x, "gelu"), xs, dt),
            Case("binary add", binary, (x, _spec(xs, dt), "add"), xs, dt),
            Case("binary add, bias [D]", binary, (x, _spec((1024,), dt), "add"), xs, dt),
            Case("binary multiply, per-row [R, 1]", binary, (x, _spec((rows, 1), dt), "multiply"), xs, dt),
            Case(
                "fused_chain *2, +y, gelu",
                fused_chain,
                (x, [("multiply", 2.0), ("add", _spec(xs, dt)), ("gelu", None)]),
                xs,
                dt,
            ),
            Case("softmax", softmax, (x,), xs, dt),
            Case("rmsnorm", rmsnorm, (x, _spec((1024,), dt)), xs, dt),
            Case("layernorm", layernorm, (x, _spec((1024,), dt), _spec((1024,), dt)), xs, dt),
            Case("reduce_last add", reduce_last, (x, "add"), (rows,), dt),
            Case("transpose", transpose, (x,), (1024, rows), dt),
        ]
    llm = (2, 1024, 4096)  # batch 2, 1024 tokens, hidden 4096: 16 MiB bf16
    out += [
        Case(
            "unary gelu, fp8 in",
            unary,
            (_spec((4096, 2048), "float8_e4m3"), "gelu", "bfloat16"),
            (4096, 2048),
            "bfloat16",
        ),
        Case("rmsnorm", rmsnorm, (_spec(llm, "bfloat16"), _spec((4096,), "bfloat16")), llm, "bfloat16"),
        Case("softmax, 32k columns", softmax, (_spec((128, 32768), "float32"),), (128, 32768), "float32"),
        Case("softmax, 32k columns", softmax, (_spec((256, 32768), "bfloat16"),), (256, 32768), "bfloat16"),
        Case("transpose, batched", transpose, (_spec((4, 1024, 1024), "bfloat16"),), (4, 1024, 1024), "bfloat16"),
    ]
    return out


def _nbytes(shape: tuple[int, ...], dtype: Any) -> int:
    return prod(shape) * dtypes.resolve(dtype).itemsize


def _tensors(args: Any) -> list[TensorSpec]:
    """Every TensorSpec in the arguments, nested ones (fused_chain operands) included."""
    if isinstance(args, TensorSpec):
        return [args]
    if isinstance(args, list | tuple):
        return [t for a in args for t in _tensors(a)]
    return []


def measure(case: Case, target: str) -> dict[str, Any]:
    prof = nki.profile(case.kernel, target=target, mode="timing", cores=1)(*case.args)
    core = nki.get_target_spec(target).core
    bandwidth = core.dma.queues * core.dma.queue_bytes_per_ns  # bytes per ns
    moved = sum(_nbytes(t.shape, t.dtype) for t in _tensors(case.args)) + _nbytes(case.out_shape, case.out_dtype)
    roofline_us = moved / bandwidth / 1000
    x = _tensors(case.args)[0]
    return {
        "kernel": case.name,
        "shape": "x".join(str(s) for s in x.shape),
        "dtype": dtypes.name(x.dtype),
        "target": target,
        "MiB moved": moved / MIB,
        "time_us": prof.latency_us,
        "roofline_us": roofline_us,
        "pct": 100 * roofline_us / prof.latency_us,
        "bottleneck": prof.bottleneck(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="trn2,trn1")
    targets = parser.parse_args().targets.split(",")
    print(
        "| kernel | shape | dtype | target | MiB moved | simulated time | roofline time | % of roofline | bottleneck |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---|")
    for target in targets:
        for case in cases():
            r = measure(case, target)
            print(
                f"| {r['kernel']} | {r['shape']} | {r['dtype']} | {r['target']} | {r['MiB moved']:.1f} "
                f"| {r['time_us']:.1f} µs | {r['roofline_us']:.1f} µs | {r['pct']:.0f}% | {r['bottleneck']} |"
            )


if __name__ == "__main__":
    main()

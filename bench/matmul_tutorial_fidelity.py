"""AWS's four matmul tutorial kernels on trn1 at [4096,8192] @ [8192,8192] (bf16): trnsim's prediction
against AWS's published latencies (issue 11, "Timing fidelity found on the way").

Run (nki-samples is not part of trnsim; extract it anywhere first):
    git clone https://github.com/aws-neuron/nki-samples
    .venv/bin/python bench/matmul_tutorial_fidelity.py nki-samples [--compare-without-overhead]

The kernels run unmodified from src/nki_samples/tutorials/matrix_multiplication/ through
`trnsim.nki.install_aliases()`, in timing mode (shapes only) on one trn1 NeuronCore. The published numbers
are validation only: no timing constant is derived from them. `--compare-without-overhead` adds the
prediction of the preset with `core.dma.transfer_overhead_ns = 0` (the model before issue 11).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import trnsim.nki
from trnsim.hw import load_preset
from trnsim.hw.presets import spec_from_dict
from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import dma_queue_occupancy_ns, dma_transfer_ns
from trnsim.nki import TensorSpec

TUTORIAL = Path("src/nki_samples/tutorials/matrix_multiplication/matrix_multiplication_nki_kernels.py")
K, M, N = 8192, 4096, 8192  # lhsT [K, M], rhs [K, N]


@dataclass(frozen=True)
class Published:
    kernel: str  # function name in the tutorial module
    label: str  # the row name in AWS's table
    latency_ms: float


# aws-neuron-sdk nki/tutorials/matrix_multiplication.rst (commit 1db4d74e, 2025-10-17; the table was
# dropped from later versions): nki.benchmark P99 latency on Trn1.32xlarge, bf16, [4096,8192] @ [8192,8192].
PUBLISHED = (
    Published("nki_matmul_tiled_", "Original Tiled", 51.80),
    Published("nki_matmul_hoist_load_", "Optimization 1 (hoist loads)", 42.96),
    Published("nki_matmul_block_free_dimension_", "Optimization 2 (block M, N)", 22.07),
    Published("nki_matmul_fully_optimized_", "Optimization 3 (block M, N, K)", 6.97),
)


# aws-neuron-sdk nki/get-started/about/nki-dma-overview.rst, figure nki-dma-intro-1.jpg ("DMA Throughput
# varying Bytes per Partition for p_dim = 128"): each point's height over the 32 KiB point, read off the
# figure's pixels (+-0.01; the figure has no y scale, so only the shape is usable).
DMA_FIGURE = {
    32: 0.014, 64: 0.026, 128: 0.050, 256: 0.103, 512: 0.209, 1024: 0.424,
    2048: 0.813, 4096: 0.966, 8192: 0.983, 16384: 0.990, 32768: 1.0,
}  # fmt: skip
PARTITIONS_PER_QUEUE = 8  # 128 partitions over 16 queues (the DMA overview)


def figure_check(target: str) -> None:
    """The model's relative throughput of a [128, b] transfer against AWS's DMA throughput figure."""
    dma = load_preset(target).core.dma

    def throughput(b: int) -> float:
        nbytes = PARTITIONS_PER_QUEUE * b
        return nbytes / dma_queue_occupancy_ns(dma, dma_transfer_ns(dma, nbytes, b, float("inf")))

    peak = throughput(32768)
    print(f"\n| bytes per partition | AWS figure (relative) | trnsim {target} (relative) |")
    print("|---:|---:|---:|")
    for b, fig in DMA_FIGURE.items():
        print(f"| {b} | {fig:.3f} | {throughput(b) / peak:.3f} |")


def load_tutorial(root: Path) -> ModuleType:
    path = root / TUTORIAL
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass the root of an extracted aws-neuron/nki-samples checkout")
    trnsim.nki.install_aliases()
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_transfer_overhead() -> HardwareSpec:
    base = load_preset("trn1").model_dump()
    base["core"]["dma"]["transfer_overhead_ns"] = 0.0
    return spec_from_dict(base)


def predict_ms(kernel: object, target: str | HardwareSpec) -> tuple[float, float]:
    """Predicted latency (ms) and simulation wall time (s) of one timing-mode run on one core."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tutorials use NKI beta's tensor_copy(dtype=); trnsim warns
        prof = trnsim.nki.profile(kernel, target=target, mode="timing", cores=1)(
            TensorSpec((K, M), "bfloat16"), TensorSpec((K, N), "bfloat16")
        )
    return prof.latency_us / 1000.0, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("nki_samples", type=Path, help="root of an extracted aws-neuron/nki-samples checkout")
    parser.add_argument(
        "--compare-without-overhead", action="store_true", help="also predict with transfer_overhead_ns = 0"
    )
    args = parser.parse_args()
    module = load_tutorial(args.nki_samples)
    old = without_transfer_overhead() if args.compare_without_overhead else None
    header = "| kernel | published ms | trnsim ms | error |"
    rule = "|---|---:|---:|---:|"
    if old is not None:
        header += " without per-transfer overhead ms | error |"
        rule += "---:|---:|"
    print(header)
    print(rule, flush=True)
    for row in PUBLISHED:
        kernel = getattr(module, row.kernel)
        ms, _ = predict_ms(kernel, "trn1")
        line = f"| {row.label} | {row.latency_ms:.2f} | {ms:.2f} | {(ms / row.latency_ms - 1) * 100:+.0f}% |"
        if old is not None:
            ms_old, _ = predict_ms(kernel, old)
            line += f" {ms_old:.2f} | {(ms_old / row.latency_ms - 1) * 100:+.0f}% |"
        print(line, flush=True)
    figure_check("trn1")


if __name__ == "__main__":
    main()

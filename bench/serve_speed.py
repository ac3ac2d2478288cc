"""How fast the serving simulator runs: 100k requests through continuous batching (target <= 60 s).

Run: .venv/bin/python bench/serve_speed.py [--requests N] [--scheduler continuous|chunked|static] [--profile]
Model: Llama-3.1-8B in bf16 on one Trainium2 chip, step times from the analytic RooflineStepCost fed
through a StepLatencyGrid (computed once, cached in a SQLite file, interpolated per step) - the way the
compiler's estimate is used. Only the simulation is timed; building the grid is reported apart.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import tempfile
import time
from pathlib import Path

from trnsim.hw import load_preset
from trnsim.serve import (
    ChunkedPrefill,
    ContinuousBatching,
    Poisson,
    Replica,
    RooflineStepCost,
    ServedModel,
    StaticBatching,
    StepLatencyGrid,
    Uniform,
    Workload,
    geometric_axis,
    simulate,
)

# Llama-3.1-8B (meta-llama/Llama-3.1-8B config.json): 8.03e9 parameters, 32 layers, 8 KV heads of dim 128.
PARAMS = 8.03e9
KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2  # K and V, 32 layers, 8 heads x 128, bf16
WEIGHT_BYTES = PARAMS * 2  # bf16


def build_setup(cache: Path) -> tuple[ServedModel, Replica, StepLatencyGrid, float]:
    chip = load_preset("trn2").chip
    roofline = RooflineStepCost(
        weight_bytes=WEIGHT_BYTES,
        flops_per_token=2 * PARAMS,
        kv_bytes_per_token=KV_BYTES_PER_TOKEN,
        peak_flops=chip.dense_bf16_tflops * 1e12,
        hbm_bytes_per_s=chip.hbm_bytes_per_ns * 1e9,
        fixed_overhead_s=0.0,
    )
    t0 = time.perf_counter()
    grid = StepLatencyGrid(
        roofline.step_time_s,
        batches=geometric_axis(1, 512, 12),
        new_tokens=geometric_axis(1, 16384, 16),
        contexts=[0, *geometric_axis(16, 16384, 12)],
        cache_path=cache,
        key="bench:llama-3.1-8b:trn2:tp1:roofline",
    )
    grid_s = time.perf_counter() - t0
    model = ServedModel("llama-3.1-8b", WEIGHT_BYTES, KV_BYTES_PER_TOKEN, PARAMS)
    return model, Replica(chip.hbm_bytes, grid, name="trn2 chip"), grid, grid_s


def run(requests: int, scheduler: str, cache: Path) -> None:
    model, replica, grid, grid_s = build_setup(cache)
    print(f"step grid: {len(grid.table.flat)} points, {grid.evaluated} computed, {grid_s:.2f} s (cache {cache})")
    config = {"continuous": ContinuousBatching(), "chunked": ChunkedPrefill(), "static": StaticBatching(32)}[scheduler]
    # ~75% of the ~21 req/s one chip sustains for these lengths: queues stay bounded, batches stay large.
    work = Workload(requests, Poisson(16.0), Uniform(128, 2048), Uniform(32, 512), seed=7)
    t0 = time.perf_counter()
    result = simulate(model, replica, work, config)
    wall = time.perf_counter() - t0
    m = result.metrics
    steps = int(result.steps.sum())
    print(
        f"{scheduler}: {requests:,} requests, {steps:,} steps, {int(result.output_tokens.sum()):,} output tokens "
        f"simulated in {wall:.1f} s ({requests / wall:,.0f} req/s, {steps / wall:,.0f} steps/s)"
    )
    print(
        f"  simulated: {m.duration_s:,.0f} s, {m.throughput_tok_s:,.0f} tok/s, TTFT p50 {m.ttft_ms.p50:.0f} ms, "
        f"TPOT p50 {m.tpot_ms.p50:.1f} ms p99 {m.tpot_ms.p99:.1f} ms, utilisation {m.utilization:.0%}, "
        f"preemptions {m.preemptions}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--scheduler", default="continuous", choices=["continuous", "chunked", "static"])
    ap.add_argument("--profile", action="store_true", help="print the simulator's own hot spots (cProfile)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "step_latency.sqlite"
        if args.profile:
            pr = cProfile.Profile()
            pr.enable()
            run(args.requests, args.scheduler, cache)
            pr.disable()
            buf = io.StringIO()
            pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(15)
            print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:4000])
        else:
            run(args.requests, args.scheduler, cache)


if __name__ == "__main__":
    main()

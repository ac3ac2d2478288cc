"""How fast the simulator itself runs: instructions per second in timing-only and functional modes.

Run: .venv/bin/python bench/simulator_speed.py [--profile]
Timing mode traces and schedules a 4096x8192x8192 bf16 tiled matmul (~100k instructions) from shapes
only; functional mode computes a stream of 128x512 fp32 tile instructions. Tracing (running the kernel's
Python to build the instruction stream) and scheduling (the event-driven timing) are reported apart.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import time

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.demo import tiled_matmul
from trnsim.hw import load_preset
from trnsim.sim.scheduler import schedule


@nki.jit
def tile_stream(x, reps: int):
    """Loads then `reps` rounds of Vector/Scalar work on 128x512 fp32 tiles, then a store."""
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    a = nl.load(x[0:128, :])
    b = nl.load(x[128:256, :])
    for _ in range(reps):
        c = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=c, data1=a, data2=b, op=nl.add)
        d = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=d, op=nl.exp, data=c, scale=0.001)
        nisa.tensor_scalar(dst=a, data=d, op0=nl.multiply, operand0=0.5)
    nl.store(out, a)
    return out


def bench_timing(m: int, k: int, n: int) -> dict[str, float]:
    args = (nki.TensorSpec((k, m), "bfloat16"), nki.TensorSpec((k, n), "bfloat16"))
    t0 = time.perf_counter()
    prof = nki.profile(tiled_matmul, target="trn2", mode="timing", cores=1)(*args)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    schedule(prof.instructions, load_preset("trn2"), 1)
    sched = time.perf_counter() - t1
    count = prof.instruction_count
    return {
        "instructions": count,
        "total_s": total,
        "schedule_s": sched,
        "trace_s": total - sched,
        "end_to_end_per_s": count / total,
        "schedule_per_s": count / sched,
        "trace_per_s": count / (total - sched),
        "simulated_latency_us": prof.latency_us,
    }


def bench_functional(reps: int) -> dict[str, float]:
    x = np.random.default_rng().standard_normal((256, 512)).astype(np.float32)
    t0 = time.perf_counter()
    prof = nki.profile(tile_stream, target="trn2")(x, reps)
    total = time.perf_counter() - t0
    return {"instructions": prof.instruction_count, "total_s": total, "per_s": prof.instruction_count / total}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", action="store_true", help="print the simulator's own hot spots (cProfile)")
    ap.add_argument("--small", action="store_true", help="2048^3 instead of 4096x8192x8192")
    args = ap.parse_args()
    shape = (2048, 2048, 2048) if args.small else (4096, 8192, 8192)
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    res = bench_timing(*shape)
    print(f"timing mode, matmul {shape[0]}x{shape[1]}x{shape[2]} bf16 on trn2: {res['instructions']:,} instructions")
    print(f"  end to end  {res['total_s']:.2f} s = {res['end_to_end_per_s']:,.0f} instr/s")
    print(f"  tracing     {res['trace_s']:.2f} s = {res['trace_per_s']:,.0f} instr/s")
    print(f"  scheduling  {res['schedule_s']:.2f} s = {res['schedule_per_s']:,.0f} instr/s")
    print(f"  simulated latency {res['simulated_latency_us']:,.1f} us")
    fres = bench_functional(2000)
    print(
        f"functional mode, 128x512 fp32 tiles: {fres['instructions']:,} instructions in {fres['total_s']:.2f} s "
        f"= {fres['per_s']:,.0f} instr/s"
    )
    if args.profile:
        for label, fn in (
            ("timing", lambda: bench_timing(2048, 2048, 2048)),
            ("functional", lambda: bench_functional(500)),
        ):
            pr = cProfile.Profile()
            pr.enable()
            fn()
            pr.disable()
            buf = io.StringIO()
            pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(12)
            print(f"--- {label} mode: top functions by own time ---")
            print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:3000])


if __name__ == "__main__":
    main()

"""Simulator speed on library kernels at model scale: instructions per second, in full and with loop extension.

Run: .venv/bin/python bench/simulator_speed_library.py [--only matmul|flash]

For each kernel (the 4096x8192x8192 bf16 library matmul and a causal flash attention), timing mode:
  - full simulation: tracing (the kernel's Python builds the instruction stream) and scheduling (event-driven
    timing), each in wall and CPU seconds, and instructions per second end to end;
  - through the kernel runner with loop extension (compiler/loop_extrapolation.py), empty cache: wall and CPU
    seconds, the latency's difference from the full simulation, and the full instruction count divided by
    the time taken ("covered" instructions per second: most of them were never simulated).
CPU seconds are the process's own (time.process_time): on a shared machine they move less than wall time.

Both runs are timed as trnsim.estimate runs its kernels: with the objects older than the run frozen for the
cyclic collector (trnsim/gc_control.py older_objects_frozen). Otherwise a full collection walks the ~340k objects
the imports made (0.17-0.3 CPU s each) whenever the objects a trace keeps have grown by a quarter, which lands
in some runs and not others (a full matmul run took 0.28 or 0.58 CPU s). --gc-as-python times them with the
collector as Python leaves it. --repeat N times each N times (the first in a process also pays one-off costs:
numba's compiled scheduler loading, templates traced once).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
from typing import Any

from trnsim import kernels
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import cost_of, run_kernel
from trnsim.gc_control import older_objects_frozen
from trnsim.hw import load_preset
from trnsim.nki.kernel import TensorSpec, trace

BF16 = "bfloat16"
CASES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "matmul": (kernels.matmul, (TensorSpec((4096, 8192), BF16), TensorSpec((8192, 8192), BF16))),
    "flash": (kernels.flash_attention, (TensorSpec((2, 32, 4096, 128), BF16),) * 3),
}


class Clock:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def bench(name: str, target: str, frozen: bool) -> None:
    kernel, args = CASES[name]
    spec = load_preset(target)
    with older_objects_frozen() if frozen else contextlib.nullcontext():
        full_run(name, kernel, args, spec, target)
    with older_objects_frozen() if frozen else contextlib.nullcontext():
        extended_run(kernel, args, spec)


_FULL: dict[str, Any] = {}


def full_run(name: str, kernel: Any, args: tuple[Any, ...], spec: Any, target: str) -> None:
    clock = Clock()
    traced = trace(kernel, args, {}, target=spec, mode="timing", cores=1)
    trace_s = clock.lap()
    full = cost_of(traced.profile())
    schedule_s = clock.lap()
    n = full.instructions
    wall = trace_s[0] + schedule_s[0]
    cpu = trace_s[1] + schedule_s[1]
    print(
        f"{name} {[list(a.shape) for a in args]} on {target}: {n:,} instructions, {full.latency_us:,.1f} us simulated"
    )
    print(f"  tracing      {trace_s[0]:7.2f} s wall {trace_s[1]:7.2f} s cpu = {n / trace_s[1]:>10,.0f} instr/cpu-s")
    print(
        f"  scheduling   {schedule_s[0]:7.2f} s wall {schedule_s[1]:7.2f} s cpu "
        f"= {n / schedule_s[1]:>10,.0f} instr/cpu-s"
    )
    print(
        f"  end to end   {wall:7.2f} s wall {cpu:7.2f} s cpu = {n / cpu:>10,.0f} instr/cpu-s ({n / wall:,.0f}/wall-s)"
    )
    del traced
    _FULL["cost"] = full


def extended_run(kernel: Any, args: tuple[Any, ...], spec: Any) -> None:
    full = _FULL["cost"]
    n = full.instructions
    clock = Clock()
    _, fast = run_kernel(kernel, args, {}, spec, False, KernelCache(use_disk=False), extrapolate=True)
    ext = clock.lap()
    print(
        f"  extended     {ext[0]:7.2f} s wall {ext[1]:7.2f} s cpu = {n / ext[1]:>10,.0f} covered instr/cpu-s "
        f"({n / ext[0]:,.0f}/wall-s); latency {fast.latency_us / full.latency_us - 1:+.3%} vs full"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=sorted(CASES), default=None)
    ap.add_argument("--target", default="trn2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--gc-as-python", action="store_true", help="no freeze of older objects (see the docstring)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("collector: " + ("as Python leaves it" if args.gc_as_python else "older objects frozen, as in estimate"))
    for _ in range(args.repeat):
        for name in CASES:
            if args.only in (None, name):
                bench(name, args.target, not args.gc_as_python)


if __name__ == "__main__":
    main()

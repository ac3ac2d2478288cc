"""How fast a serving step grid builds cold: Llama-3.1-8B on trn2 with core.dma.queue_bytes_per_ns=23, the first
point of the README sweep (target <= 20 CPU s; issue 12).

Run: .venv/bin/python -P bench/step_grid_speed.py [--model M] [--target T] [--set path=value ...] [--tp N]
     [--parts] [--profile FILE]
(-P: bench/kernels.py would shadow the `kernels` package transformers imports.)
The grid bounds are the README sweep's (`--rate 2 --requests 100`, continuous batching): max_batch 100,
max_context 640, max_new_tokens 8192. Every run starts from an empty kernel cache and step-latency cache (a
temporary TRNSIM_CACHE_DIR) and counts CPU seconds (time.process_time), not wall time, since the machine is shared.
--parts: also the CPU seconds of each part (dense(N) per N, the LM head over batches, decode attention, the
flash reference), measured inside the same cold build, and the dense(N) values.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

README_SET = {"core.dma.queue_bytes_per_ns": 23}
BOUNDS = {"max_batch": 100, "max_context": 640, "max_new_tokens": 8192}


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        path, _, value = item.partition("=")
        out[path] = float(value) if "." in value else int(value)
    return out


@contextmanager
def _timed_parts(parts_seconds: dict[str, float]) -> Iterator[None]:
    """Adds each StepComponents part's CPU seconds (outermost calls only) to parts_seconds."""
    from trnsim.serve import step_components as sc

    cls = sc.StepComponents
    originals: dict[str, Any] = {}
    depth = [0]

    def wrap(name: str, fn: Callable[..., Any], label: Callable[[tuple[Any, ...]], str]) -> Callable[..., Any]:
        def timed(self: Any, *args: Any) -> Any:
            if depth[0]:
                return fn(self, *args)
            depth[0] += 1
            start = time.process_time()
            try:
                return fn(self, *args)
            finally:
                parts_seconds[label(args)] += time.process_time() - start
                depth[0] -= 1

        return timed

    labels: dict[str, Callable[[tuple[Any, ...]], str]] = {
        "dense_s": lambda a: f"dense({a[0]})",
        "lm_head_s": lambda a: "lm_head(B)",
        "decode_attention_s": lambda a: "decode_attention(B, C)",
        "prefill_attention_s": lambda a: "prefill_attention (flash reference)",
    }
    for name, label in labels.items():
        originals[name] = cls.__dict__[name]
        setattr(cls, name, wrap(name, originals[name], label))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(cls, name, fn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--target", default="trn2")
    ap.add_argument("--set", nargs="*", default=None, help="spec overrides path=value (default the README's)")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--parts", action="store_true", help="CPU seconds of each part too")
    ap.add_argument("--profile", default=None, help="write a cProfile of the build to this file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["TRNSIM_CACHE_DIR"] = cache
        start = time.process_time()
        from trnsim.compiler.kernel_cache import reset_default_cache
        from trnsim.hw.presets import get_spec
        from trnsim.serve.estimate_step_cost import estimated_step_cost
        from trnsim.sweep.spec_override import override_spec

        reset_default_cache(None)
        imports = time.process_time() - start
        overrides = README_SET if args.set is None else _parse_set(args.set)
        spec = override_spec(get_spec(args.target), overrides)
        parts: dict[str, float] = defaultdict(float)
        profiler = cProfile.Profile() if args.profile else None
        with _timed_parts(parts) if args.parts else _nothing():
            start = time.process_time()
            if profiler:
                profiler.enable()
            cost = estimated_step_cost(args.model, spec, args.tp, **BOUNDS)
            if profiler:
                profiler.disable()
            build = time.process_time() - start
        if profiler:
            profiler.dump_stats(args.profile)
        components = cost.components()
        dense = dict(sorted(components._dense.items()))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    grid = cost.grid
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; commit {commit}")
    print(
        f"{args.model} on {args.target} {overrides} tp={args.tp}: grid {len(grid.batches)} x "
        f"{len(grid.new_tokens)} x {len(grid.contexts)} = {grid.evaluated} points, {cost.estimate_calls} estimates"
    )
    print(f"imports {imports:.1f} CPU s; cold grid build {build:.1f} CPU s (target <= 20)")
    for name, seconds in parts.items():
        print(f"  {name:40s} {seconds:6.1f} CPU s")
    if parts:
        print(f"  {'rest (grid assembly, cache keys)':40s} {build - sum(parts.values()):6.1f} CPU s")
    print("dense(N), ms: " + ", ".join(f"{n}: {s * 1e3:.4f}" for n, s in dense.items()))


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()

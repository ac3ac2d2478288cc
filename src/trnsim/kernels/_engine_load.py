"""Splitting work between ScalarE, VectorE and GpSimd so no one engine bounds a memory-bound kernel.

Some steps can run on more than one engine: a per-row scale is `activation(copy, scale=s)` on ScalarE
or `tensor_scalar(multiply, s)` on VectorE; a tensor_tensor runs on VectorE or GpSimd. `EngineLoad`
keeps a running estimate of each engine's busy time from the documented instruction costs (about one
element per partition per cycle, twice that for two-input VectorE ops, perf modes for bf16 on NC-v3+,
GpSimd's start-up) and gives each such step to the engine that will be free first.
"""

from __future__ import annotations

from typing import Any

from trnsim import dtypes
from trnsim.kernels._common import core


def low_precision(*tiles: Any) -> bool:
    """Whether every tile is bf16/fp16 (what VectorE's perf modes need)."""
    return all(t.dtype in dtypes.LOW_PRECISION_FLOATS for t in tiles)


class EngineLoad:
    """Estimated busy ns per engine for the work a kernel has handed out so far."""

    def __init__(self) -> None:
        c = core()
        self._spec = c
        self._ghz = {"vector": c.vector.clock_ghz, "scalar": c.scalar.clock_ghz, "gpsimd": c.gpsimd.clock_ghz}
        self.busy = dict.fromkeys(self._ghz, 0.0)

    def _ns(self, engine: str, cycles: float) -> float:
        return max(float(self._spec.vector.min_ii_cycles), cycles) / self._ghz[engine]

    def add(self, engine: str, cycles: float) -> None:
        self.busy[engine] += self._ns(engine, cycles)

    def pick(self, **cycles: float) -> str:
        """Charge one instruction (keyword = engine, value = its cycles there) to an engine; returns its name."""
        options = [{engine: c} for engine, c in cycles.items()]
        return next(iter(options[self.choose(*options)]))

    def choose(self, *options: dict[str, float]) -> int:
        """Pick one of several ways to do a step (each: engine -> cycles), charge it, return its index.

        The way that leaves its busiest engine least busy wins (ties: the shorter chain of instructions),
        so the engines fill evenly and none of them outruns the DMA queues.
        """

        def finish(o: dict[str, float]) -> float:
            return max(self.busy[e] + self._ns(e, c) for e, c in o.items())

        def chain(o: dict[str, float]) -> float:
            return sum(self._ns(e, c) for e, c in o.items())

        best = min(range(len(options)), key=lambda i: (finish(options[i]), chain(options[i])))
        for engine, c in options[best].items():
            self.add(engine, c)
        return best

    def gpsimd_helps(self) -> bool:
        """GpSimd adds throughput only where it does not share VectorE's SBUF port (NC-v3 on)."""
        return not any({"vector", "gpsimd"} <= set(group) for group in self._spec.sbuf_exclusive_engines)

    # -- cycle estimates (trainium.md §3.6-3.7) ---------------------------------------------------------
    def scalar_cycles(self, n: int) -> float:
        """One ScalarE instruction over n elements per partition (scale and bias are free)."""
        return float(n)

    def vector_scalar_cycles(self, n: int, *tiles: Any) -> float:
        """tensor_scalar / tensor_copy: 4x faster (NC-v3+) when every operand is bf16 in SBUF."""
        return n / (self._spec.vector.bf16_copy_speedup if low_precision(*tiles) else 1.0)

    def vector_tensor_cycles(self, n: int, *tiles: Any, fast_op: bool = True) -> float:
        """tensor_tensor: 2 cycles per element, 1 for all-bf16 add/subtract/multiply, then the 2x perf mode."""
        if low_precision(*tiles):
            return (n if fast_op else 2 * n) / self._spec.vector.bf16_speedup
        return 2.0 * n

    def vector_reduce_cycles(self, n: int, *tiles: Any) -> float:
        """tensor_reduce: half a cycle per element with bf16 in and out (add / max)."""
        return n / 2 if low_precision(*tiles) else float(n)

    def gpsimd_tensor_cycles(self, n: int) -> float:
        return float(self._spec.gpsimd.start_cycles + 2 * n)

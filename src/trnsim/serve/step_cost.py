"""How long one model step takes: the protocol every step-latency source implements, and an analytic one.

A *step* is one forward pass of the served model over a batch: `batch` sequences, `new_tokens` tokens fed
in total (prefill-chunk tokens plus one per decoding sequence, or k+1 per sequence when verifying
speculative drafts) and `context` = the mean KV-cache length per sequence that attention reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from trnsim.serve.errors import ServeError


@runtime_checkable
class StepCost(Protocol):
    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        """Seconds for one model step over `batch` sequences, `new_tokens` new tokens, mean KV length `context`."""
        ...


@dataclass(frozen=True)
class RooflineStepCost:
    """An analytic step cost: max(compute time, memory time) + a fixed per-step overhead.

    compute = flops_per_token * new_tokens / peak_flops
    memory  = (weight_bytes + kv_bytes_per_token * batch * context) / hbm_bytes_per_s
    Every weight is read once per step and every sequence's KV cache once; attention FLOPs and activation
    traffic are not counted. It is a bound, not a measurement: use it for tests, quick what-ifs and as a
    sanity check next to the compiler's estimate (fed in through `StepLatencyGrid`).
    """

    weight_bytes: float
    flops_per_token: float  # ~2 x parameters for a dense decoder
    kv_bytes_per_token: float
    peak_flops: float
    hbm_bytes_per_s: float
    fixed_overhead_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("flops_per_token", "peak_flops", "hbm_bytes_per_s"):
            if not getattr(self, name) > 0:
                raise ServeError(f"RooflineStepCost.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_bytes", "kv_bytes_per_token", "fixed_overhead_s"):
            if not getattr(self, name) >= 0:
                raise ServeError(f"RooflineStepCost.{name} must be >= 0, got {getattr(self, name)!r}")

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        compute = self.flops_per_token * new_tokens / self.peak_flops
        memory = (self.weight_bytes + self.kv_bytes_per_token * batch * context) / self.hbm_bytes_per_s
        return max(compute, memory) + self.fixed_overhead_s

"""Batch schedulers: static batching, continuous batching (vLLM-style), chunked prefill (Sarathi-style)."""

from __future__ import annotations

from trnsim.serve.errors import ServeError
from trnsim.serve.schedulers.base import ReplicaContext, ReplicaScheduler, StepRecord
from trnsim.serve.schedulers.chunked import ChunkedPrefill
from trnsim.serve.schedulers.continuous import ContinuousBatching
from trnsim.serve.schedulers.speculative import SpeculativeDecoding
from trnsim.serve.schedulers.static import StaticBatching

SchedulerConfig = StaticBatching | ContinuousBatching | ChunkedPrefill
SCHEDULERS: dict[str, type[SchedulerConfig]] = {
    "static": StaticBatching,
    "continuous": ContinuousBatching,
    "chunked": ChunkedPrefill,
}


def scheduler_from_name(name: str, max_batch: int | None = None, token_budget: int | None = None) -> SchedulerConfig:
    """A scheduler config from its CLI name, with optional caps (defaults otherwise)."""
    if name not in SCHEDULERS:
        raise ServeError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    kwargs: dict[str, int] = {}
    if max_batch is not None:
        kwargs["max_batch"] = max_batch
    if token_budget is not None:
        if name == "static":
            raise ServeError("a token budget applies to the chunked and continuous schedulers, not static")
        kwargs["token_budget" if name == "chunked" else "max_batched_tokens"] = token_budget
    return SCHEDULERS[name](**kwargs)


__all__ = [
    "SCHEDULERS",
    "ChunkedPrefill",
    "ContinuousBatching",
    "ReplicaContext",
    "ReplicaScheduler",
    "SchedulerConfig",
    "SpeculativeDecoding",
    "StaticBatching",
    "StepRecord",
    "scheduler_from_name",
]

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

# What users call them: vLLM / Orca's iteration-level scheduling, Sarathi-Serve's chunked prefill, and the
# request-level batching of FasterTransformer / early TGI.
ALIASES: dict[str, str] = {
    "static-batching": "static",
    "request-level": "static",
    "continuous-batching": "continuous",
    "vllm": "continuous",
    "orca": "continuous",
    "iteration-level": "continuous",
    "chunked-prefill": "chunked",
    "sarathi": "chunked",
    "sarathi-serve": "chunked",
}


def canonical_scheduler(name: str) -> str:
    """The scheduler's own name for `name` or one of its ALIASES (case and _/- insensitive)."""
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in SCHEDULERS:
        known = ", ".join(f"{n} ({', '.join(a for a, c in ALIASES.items() if c == n)})" for n in SCHEDULERS)
        raise ServeError(f"unknown scheduler {name!r}; choose one of: {known}")
    return key


def scheduler_from_name(name: str, max_batch: int | None = None, token_budget: int | None = None) -> SchedulerConfig:
    """A scheduler config from its CLI name or an alias (vllm, sarathi, ...), with optional caps."""
    name = canonical_scheduler(name)
    kwargs: dict[str, int] = {}
    if max_batch is not None:
        kwargs["max_batch"] = max_batch
    if token_budget is not None:
        if name == "static":
            raise ServeError("a token budget applies to the chunked and continuous schedulers, not static")
        kwargs["token_budget" if name == "chunked" else "max_batched_tokens"] = token_budget
    return SCHEDULERS[name](**kwargs)


__all__ = [
    "ALIASES",
    "SCHEDULERS",
    "ChunkedPrefill",
    "ContinuousBatching",
    "ReplicaContext",
    "ReplicaScheduler",
    "SchedulerConfig",
    "SpeculativeDecoding",
    "StaticBatching",
    "StepRecord",
    "canonical_scheduler",
    "scheduler_from_name",
]

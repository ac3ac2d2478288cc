"""The few numbers about a model a sweep point needs, as plain data.

Kept apart from trnsim.models.ModelFacts on purpose: unpickling a ModelFacts imports trnsim.models, hence
torch and transformers, in every worker process; these sizes travel to workers for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from trnsim.sweep.errors import SweepError

BYTES_PER_PARAM = {"bfloat16": 2.0, "float16": 2.0, "float8": 1.0, "float32": 4.0}


@dataclass(frozen=True)
class ModelSizes:
    name: str
    weight_bytes: float
    kv_bytes_per_token: float  # K and V of all layers and KV heads for one token
    params: float
    active_params: float  # per token (differs from params for mixture-of-experts models)
    kv_heads: int = 0  # 0: unknown, the KV cache is never replicated

    def kv_bytes_per_token_at(self, tp: int) -> float:
        """KV bytes per token over all tp ranks: with fewer KV heads than ranks each rank still holds one head
        (heads are replicated, as Megatron and NxD do, and as trnsim.serve.setup counts them)."""
        if self.kv_heads <= 0 or tp <= self.kv_heads:
            return self.kv_bytes_per_token
        return self.kv_bytes_per_token * tp / self.kv_heads


def bytes_per_param(dtype: str) -> float:
    if dtype not in BYTES_PER_PARAM:
        raise SweepError(f"unknown dtype {dtype!r}; choose one of: {', '.join(BYTES_PER_PARAM)}")
    return BYTES_PER_PARAM[dtype]


@cache
def model_sizes(model: str, dtype: str = "bfloat16") -> ModelSizes:
    """Sizes of a model preset or config.json path at `dtype` (weights and KV cache in the same dtype)."""
    from trnsim.models import model_facts  # loads torch and transformers: only where a config is read

    width = bytes_per_param(dtype)
    facts = model_facts(model)
    return ModelSizes(
        name=facts.name,
        weight_bytes=facts.weight_bytes(width),
        kv_bytes_per_token=facts.kv_bytes_per_token(width),
        params=facts.n_params,
        active_params=facts.active_params,
        kv_heads=facts.n_kv_heads,
    )

"""What is served (`ServedModel`) on what (`Replica`), and how much KV cache that leaves.

Sizes are totals for one replica: a model sharded with tensor parallelism over 64 cores has its whole
`weight_bytes` spread over the replica's whole `device_memory_bytes`. Presets for real models and
instances are glued on elsewhere; these are plain data.
"""

from __future__ import annotations

from dataclasses import dataclass

from trnsim.serve.errors import ModelDoesNotFitError, ServeError
from trnsim.serve.step_cost import StepCost

GIB = 1024**3

# assumption: like vLLM's default gpu_memory_utilization=0.9, 10% of device memory is held back for
# activations, the runtime and fragmentation; the rest minus the weights becomes KV cache.
DEFAULT_RESERVE_FRACTION = 0.1
DEFAULT_BLOCK_TOKENS = 16  # vLLM's default KV block size


@dataclass(frozen=True)
class ServedModel:
    name: str
    weight_bytes: float
    kv_bytes_per_token: float  # K and V of every layer for one token (all KV heads, all shards)
    params: float  # parameter count

    def __post_init__(self) -> None:
        if not (self.weight_bytes > 0 and self.kv_bytes_per_token > 0 and self.params > 0):
            raise ServeError(
                f"ServedModel {self.name!r} needs weight_bytes, kv_bytes_per_token and params > 0, got "
                f"{self.weight_bytes}, {self.kv_bytes_per_token}, {self.params}"
            )


@dataclass(frozen=True)
class Replica:
    """One model instance (a tp group of chips) that serves requests on its own."""

    device_memory_bytes: float
    step_cost: StepCost
    price_per_hour: float | None = None  # USD for the whole replica
    power_w: float | None = None  # watts drawn by the whole replica
    name: str = ""

    def __post_init__(self) -> None:
        if not self.device_memory_bytes > 0:
            raise ServeError(f"Replica {self.name!r}: device_memory_bytes must be > 0, got {self.device_memory_bytes}")
        for field in ("price_per_hour", "power_w"):
            value = getattr(self, field)
            if value is not None and not value >= 0:
                raise ServeError(f"Replica {self.name!r}: {field} must be >= 0 or None, got {value}")
        if not callable(getattr(self.step_cost, "step_time_s", None)):
            raise ServeError(f"Replica {self.name!r}: step_cost must have step_time_s(batch, new_tokens, context)")


def kv_cache_blocks(
    model: ServedModel,
    replica: Replica,
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    reserve_fraction: float = DEFAULT_RESERVE_FRACTION,
) -> int:
    """KV blocks that fit in the replica: (memory x (1 - reserve) - weights) / bytes per block.

    Raises ModelDoesNotFitError (with needed vs available memory) when not even one block fits.
    """
    if block_tokens < 1:
        raise ServeError(f"KV block size must be >= 1 token, got {block_tokens}")
    if not 0 <= reserve_fraction < 1:
        raise ServeError(f"KV reserve fraction must be in [0, 1), got {reserve_fraction}")
    usable = replica.device_memory_bytes * (1 - reserve_fraction)
    block_bytes = model.kv_bytes_per_token * block_tokens
    blocks = int((usable - model.weight_bytes) // block_bytes)
    if blocks < 1:
        raise ModelDoesNotFitError(
            f"{model.name or 'the model'} does not fit replica {replica.name or '(unnamed)'}: it needs "
            f"{model.weight_bytes / GIB:.2f} GiB of weights plus KV cache, but only {usable / GIB:.2f} GiB of "
            f"{replica.device_memory_bytes / GIB:.2f} GiB is usable after the {reserve_fraction:.0%} reserve; "
            "raise tp (shard over more chips) or use an instance with more memory"
        )
    return blocks

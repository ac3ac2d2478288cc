"""Shared setup for the serving tests: a small illustrative model on an illustrative device.

The numbers are round values chosen to make effects visible in small runs, not a real chip's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from trnsim.serve import Replica, RooflineStepCost, ServedModel, StepCost

GIB = 1024**3
WEIGHT_BYTES = 2e9
KV_BYTES_PER_TOKEN = 65536.0


@pytest.fixture
def model() -> ServedModel:
    return ServedModel("test-1b", weight_bytes=WEIGHT_BYTES, kv_bytes_per_token=KV_BYTES_PER_TOKEN, params=1e9)


@pytest.fixture
def cost() -> RooflineStepCost:
    return RooflineStepCost(
        weight_bytes=WEIGHT_BYTES,
        flops_per_token=2e9,
        kv_bytes_per_token=KV_BYTES_PER_TOKEN,
        peak_flops=100e12,
        hbm_bytes_per_s=1e12,
        fixed_overhead_s=1e-4,
    )


def _replica_with_kv_tokens(cost: StepCost, kv_tokens: int, **kwargs: Any) -> Replica:
    """A replica whose KV cache holds about `kv_tokens` tokens (after weights and the 10% reserve)."""
    memory = (WEIGHT_BYTES + kv_tokens * KV_BYTES_PER_TOKEN) / 0.9
    return Replica(memory, cost, **kwargs)


@pytest.fixture
def make_replica() -> Callable[..., Replica]:
    """make_replica(step_cost, kv_tokens, **Replica options)."""
    return _replica_with_kv_tokens


@pytest.fixture
def replica(cost: RooflineStepCost) -> Replica:
    return _replica_with_kv_tokens(cost, 200_000)

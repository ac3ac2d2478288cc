"""tp layouts, the weights-fit check, user-given capacity, and the not-yet-wired simulator hook."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.cost import CostError, Slo, capacity_from_user, load_prices, replica_capacity
from trnsim.cost.capacity_source import check_weights_fit, ranks_per_accelerator, replica_layout
from trnsim.hw import load_preset
from trnsim.models import model_facts


def test_ranks_per_chip_come_from_the_presets() -> None:
    for chip in ("trn1", "trn2", "inf2"):
        spec = load_preset(chip).chip
        assert ranks_per_accelerator(chip) == spec.physical_cores // spec.default_lnc
    assert ranks_per_accelerator("h100") == 1
    assert replica_layout("trn2.48xlarge", 64) == (1, 1)  # the example: tp=64 is one trn2.48xlarge


def test_layouts_on_random_tp(rng: np.random.Generator) -> None:
    prices = load_prices()
    for name in sorted(prices.instances):
        entry = prices.instance(name)
        ranks = entry.accelerators * ranks_per_accelerator(entry.accelerator)
        divisors = [d for d in range(1, ranks + 1) if ranks % d == 0]
        tp = int(rng.choice(divisors))
        assert replica_layout(name, tp) == (ranks // tp, 1)
        k = int(rng.integers(2, 5))
        assert replica_layout(name, ranks * k) == (1, k)
        tps = float(rng.uniform(1, 1e4))
        cap = capacity_from_user(tps, name, tp)
        assert (cap.tokens_per_s, cap.replicas_per_instance, cap.instances_per_replica) == (tps, ranks // tp, 1)


def test_bad_tp() -> None:
    with pytest.raises(CostError, match="does not divide the 64"):
        replica_layout("trn2.48xlarge", 48)
    with pytest.raises(CostError, match="multiple of 8"):
        replica_layout("p5.48xlarge", 12)
    with pytest.raises(CostError, match="positive integer"):
        replica_layout("p5.48xlarge", 0)


def test_weights_fit_check_matches_hbm_arithmetic() -> None:
    weights = model_facts("llama-3.1-405b").weight_bytes(2)  # ~756 GiB in bf16
    check_weights_fit(weights, "trn2.48xlarge", 64)  # 16 x 96 GiB = 1536 GiB
    with pytest.raises(CostError, match=r"756\.0 GiB\) do not fit the 640\.0 GiB"):
        check_weights_fit(weights, "p5.48xlarge", 8)
    with pytest.raises(CostError, match="do not fit"):
        check_weights_fit(weights, "trn2.48xlarge", 16)  # a quarter of the instance: 384 GiB
    check_weights_fit(weights, "p5.48xlarge", 16)


def test_simulator_capacity_needs_an_slo() -> None:
    with pytest.raises(CostError, match=r"give --slo-ttft-ms and/or --slo-tpot-ms.*--tokens-per-s-per-replica"):
        replica_capacity("llama-3.1-70b", "trn2.48xlarge", 64, Slo())

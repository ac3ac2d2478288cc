"""$/Mtok and J/token against the closed forms, on fresh random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.cost import CostError, joules_per_token, load_power, load_prices, server_power, usd_per_mtok


def test_usd_per_mtok_closed_form(rng: np.random.Generator) -> None:
    prices = load_prices()
    names = sorted(prices.instances)
    for _ in range(50):
        name = str(rng.choice(names))
        tps = float(rng.uniform(1.0, 1e5))
        n = int(rng.integers(1, 9))
        hourly = prices.instance(name).usd_per_hour
        assert usd_per_mtok(tps, name, instances=n) == pytest.approx(hourly * n * 1e6 / (3600 * tps), rel=1e-12)
        own = float(rng.uniform(0.5, 100.0))
        assert usd_per_mtok(tps, name, own) == pytest.approx(own * 1e6 / (3600 * tps), rel=1e-12)


def test_joules_per_token_closed_form(rng: np.random.Generator) -> None:
    prices, power = load_prices(), load_power()
    for _ in range(50):
        name = str(rng.choice(sorted(prices.instances)))
        entry = prices.instance(name)
        cooling = str(rng.choice(["air", "liquid"]))
        u, tps, n = float(rng.uniform(0, 1)), float(rng.uniform(10, 1e5)), int(rng.integers(1, 5))
        p_max = power.chips[entry.accelerator].value
        f = power.idle.fraction.value
        it_w = power.server_overhead_w[name].value + entry.accelerators * p_max * (f + u * (1 - f))
        expected = it_w * n * power.cooling[cooling].pue.value / tps
        assert joules_per_token(tps, name, u, cooling, instances=n) == pytest.approx(expected, rel=1e-12)


def test_power_is_linear_in_utilization(rng: np.random.Generator) -> None:
    server = server_power("trn2.48xlarge")
    idle, peak = server.watts(0.0), server.watts(1.0)
    assert idle < peak == server.peak_w
    for u in rng.uniform(0, 1, size=20):
        assert server.watts(float(u)) == pytest.approx(idle + float(u) * (peak - idle), rel=1e-12)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: usd_per_mtok(0, "p5.48xlarge"), "tokens_per_s must be a positive"),
        (lambda: usd_per_mtok(10, "p5.48xlarge", -1.0), "price"),
        (lambda: usd_per_mtok(10, "p5.48xlarge", instances=0), "instances must be a positive integer"),
        (lambda: joules_per_token(10, "p5.48xlarge", 1.5), "utilization must be a fraction"),
        (lambda: joules_per_token(10, "p5.48xlarge", 0.5, "immersion"), "unknown cooling 'immersion'; allowed: air"),
        (lambda: joules_per_token(10, "x1.nope", 0.5), "no price for instance"),
    ],
)
def test_bad_inputs(call: object, pattern: str) -> None:
    with pytest.raises(CostError, match=pattern):
        call()  # type: ignore[operator]

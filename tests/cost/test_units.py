"""The power-quantity parser against values written out by hand, on fresh random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.cost import CostError, format_power, parse_power

SCALE = {"W": 1.0, "kW": 1e3, "MW": 1e6, "GW": 1e9, "TW": 1e12}


def test_examples() -> None:
    assert parse_power("2GW") == 2e9
    assert parse_power("500MW") == 5e8
    assert parse_power("1.5 kW") == 1500.0
    assert parse_power("750") == 750.0
    assert parse_power(" .5gw ") == 5e8
    assert parse_power("2e3 MW") == 2e9
    assert parse_power(1e6) == 1e6


def test_random_quantities_round_trip(rng: np.random.Generator) -> None:
    for _ in range(200):
        unit = str(rng.choice(list(SCALE)))
        value = float(rng.uniform(0.001, 999.0))
        text = f"{value!r}{' ' * int(rng.integers(0, 3))}{unit if rng.integers(2) else unit.upper()}"
        assert parse_power(text) == pytest.approx(value * SCALE[unit], rel=1e-12)
        assert parse_power(format_power(value * SCALE[unit])) == pytest.approx(value * SCALE[unit], rel=1e-3)


@pytest.mark.parametrize("bad", ["", "GW", "2G", "2 GWh", "abc", "-1GW", "0W", "1e400W", "nan", "2..5MW"])
def test_bad_quantities_are_clear_errors(bad: str) -> None:
    with pytest.raises(CostError, match="power"):
        parse_power(bad)


def test_format_power() -> None:
    assert format_power(2e9) == "2 GW"
    assert format_power(1500.0) == "1.5 kW"
    assert format_power(12.0) == "12 W"

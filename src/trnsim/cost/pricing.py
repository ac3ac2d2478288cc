"""Dollars per million tokens from instance-hour prices."""

from __future__ import annotations

from trnsim.cost.energy import check_positive
from trnsim.cost.errors import CostError
from trnsim.cost.prices import PriceTable, load_prices

SECONDS_PER_HOUR = 3600.0
HOURS_PER_YEAR = 8760.0  # 365 x 24: a definition of "a year of operation", not a measured fact


def usd_per_mtok(
    tokens_per_s: float,
    instance: str,
    price: float | None = None,
    *,
    instances: int = 1,
    prices: PriceTable | None = None,
) -> float:
    """USD per million tokens when `instances` instances of `instance` together produce `tokens_per_s`.

    `price` overrides the table's USD per instance-hour. Formula: $/h x instances / (tokens/s x 3600) x 1e6.
    """
    check_positive(tokens_per_s, "tokens_per_s")
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
        raise CostError(f"instances must be a positive integer, got {instances!r}")
    if price is None:
        price = (prices or load_prices()).instance(instance).usd_per_hour
    check_positive(price, "price (USD per instance-hour)")
    return price * instances / (tokens_per_s * SECONDS_PER_HOUR) * 1e6

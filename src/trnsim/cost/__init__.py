"""Cost, power and fleet planning: prices and power as sourced data, $/Mtok, J/token, and `plan`.

from trnsim.cost import ReplicaCapacity, plan, usd_per_mtok, joules_per_token
fleet = plan(ReplicaCapacity(tokens_per_s=5000, instance="trn2.48xlarge", instances_per_replica=1),
             power_budget="2GW", cooling="liquid")
"""

from trnsim.cost.capacity_source import Slo, capacity_from_user, replica_capacity
from trnsim.cost.energy import ServerPower, joules_per_token, server_power
from trnsim.cost.errors import CostError
from trnsim.cost.fleet import CapacityPlan, ReplicaCapacity, plan
from trnsim.cost.power_table import PowerTable, load_power
from trnsim.cost.prices import InstancePrice, PriceTable, load_prices
from trnsim.cost.pricing import HOURS_PER_YEAR, usd_per_mtok
from trnsim.cost.units import format_power, parse_power

__all__ = [
    "HOURS_PER_YEAR",
    "CapacityPlan",
    "CostError",
    "InstancePrice",
    "PowerTable",
    "PriceTable",
    "ReplicaCapacity",
    "ServerPower",
    "Slo",
    "capacity_from_user",
    "format_power",
    "joules_per_token",
    "load_power",
    "load_prices",
    "parse_power",
    "plan",
    "replica_capacity",
    "server_power",
    "usd_per_mtok",
]

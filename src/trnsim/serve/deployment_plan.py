"""`trnsim plan --deployment FILE`: a fleet of identical instances, each packed with the file's tenants.

The deployment file (docs/instances.md) says how one instance is shared: which models, on which NeuronCores,
GPUs or MIG slices, under what traffic. `serve --deployment` simulates that instance, neighbours' interference
included; its tenants' output tokens/s together are the capacity of one planning unit, which cost/fleet.py
sizes like any replica (a whole instance, replicas_per_instance = 1):

    units = floor(power budget / (server peak W x PUE))   or   ceil(total demand / sum of tenants' tokens/s)

A demand (--tokens-per-s) is the total over all tenants, served in the mix the file gives. Each tenant's share
of the fleet's tokens is units x its tokens/s per instance; its $/Mtok is the serve figure (its cores' share
of the instance price over its own tokens). Cores or GPUs no tenant holds are still paid for.
"""

from __future__ import annotations

from typing import Any

from trnsim.cost import CapacityPlan, ReplicaCapacity, plan
from trnsim.cost.errors import CostError
from trnsim.cost.power_table import PowerTable
from trnsim.cost.prices import PriceTable

TENANT_COLUMNS = (
    "model",
    "where",
    "tp",
    "tokens_per_s_per_instance",
    "fleet_tokens_per_s",
    "share_of_tokens",
    "ttft_ms_p50",
    "tpot_ms_p50",
    "usd_per_mtok",
    "interference",
)


def plan_deployment(
    instance: str,
    tenants: dict[str, dict[str, Any]],
    *,
    power_budget: str | None,
    tokens_per_s: float | None,
    cooling: str = "air",
    usd_per_kwh: float | None = None,
    prices: PriceTable | None = None,
    power: PowerTable | None = None,
) -> tuple[CapacityPlan, dict[str, dict[str, Any]]]:
    """The fleet plan of instances packed like `tenants` (run_deployment's metrics), and each tenant's row."""
    per_instance = {name: float(m.get("throughput_tok_s") or 0.0) for name, m in tenants.items()}
    total = sum(per_instance.values())
    if total <= 0:
        raise CostError(f"the tenants on {instance} served no tokens in their simulation; nothing to plan with")
    capacity = ReplicaCapacity(total, instance)
    fleet = plan(
        capacity,
        power_budget=power_budget,
        tokens_per_s=tokens_per_s,
        cooling=cooling,
        usd_per_kwh=usd_per_kwh,
        prices=prices,
        power=power,
    )
    rows: dict[str, dict[str, Any]] = {}
    for name, m in tenants.items():
        tps = per_instance[name]
        rows[name] = {
            "model": m.get("model"),
            "where": f"cores {m['cores']}" if "cores" in m else m.get("gpus"),
            "tp": m.get("tp"),
            "tokens_per_s_per_instance": tps,
            "fleet_tokens_per_s": tps * fleet.instances * fleet.utilization,
            "share_of_tokens": tps / total,
            "ttft_ms_p50": (m.get("ttft_ms") or {}).get("p50"),
            "tpot_ms_p50": (m.get("tpot_ms") or {}).get("p50"),
            "usd_per_mtok": m.get("usd_per_mtok"),
            "interference": _interference(m),
        }
    return fleet, rows


def _interference(m: dict[str, Any]) -> str:
    """What the tenant's neighbours cost it, in words (a MIG slice or a lone tenant: none)."""
    parts = []
    if m.get("hbm_stack_neighbours"):
        parts.append(f"HBM x{m['hbm_bandwidth_factor']:.3f} ({', '.join(m['hbm_stack_neighbours'])})")
    if m.get("link_neighbours"):
        parts.append(f"links x{m['link_bandwidth_factor']:.3f} ({', '.join(m['link_neighbours'])})")
    return "; ".join(parts) or "none"

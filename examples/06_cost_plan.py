"""From one replica's capacity to a fleet: Llama-3.1-70B on trn2.48xlarge, for a 2 GW power budget and for a
demand of one million tokens/s.

The replica's capacity is the highest arrival rate whose requests meet the SLO in the serving simulator
(`find_max_rate`), with a roofline step cost built from the trn2 preset (a bound that ignores collectives).
Prices, power, PUE and rack limits come from cost/prices.toml and cost/power.toml; every assumption is
listed there. Run: python examples/06_cost_plan.py
"""

from trnsim.cost import capacity_from_user, load_prices, plan
from trnsim.cost.capacity_source import chips_per_replica
from trnsim.hw import load_preset
from trnsim.models import model_facts
from trnsim.serve import SLO, Poisson, Replica, RooflineStepCost, ServedModel, Uniform, Workload, find_max_rate

INSTANCE = "trn2.48xlarge"
TP = 8  # logical NeuronCores per replica: 2 Trainium2 chips at LNC=2


def main() -> None:
    facts = model_facts("llama-3.1-70b")
    model = ServedModel(facts.name, facts.weight_bytes(), facts.kv_bytes_per_token(), facts.n_params)
    chip = load_preset("trn2").chip
    chips = chips_per_replica(load_prices().instance(INSTANCE), TP)
    step = RooflineStepCost(
        weight_bytes=facts.weight_bytes(),
        flops_per_token=2.0 * facts.active_params,
        kv_bytes_per_token=facts.kv_bytes_per_token(),
        peak_flops=chips * chip.dense_bf16_tflops * 1e12,
        hbm_bytes_per_s=chips * chip.hbm_bytes_per_ns * 1e9,
    )
    replica = Replica(chips * chip.hbm_bytes, step)
    work = Workload(300, Poisson(2.0), prompt=Uniform(500, 1500), output=Uniform(100, 300), seed=7)
    slo = SLO(ttft_ms=2000, tpot_ms=60)
    search = find_max_rate(model, replica, work, slo, "chunked", goodput_fraction=0.9)
    tokens_per_s = search.result.metrics.total_tok_s
    print(
        f"{facts.name} on {chips:g} trn2 chips (tp={TP}): {search.rate_req_s:.2f} req/s meet the SLO "
        f"({tokens_per_s:,.0f} tokens/s per replica, {len(search.evaluations)} simulations)"
    )

    capacity = capacity_from_user(tokens_per_s, INSTANCE, TP)
    for title, fleet in (
        ("2 GW facility budget, liquid cooling", plan(capacity, power_budget="2GW", cooling="liquid")),
        ("1M tokens/s demand, air cooling", plan(capacity, tokens_per_s=1e6, cooling="air")),
    ):
        print(f"\n{title}:")
        print(f"  replicas {fleet.replicas:,}, instances {fleet.instances:,}, chips {fleet.chips:,}", end="")
        print(f", racks {fleet.racks:,}")
        print(f"  facility power peak {fleet.facility_mw_peak:,.1f} MW, average {fleet.facility_mw_average:,.1f} MW")
        print(
            f"  tokens/s {fleet.tokens_per_s:,.0f}; instances ${fleet.instances_usd_per_year / 1e6:,.1f}M/year, "
            f"energy ${fleet.energy_usd_per_year / 1e6:,.1f}M/year; ${fleet.usd_per_mtok:.3f}/Mtok"
        )


if __name__ == "__main__":
    main()

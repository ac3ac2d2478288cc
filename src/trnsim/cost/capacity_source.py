"""Where a replica's capacity comes from: the serving simulator (trnsim.serve), or the user's own figure.

Tensor parallelism `tp` counts the ranks one replica spans: logical NeuronCores on Trainium/Inferentia (a
trn2.48xlarge has 16 chips x 8 cores / LNC 2 = 64), GPUs on GPU instances (8 on a p5.48xlarge). A replica
smaller than an instance shares it with others; one larger spans whole instances.
"""

from __future__ import annotations

from dataclasses import dataclass

from trnsim.cost.errors import CostError
from trnsim.cost.fleet import ReplicaCapacity
from trnsim.cost.prices import InstancePrice, PriceTable, load_prices


@dataclass(frozen=True)
class Slo:
    """Latency targets a replica's capacity must respect (None = no limit)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None


def ranks_per_accelerator(accelerator: str) -> int:
    """tp ranks per chip: logical cores for chips with a trnsim hardware preset, else 1 (a GPU)."""
    from trnsim.hw import list_presets, load_preset

    if accelerator not in list_presets():
        return 1
    chip = load_preset(accelerator).chip
    return chip.physical_cores // chip.default_lnc


def chips_per_replica(entry: InstancePrice, tp: int) -> float:
    """Accelerator chips one replica of tensor-parallel degree `tp` occupies (may be a fraction of a chip)."""
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise CostError(f"tp must be a positive integer, got {tp!r}")
    return tp / ranks_per_accelerator(entry.accelerator)


def replica_layout(instance: str, tp: int, prices: PriceTable | None = None) -> tuple[int, int]:
    """(replicas per instance, instances per replica) for tp ranks on `instance`; one of them is 1."""
    entry = (prices or load_prices()).instance(instance)
    ranks = entry.accelerators * ranks_per_accelerator(entry.accelerator)
    chips_per_replica(entry, tp)  # validates tp
    if tp <= ranks:
        if ranks % tp:
            raise CostError(f"tp={tp} does not divide the {ranks} tp ranks of one {instance}; use a divisor of {ranks}")
        return ranks // tp, 1
    if tp % ranks:
        raise CostError(f"tp={tp} spans a partial {instance} ({ranks} ranks each); use a multiple of {ranks}")
    return 1, tp // ranks


def check_weights_fit(weight_bytes: int, instance: str, tp: int, prices: PriceTable | None = None) -> None:
    """Raise if a replica's HBM (its share of chips x HBM per chip) cannot hold the weights at all."""
    entry = (prices or load_prices()).instance(instance)
    hbm = chips_per_replica(entry, tp) * entry.hbm_gib_per_accelerator * 2**30
    if weight_bytes > hbm:
        raise CostError(
            f"the weights ({weight_bytes / 2**30:.1f} GiB) do not fit the {hbm / 2**30:.1f} GiB of HBM that tp={tp} "
            f"gives on {instance}; raise --tp (up to whole instances) or choose a chip with more memory"
        )


def capacity_from_user(
    tokens_per_s_per_replica: float, instance: str, tp: int, prices: PriceTable | None = None
) -> ReplicaCapacity:
    """A user-given per-replica throughput with the replica's place on `instance` worked out from tp."""
    per_instance, instances_per_replica = replica_layout(instance, tp, prices)
    return ReplicaCapacity(tokens_per_s_per_replica, instance, instances_per_replica, per_instance)


def replica_capacity(
    model: str,
    instance: str,
    tp: int,
    slo: Slo,
    *,
    prompt: str | int = 2048,
    output: str | int = 256,
    requests: int = 200,
    scheduler: str = "continuous",
    goodput_fraction: float = 0.9,
    seed: int = 0,
    progress: bool = False,
    prices: PriceTable | None = None,
    serving_stack: str = "exact",
) -> ReplicaCapacity:
    """Per-replica capacity of `model` on `instance` at tensor parallelism `tp` within `slo`, from the serving
    simulator: the output tokens/s one replica sustains in steady state at the highest Poisson rate at which
    goodput_fraction of the requests (prompt/output lengths as in `trnsim serve`; `requests` is the smallest
    run, the search sizes its own) meet the SLO, with step latencies from
    the compiler's estimate (Trainium-class chips) or the GPU model (GPUs). serving_stack: as `trnsim plan
    --serving-stack` (serve/stack_choice.py: "exact" prices exact step shapes, "auto" the chip's Neuron stack)."""
    from trnsim.serve import SLO, make_workload
    from trnsim.serve.compare import max_rate_under_slo, search_setup

    if slo.ttft_ms is None and slo.tpot_ms is None:
        raise CostError(
            "the serving simulator sizes a replica under an SLO: give --slo-ttft-ms and/or --slo-tpot-ms, "
            "or pass --tokens-per-s-per-replica with your own figure"
        )
    per_instance, instances_per_replica = replica_layout(instance, tp, prices)
    work = make_workload(requests, rate=1.0, prompt=prompt, output=output, seed=seed)
    setup, _ = search_setup(
        model, instance, tp, requests, prompt, output, seed, scheduler, serving_stack, progress=progress, prices=prices
    )
    found = max_rate_under_slo(setup, work, SLO(slo.ttft_ms, slo.tpot_ms), scheduler, goodput_fraction)
    return ReplicaCapacity(found.steady_tokens_per_s, instance, instances_per_replica, per_instance)

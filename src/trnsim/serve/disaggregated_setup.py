"""From "model X on instance Y, prefill on P ranks and decode on D ranks" to `simulate_disaggregated`'s inputs.

    setup = disaggregated_setup("llama-3.1-8b", "trn2.48xlarge", prefill_tp=16, decode_tp=16, workload=work)
    result = simulate_disaggregated(setup.prefill.model, setup.prefill.replica, setup.decode.replica, work,
                                    setup.link, decode_model=setup.decode.model)

Each pool is a `serving_setup` of its own tp (its step cost from the same estimate the other schedulers use,
its share of the instance's HBM, price and power). The pools sit side by side on one instance: prefill on the
first P ranks, decode on the next D, each a whole number of chips (GPUs), so a prompt's KV cache leaves the
prefill chips over the chip-to-chip fabric (`kv_link`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from trnsim.cost.power_table import PowerTable
from trnsim.cost.prices import PriceTable
from trnsim.serve.disaggregated import KVLink
from trnsim.serve.errors import ServeError
from trnsim.serve.setup import BOUNDS_SAMPLE, GridBounds, ServingSetup, grid_bounds, serving_setup
from trnsim.serve.workload import Workload


@dataclass(frozen=True)
class DisaggregatedSetup:
    prefill: ServingSetup
    decode: ServingSetup
    link: KVLink


def instance_ranks(instance: str, prices: PriceTable | None = None) -> tuple[int, int]:
    """(tp ranks of the whole instance, ranks per chip or GPU) from the cost tables."""
    from trnsim.cost import load_prices
    from trnsim.cost.capacity_source import ranks_per_accelerator

    entry = (prices or load_prices()).instance(instance)
    per_chip = ranks_per_accelerator(entry.accelerator)
    return entry.accelerators * per_chip, per_chip


def check_pools(instance: str, prefill_tp: int, decode_tp: int, prices: PriceTable | None = None) -> int:
    """Refuse pools that are not whole chips or do not fit the instance side by side; returns ranks per chip."""
    ranks, per_chip = instance_ranks(instance, prices)
    for name, tp in (("--prefill-tp", prefill_tp), ("--decode-tp", decode_tp)):
        if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
            raise ServeError(f"{name} must be a whole number >= 1, got {tp!r}")
        if tp % per_chip:
            raise ServeError(
                f"{name} {tp} is not a whole number of {instance}'s chips ({per_chip} ranks each): the pools must "
                f"not share a chip, so use a multiple of {per_chip}"
            )
    if prefill_tp + decode_tp > ranks:
        raise ServeError(
            f"--prefill-tp {prefill_tp} + --decode-tp {decode_tp} = {prefill_tp + decode_tp} ranks exceed the "
            f"{ranks} of one {instance}; the pools share one instance, so their sum must be at most {ranks}"
        )
    return per_chip


def kv_link(instance: str, prefill_chips: int, decode_chips: int) -> KVLink:
    """The KV hand-off path between the pools: every chip of the smaller pool sends (or receives) its share of
    the KV heads at its full chip-to-chip bandwidth, one hop apart (the pools are adjacent), plus the fabric's
    fixed per-transfer cost (a GPU's NCCL launch). An upper bound on the bandwidth: on a torus the counterpart
    chips can be more hops apart and share links."""
    from trnsim.hw.topology_instances import instance_fabric

    fabric = instance_fabric(instance)
    if not fabric.link_bytes_per_ns > 0:
        raise ServeError(
            f"{instance} has a single chip (no chip-to-chip links); disaggregated serving needs an instance with "
            "at least two chips or GPUs"
        )
    lanes = min(prefill_chips, decode_chips)
    return KVLink(fabric.link_bytes_per_ns * lanes * 1e9, (fabric.hop_latency_ns + fabric.fixed_ns) * 1e-9)


def pool_bounds(workload: Workload) -> tuple[GridBounds, GridBounds]:
    """Step shapes each pool's grid spans: prefill steps as continuous batching's prefill steps; decode steps
    have one new token per sequence."""
    both = grid_bounds(workload, "continuous")
    sample = replace(workload, num_requests=min(workload.num_requests, BOUNDS_SAMPLE)).generate()
    longest_prompt = int(sample.prompt_tokens.max())
    if workload.trace is None:
        assert workload.prompt is not None
        longest_prompt = max(
            longest_prompt, workload.prompt.max_tokens + (workload.prefix.tokens if workload.prefix else 0)
        )
    prefill = GridBounds(both.max_batch, max(2, longest_prompt), both.max_new_tokens)
    return prefill, GridBounds(both.max_batch, both.max_context, both.max_batch)


def disaggregated_setup(
    model: str,
    instance: str,
    prefill_tp: int,
    decode_tp: int,
    workload: Workload,
    *,
    weight_format: str = "bf16",
    kv_dtype: str | None = None,
    progress: bool = False,
    prices: PriceTable | str | Path | None = None,
    power_table: PowerTable | str | Path | None = None,
) -> DisaggregatedSetup:
    """Both pools' ServingSetups (checked to fit `instance` side by side) and the link between them."""
    from trnsim.cost import load_prices

    table = prices if isinstance(prices, PriceTable) else load_prices(prices)
    per_chip = check_pools(instance, prefill_tp, decode_tp, table)
    prefill_bounds, decode_bounds = pool_bounds(workload)
    pools = [
        serving_setup(
            model,
            instance,
            tp,
            weight_format=weight_format,
            kv_dtype=kv_dtype,
            bounds=bounds,
            progress=progress,
            prices=table,
            power_table=power_table,
        )
        for tp, bounds in ((prefill_tp, prefill_bounds), (decode_tp, decode_bounds))
    ]
    link = kv_link(instance, math.ceil(prefill_tp / per_chip), math.ceil(decode_tp / per_chip))
    return DisaggregatedSetup(pools[0], pools[1], link)

"""`serving_setup` for a replica of `pp` pipeline stages, each a tp group: ServedModel + Replica.

The replica holds tp x pp ranks (its HBM, price and power are theirs, as `serving_setup` shares an instance), the
weights and KV cache spread over every stage; its step cost is a `PipelineStepCost` around the estimate of the
whole model on one stage's tp group, the stages joined over the instance's fabric (each chip of a stage sends its
share of the activations to the next stage at its chip-to-chip bandwidth, one hop: `disaggregated_setup.kv_link`).
The layers must split evenly over the stages (uniform stages are what the step cost assumes).
"""

from __future__ import annotations

import math
from pathlib import Path

from trnsim.cost.power_table import PowerTable
from trnsim.cost.prices import PriceTable
from trnsim.serve.errors import ModelDoesNotFitError, ServeError
from trnsim.serve.model import DEFAULT_RESERVE_FRACTION, GIB, Replica
from trnsim.serve.pipeline import PipelineStepCost
from trnsim.serve.setup import (
    DEFAULT_COOLING,
    GridBounds,
    ServingSetup,
    accelerator_target,
    check_request_lengths,
    kv_bytes,
    served_model,
)


def check_pipeline(model: str, instance: str, tp: int, pp: int, prices: PriceTable) -> tuple[int, int]:
    """Refuse a pp that is not a whole number >= 1, that does not divide the layers, stages beyond one instance
    or stages that are not whole chips; returns (the model's layers, ranks per chip)."""
    from trnsim.models import model_facts
    from trnsim.serve.disaggregated_setup import instance_ranks

    if isinstance(pp, bool) or not isinstance(pp, int) or pp < 1:
        raise ServeError(f"--pp must be a whole number >= 1, got {pp!r}")
    layers = model_facts(model).n_layers
    if layers % pp:
        divisors = [d for d in range(1, layers + 1) if layers % d == 0]
        raise ServeError(
            f"--pp {pp} does not divide {model}'s {layers} layers into equal stages; use one of {divisors}"
        )
    ranks, per_chip = instance_ranks(instance, prices)
    if pp > 1 and tp * pp > ranks:
        raise ServeError(
            f"--tp {tp} x --pp {pp} = {tp * pp} ranks exceed the {ranks} of one {instance}; a pipeline's stages sit "
            "on one instance (its links carry the activations), so lower tp or pp"
        )
    if pp > 1 and tp % per_chip:
        raise ServeError(
            f"with --pp, each stage (--tp {tp} ranks) must be whole chips of {instance} ({per_chip} ranks each), "
            f"so that activations move over its links; use a --tp that is a multiple of {per_chip}"
        )
    return layers, per_chip


def pipeline_setup(
    model: str,
    instance: str,
    tp: int,
    pp: int,
    *,
    weight_format: str = "bf16",
    kv_dtype: str | None = None,
    bounds: GridBounds | None = None,
    micro_batches: int | None = None,
    progress: bool = False,
    prices: PriceTable | str | Path | None = None,
    power_table: PowerTable | str | Path | None = None,
) -> ServingSetup:
    """One replica of pp stages x tp ranks of `instance` (ServingSetup.tp is the ranks of one stage)."""
    from trnsim.compiler.dtype_estimate import check_estimate_dtype
    from trnsim.cost import load_power, load_prices, server_power
    from trnsim.cost.capacity_source import chips_per_replica, replica_layout
    from trnsim.hw.presets import list_presets, load_preset
    from trnsim.models import model_facts
    from trnsim.serve.disaggregated_setup import kv_link
    from trnsim.serve.estimate_step_cost import estimated_step_cost

    table = prices if isinstance(prices, PriceTable) else load_prices(prices)
    power = power_table if isinstance(power_table, PowerTable) else load_power(power_table)
    _, per_chip = check_pipeline(model, instance, tp, pp, table)
    ranks = tp * pp
    entry = table.instance(instance)
    target = accelerator_target(instance, table)
    per_instance, instances_per_replica = replica_layout(instance, ranks, table)
    fmt = check_estimate_dtype(weight_format, gpu=target not in list_presets())
    served = served_model(
        model, tp, 2, None if fmt is None else fmt.bytes, None if kv_dtype is None else kv_bytes(kv_dtype)
    )
    memory = chips_per_replica(entry, ranks) * entry.hbm_gib_per_accelerator * GIB
    if served.weight_bytes >= memory * (1 - DEFAULT_RESERVE_FRACTION):
        raise ModelDoesNotFitError(
            f"{served.name} needs {served.weight_bytes / GIB:.1f} GiB of weights but tp={tp} x pp={pp} on {instance} "
            f"gives {memory / GIB:.1f} GiB of HBM ({DEFAULT_RESERVE_FRACTION:.0%} held back); raise tp or pp"
        )
    if bounds is not None:
        check_request_lengths(model, bounds.max_context, tp, memory, served)
    presets = [i.name for i in load_preset(target).instances] if target in list_presets() else []
    stage = estimated_step_cost(
        model,
        target,
        tp,
        instance if instance in presets else None,
        weight_format=weight_format,
        progress=progress,
        **({} if bounds is None else vars(bounds)),
    )
    chips = math.ceil(tp / per_chip)
    if pp > 1:
        link = kv_link(instance, chips, chips)
        bytes_per_s, latency_s = link.bytes_per_s, link.latency_s
    else:
        bytes_per_s, latency_s = 1.0, 0.0  # no stage boundary: nothing crosses a link
    step = PipelineStepCost(
        stage, pp, model_facts(model).hidden_size, 2, bytes_per_s, latency_s, micro_batches=micro_batches
    )
    share = instances_per_replica / per_instance
    facility_w = server_power(instance, table, power).peak_w * power.cooling_for(DEFAULT_COOLING).pue.value
    replica = Replica(memory, step, entry.usd_per_hour * share, facility_w * share, f"{instance}:tp={tp}:pp={pp}")
    return ServingSetup(served, replica, instance, target, tp, per_instance, instances_per_replica)

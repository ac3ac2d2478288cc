"""A replica of `tp x ep` expert-parallel ranks (`trnsim serve --ep N [--tp T]`): its weights, KV cache, price
and step cost.

The layout is the expert-parallel estimate's (compiler/expert_parallel_comm.py): ep groups of tp ranks; each
group runs its own sequences with the non-expert weights (attention, dense layers, shared experts, router,
embedding, LM head) tensor-parallel over its tp ranks, and holds 1/ep of the routed experts, each column-split
over the tp ranks. With tp = 1 this is DeepSeek-V3's and SGLang/vLLM's "data-parallel attention + expert
parallelism". So the replica stores

    weights = ep x (W_tp - W_experts) + W_experts,     KV per token = the model's at tp,

(W_tp: the model at tp, padded heads and replicated KV heads included) and a rank must hold
(W_tp - W_experts) / tp + W_experts / (ep tp). The scheduler sees one replica whose memory and batch are the
ranks' together, its sequences spread evenly over the groups; the step cost is serve/step_components_ep.py's.
Price and power are the tp x ep ranks' share of the instance, as for tp ranks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trnsim.cost.power_table import PowerTable
from trnsim.cost.prices import PriceTable
from trnsim.errors import CompileError
from trnsim.serve.errors import ModelDoesNotFitError, ServeError
from trnsim.serve.model import DEFAULT_RESERVE_FRACTION, GIB, Replica, ServedModel
from trnsim.serve.setup import (
    DEFAULT_COOLING,
    GridBounds,
    ServingSetup,
    _spec_instance,
    accelerator_target,
    check_request_lengths,
    kv_bytes,
    served_model,
)


def expert_bytes(model: str, bytes_per_param: float) -> tuple[float, int]:
    """(bytes of the routed experts' weights, routed experts) of a mixture-of-experts preset or config."""
    from trnsim.compiler.expert_parallel import moe_config
    from trnsim.models import build_model
    from trnsim.models.config import resolve_config

    net = build_model(resolve_config(model), device="meta")
    try:
        experts, _ = moe_config(net)
    except CompileError as err:
        raise ServeError(f"--ep: {err}") from None
    stacked = [p for name, p in net.named_parameters() if ".experts." in name and p.dim() >= 2]
    params = sum(p.numel() for p in stacked if p.shape[0] == experts)  # [experts, ...] tensors
    return params * bytes_per_param, experts


def ep_served_model(
    model: str, ep: int, dtype_bytes: int, linear_bytes: float | None, kv: float | None, tp: int = 1
) -> Any:
    """(ServedModel of the whole replica, bytes one rank holds) for `ep` expert-parallel groups of `tp` ranks."""
    whole = served_model(model, tp, dtype_bytes, linear_bytes, kv)
    experts_b, experts = expert_bytes(model, dtype_bytes if linear_bytes is None else linear_bytes)
    if ep > experts or experts % ep:
        raise ServeError(f"--ep {ep} must divide the {experts} routed experts of {whole.name}")
    shared = whole.weight_bytes - experts_b  # every group keeps these, split over its tp ranks
    replica = ServedModel(whole.name, shared * ep + experts_b, whole.kv_bytes_per_token, whole.params)
    return replica, (shared + experts_b / ep) / tp


def ep_serving_setup(
    model: str,
    instance: str,
    ep: int,
    *,
    tp: int = 1,
    dtype: str = "bfloat16",
    weight_format: str = "bf16",
    kv_dtype: str | None = None,
    bounds: GridBounds | None = None,
    cache: bool = True,
    progress: bool = False,
    prices: PriceTable | str | Path | None = None,
    power_table: PowerTable | str | Path | None = None,
) -> ServingSetup:
    """ServedModel + Replica for `model` on `instance` with `ep` expert-parallel groups of `tp` ranks per replica
    (see the module docstring); the arguments are serving_setup's."""
    from trnsim.compiler.dtype_estimate import check_estimate_dtype
    from trnsim.cost import load_power, load_prices, server_power
    from trnsim.cost.capacity_source import chips_per_replica, replica_layout
    from trnsim.hw.presets import list_presets
    from trnsim.serve.estimate_step_cost import DTYPES, estimated_step_cost

    if isinstance(ep, bool) or not isinstance(ep, int) or ep < 2:
        raise ServeError(f"--ep must be an integer >= 2 (expert-parallel ranks per replica), got {ep!r}")
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ServeError(
            f"--tp must be an integer >= 1 (tensor-parallel ranks of each expert-parallel group), got {tp!r}"
        )
    ranks = tp * ep
    if dtype not in DTYPES:
        raise ServeError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    if not isinstance(prices, PriceTable):
        prices = load_prices(prices)
    power = power_table if isinstance(power_table, PowerTable) else load_power(power_table)
    entry = prices.instance(instance)
    target = accelerator_target(instance, prices)
    if target not in list_presets():
        raise ServeError(f"--ep is priced on Trainium-class instances; {instance} holds {target} GPUs")
    fmt = check_estimate_dtype(weight_format, gpu=False)
    kv = None if kv_dtype is None else kv_bytes(kv_dtype)
    served, rank_bytes = ep_served_model(model, ep, DTYPES[dtype], None if fmt is None else fmt.bytes, kv, tp)
    per_instance, instances_per_replica = replica_layout(instance, ranks, prices)  # placed as tp x ep tp ranks
    memory = chips_per_replica(entry, ranks) * entry.hbm_gib_per_accelerator * GIB
    rank_usable = memory / ranks * (1 - DEFAULT_RESERVE_FRACTION)
    if rank_bytes >= rank_usable:
        layout = f"tp={tp} x ep={ep}" if tp > 1 else f"ep={ep}"
        raise ModelDoesNotFitError(
            f"a {layout} rank of {served.name} holds {rank_bytes / GIB:.1f} GiB of weights (1/{tp} of the non-expert "
            f"weights and 1/{ranks} of the experts) but has {rank_usable / GIB:.1f} GiB usable on {instance}; raise "
            "ep or tp, use a lower-precision --dtype or an instance with more memory"
        )
    if bounds is not None:
        check_request_lengths(model, bounds.max_context, tp, memory, served)
    limits = {} if bounds is None else vars(bounds)
    step_cost = estimated_step_cost(
        model,
        target,
        tp,
        _spec_instance(target, instance),
        dtype=dtype,
        weight_format=weight_format,
        cache=cache,
        progress=progress,
        ep=ep,
        **limits,
    )
    share = instances_per_replica / per_instance
    facility_w = server_power(instance, prices, power).peak_w * power.cooling_for(DEFAULT_COOLING).pue.value
    replica = Replica(
        device_memory_bytes=memory,
        step_cost=step_cost,
        price_per_hour=entry.usd_per_hour * share,
        power_w=facility_w * share,
        name=f"{instance}:tp={tp}xep={ep}" if tp > 1 else f"{instance}:ep={ep}",
    )
    return ServingSetup(served, replica, instance, target, tp, per_instance, instances_per_replica)

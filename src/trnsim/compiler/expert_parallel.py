"""Expert parallelism for estimates: a mixture-of-experts model's routed experts spread over `ep` ranks, each
ep group's attention run tensor-parallel over `tp` ranks (tp x ep ranks in all).

With tp = 1 the layout is DeepSeek-V3's serving one (and SGLang's / vLLM's "data-parallel attention + expert
parallelism"): every rank holds all non-expert weights (attention, dense layers, shared experts, router) and
runs them on its own sequences; the routed experts are split into `ep` contiguous blocks, one per rank. With
tp > 1 each of those ranks becomes a tensor-parallel group of tp ranks that splits the non-expert layers and
its expert block's columns (expert_parallel_comm.py has the layout and its collectives). Each MoE layer then

1. routes the group's tokens (the router on the group's own tokens, as in the rank's own graph),
2. dispatches every routed token row to the group that holds its expert: an all-to-all (with tp > 1, each
   rank 1/tp of the rows, then an all-gather inside the receiving tp group),
3. runs the group's experts on the rows it received (a grouped matmul over its E / ep experts, 1/tp of their
   columns on each rank),
4. combines: (tp > 1: a reduce-scatter inside the group, then) the expert outputs go back to their tokens'
   groups, another all-to-all of the same size.

`ep_estimate` prices a rank as `trnsim.estimate` of the whole model at tp on the group's batch (everything the
rank runs on its group's tokens), with the experts' grouped matmuls launched at the busiest group's shapes
(lowering/moe.py, while `local_expert_rows` is active): its E / ep experts with the rows the routing of the
whole EP group's tokens (ep x the group's) sends them, from `expert_parallel_routing` (a sampled top-k routing,
not an even split). The routing's other per-row work on the chip (gathers, the experts' activation, the
weighted combine) stays as the rank's graph prices it for its group's tokens x k rows, the mean of what the
groups receive (with tp > 1 every rank of a group runs it on all of them: not split 1/tp, pessimistic).
Dispatch and combine are costed over the instance topology with its all-to-all closed form (hw/topology.py);
the resident weights hold only the rank's experts.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from trnsim.compiler.dtype_mx import GROUPED, grouped_dims, mx_grouped_cost
from trnsim.compiler.expert_parallel_comm import all_to_all_us as all_to_all_us  # re-exported
from trnsim.compiler.expert_parallel_comm import ep_layout, moe_records, moe_traffic
from trnsim.compiler.expert_parallel_routing import Routing, check_ep, local_expert_rows, sampled_routing
from trnsim.errors import CompileError, TrnsimWarning
from trnsim.hw.presets import get_spec
from trnsim.hw.spec import HardwareSpec
from trnsim.runtime.graph_profile import GraphProfile, OpRecord

_EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts")


def moe_config(model: torch.nn.Module) -> tuple[int, int]:
    """(routed experts, experts per token) of a Hugging Face mixture-of-experts model."""
    config = getattr(model, "config", None)
    experts = next((int(getattr(config, f, 0) or 0) for f in _EXPERT_FIELDS if getattr(config, f, 0)), 0)
    if config is None or experts < 2:
        raise CompileError(
            f"expert parallelism spreads a mixture-of-experts model's experts; {type(model).__name__} has no "
            "routed experts (a config with num_local_experts / num_experts / n_routed_experts)"
        )
    return experts, int(getattr(config, "num_experts_per_tok", 1) or 1)


@dataclass(frozen=True)
class EPEstimate:
    """A rank of an expert-parallel step: its profile, the routing it was priced at and the all-to-all sizes."""

    profile: GraphProfile
    ep: int
    routing: Routing
    rank_tokens: int  # tokens each tp group (each rank when tp = 1) routes per step
    top_k: int
    dispatch_bytes: int  # per rank and MoE layer: the larger of what a rank sends and the busiest receives
    tp: int = 1
    gather_bytes: int = 0  # per MoE layer, tp > 1: the busiest group's expert rows its tp ranks all-gather

    @property
    def busiest_rows(self) -> int:
        return self.routing.rank_rows[self.routing.busiest_rank]

    @property
    def ranks(self) -> int:
        return self.tp * self.ep


def ep_estimate(
    model: torch.nn.Module,
    example_inputs: tuple[Any, ...] | list[Any],
    example_kwargs: dict[str, Any] | None = None,
    *,
    ep: int,
    tp: int = 1,
    target: str | HardwareSpec = "trn2",
    instance: str | None = None,
    skew: float = 0.0,
    label: str = "",
    decode: bool = False,
    context: int | None = None,
    dtype: str = "bf16",
    extrapolate: bool | None = None,
) -> EPEstimate:
    """One rank of `model` run over tp x ep ranks (expert_parallel_comm.py's layout): `example_inputs` are one
    tp group's batch (input ids), every group running the same shape on its own sequences; tp = 1 is the
    data-parallel-attention layout. `skew` shapes the router's expert popularity (expert_parallel_routing;
    0 = a balanced router). Trainium-class targets only."""
    from trnsim.compiler.dtype_estimate import check_estimate_dtype
    from trnsim.compiler.estimate import estimate
    from trnsim.compiler.gpu_estimate import is_gpu_target

    experts, top_k = moe_config(model)
    check_ep(ep, experts)
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise CompileError(
            f"tp (tensor-parallel ranks of each expert-parallel group) must be an integer >= 1, got {tp!r}"
        )
    if is_gpu_target(target):
        raise CompileError("expert-parallel estimates run on Trainium-class targets (trn1, trn2, trn3, inf2)")
    spec = target if isinstance(target, HardwareSpec) else get_spec(target)
    fmt = check_estimate_dtype(dtype, target=spec)
    layout = ep_layout(spec, tp, ep, instance)  # tp x ep ranks (a clear SpecError when the instance is too small)
    ids = example_inputs[0] if example_inputs else None
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise CompileError("an expert-parallel estimate takes one rank's input ids [batch, tokens]")
    rank_tokens = ids.numel()  # prefill: batch x tokens; decode: one new token per sequence
    routing = sampled_routing(ep * rank_tokens, experts, top_k, ep, skew)
    local = routing.rank_experts(routing.busiest_rank)
    inst = layout.placement.instance
    with local_expert_rows(local), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the lowering runs the experts at the busiest group's shapes; attention is tp-sharded on the group's
        # instance so its all-reduces are priced where the group sits
        profile = estimate(
            model,
            example_inputs,
            example_kwargs,
            target=spec,
            tp=tp,
            instance=inst.name if inst is not None else None,
            label=label,
            decode=decode,
            context=context,
            dtype=dtype,
            extrapolate=extrapolate,
        )
    grouped = [r for r in profile.records if r.kind == "kernel" and r.kernel.startswith(GROUPED)]
    if not grouped and sum(local) > 0:
        raise CompileError(f"no expert matmul (grouped_matmul) in {label or type(model).__name__}'s graph to spread")
    hidden = int(getattr(getattr(model, "config", None), "hidden_size", 0))
    if fmt is not None and fmt.mx_bits:  # the MX kernel ran at the local rows; its formula stand-ins too
        for record in grouped:
            if record.kernel.endswith("_formula"):  # (dtype_mx: shapes the MX kernel cannot take)
                _price_local_experts_mx(record, spec, local, profile.cores_per_rank, fmt.mx_bits)
    traffic = moe_traffic(layout, rank_tokens, top_k, sum(local), hidden)
    profile.records.extend(moe_records(layout, traffic, hidden, _moe_layers(model)))
    if profile.weight_bytes:
        profile.weight_bytes -= _remote_expert_bytes(model, experts, ep, fmt) // tp
    _rewarn(caught, profile)
    profile.label = f"{profile.label} ({f'tp={tp} x ' if tp > 1 else ''}ep={ep})"
    return EPEstimate(profile, ep, routing, rank_tokens, top_k, traffic.dispatch_bytes, tp, traffic.gather_bytes)


def _rewarn(caught: list[warnings.WarningMessage], profile: GraphProfile) -> None:
    """The estimate's warnings again, but its HBM-capacity one judged on the rank's own experts only."""
    for w in caught:
        if "GiB of HBM per rank" not in str(w.message):
            warnings.warn(w.message, w.category, stacklevel=3)
    if profile.weight_bytes and not profile.fits_hbm:
        warnings.warn(
            f"trnsim: {profile.label} needs {profile.peak_hbm_bytes / 2**30:.3g} GiB of HBM per rank (weights "
            f"{profile.weight_bytes / 2**30:.3g} GiB with its own experts only, activations "
            f"{profile.activation_arena_bytes / 2**30:.3g} GiB), more than the {profile.hbm_capacity_bytes / 2**30:.3g}"
            f" GiB a rank of {profile.spec.name} has: raise tp or ep, or shorten the sequence",
            TrnsimWarning,
            stacklevel=3,
        )


def _price_local_experts_mx(
    record: OpRecord, spec: HardwareSpec, local: tuple[int, ...], cores: int, bits: int
) -> None:
    """An MX grouped-matmul record at the busiest rank's exact rows per expert (dtype_mx's cost path)."""
    _, k, (_, _, n) = grouped_dims(record)
    share = max(1, cores)  # a rank is a logical core: its physical cores split the work
    mx = mx_grouped_cost(spec, list(local), n, k, bits)
    _set_cost(record, mx.latency_us / share, mx.flops, mx.hbm_bytes, mx.engine_busy_us, share)


def _moe_layers(model: torch.nn.Module) -> int:
    """Layers with routed experts (each has one dispatch and one combine)."""
    return sum(1 for name, _ in model.named_modules() if name.endswith(".experts") and "layers." in name)


def _set_cost(record: OpRecord, us: float, flops: int, nbytes: int, busy: dict[str, float], share: int) -> None:
    record.device_us, record.flops, record.hbm_bytes = us, int(flops), int(nbytes)
    record.engine_busy_us = {e: b / share for e, b in busy.items()}


def _remote_expert_bytes(model: torch.nn.Module, experts: int, ep: int, fmt: Any) -> int:
    """Bytes of the routed-expert weights a rank does not hold ((ep - 1) / ep of them)."""
    total = 0.0
    for name, p in model.named_parameters():
        if ".experts." in name and p.dim() >= 2 and p.shape[0] == experts:
            per = p.element_size() if fmt is None or p.dim() < 3 else fmt.bytes
            total += p.numel() * per
    return math.floor(total * (ep - 1) / ep)

"""Expert parallelism for estimates: a mixture-of-experts model's routed experts spread over `ep` ranks.

The layout is DeepSeek-V3's serving one (and SGLang's / vLLM's "data-parallel attention + expert parallelism"):
every rank holds all non-expert weights (attention, dense layers, shared experts, router) and runs them on its
own sequences; the routed experts are split into `ep` contiguous blocks, one per rank. Each MoE layer then

1. routes the rank's tokens (the router on the rank's own tokens, as in the rank's own graph),
2. dispatches every routed token row to the rank that holds its expert: an all-to-all,
3. runs the rank's experts on the rows it received (a grouped matmul over its E / ep experts),
4. combines: the expert outputs go back to their tokens' ranks, another all-to-all of the same size.

`ep_estimate` prices a rank as `trnsim.estimate` of the whole model on the rank's batch (everything the rank
runs on its own tokens), with the experts' grouped matmuls launched at the busiest rank's shapes
(lowering/moe.py, while `local_expert_rows` is active): its E / ep experts with the rows the routing of the
whole EP group's tokens (ep x the rank's) sends them, from `expert_parallel_routing` (a sampled top-k routing,
not an even split). The routing's other per-row work on the chip (gathers, the experts' activation, the
weighted combine) stays as the rank's graph prices it for its own tokens x k rows, the mean of what the ranks
receive. Dispatch and combine are costed over the instance topology with its all-to-all closed form
(hw/topology.py); the resident weights hold only the rank's experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from trnsim.compiler.dtype_mx import GROUPED, grouped_dims, mx_grouped_cost
from trnsim.compiler.expert_parallel_routing import Routing, check_ep, local_expert_rows, sampled_routing
from trnsim.errors import CompileError
from trnsim.hw.presets import get_spec
from trnsim.hw.spec import HardwareSpec
from trnsim.hw.topology import CollectiveKind, collective_ns, fabric_of
from trnsim.runtime.graph_profile import GraphProfile, OpRecord
from trnsim.sim.collectives import Placement, place

_EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts")


def all_to_all_us(spec: HardwareSpec, placement: Placement, nbytes_per_rank: float) -> float:
    """Time of an all-to-all in which every rank sends 1/p of an `nbytes_per_rank` buffer to each rank.

    A chip carries the buffers of all its r ranks: inside the chip they swap (r-1)/r of them through HBM, each
    byte read and written (2 (r-1) B at HBM bandwidth); between chips the instance topology's all-to-all closed
    form (hw/topology.py: switch, ring relay, torus per dimension, UltraServer node ring) on the chip's r x B.
    """
    if placement.tp <= 1 or nbytes_per_rank <= 0:
        return 0.0
    per_chip = min(placement.tp, placement.ranks_per_chip)
    intra_ns = 2 * (per_chip - 1) * nbytes_per_rank / spec.chip.hbm_bytes_per_ns
    inter_ns = 0.0
    if placement.instance is not None and placement.chips > 1:
        fabric = fabric_of(placement.instance)
        inter_ns = collective_ns(fabric, CollectiveKind.ALL_TO_ALL, per_chip * nbytes_per_rank, placement.chips)
    return (intra_ns + inter_ns) / 1000.0


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
    rank_tokens: int  # tokens each rank routes per step
    top_k: int
    dispatch_bytes: int  # per rank and MoE layer: the larger of what the busiest rank sends and receives

    @property
    def busiest_rows(self) -> int:
        return self.routing.rank_rows[self.routing.busiest_rank]


def ep_estimate(
    model: torch.nn.Module,
    example_inputs: tuple[Any, ...] | list[Any],
    example_kwargs: dict[str, Any] | None = None,
    *,
    ep: int,
    target: str | HardwareSpec = "trn2",
    instance: str | None = None,
    skew: float = 0.0,
    label: str = "",
    decode: bool = False,
    context: int | None = None,
    dtype: str = "bf16",
    extrapolate: bool | None = None,
) -> EPEstimate:
    """One rank of `model` run expert-parallel over `ep` ranks; `example_inputs` are one rank's batch (input
    ids), every rank running the same shape on its own sequences. `skew` shapes the router's expert popularity
    (expert_parallel_routing; 0 = a balanced router). Trainium-class targets only."""
    from trnsim.compiler.dtype_estimate import check_estimate_dtype
    from trnsim.compiler.estimate import estimate
    from trnsim.compiler.gpu_estimate import is_gpu_target

    experts, top_k = moe_config(model)
    check_ep(ep, experts)
    if is_gpu_target(target):
        raise CompileError("expert-parallel estimates run on Trainium-class targets (trn1, trn2, trn3, inf2)")
    spec = target if isinstance(target, HardwareSpec) else get_spec(target)
    fmt = check_estimate_dtype(dtype, target=spec)
    placement = place(spec, ep, instance)  # ep ranks over the instance (a clear SpecError when it is too small)
    ids = example_inputs[0] if example_inputs else None
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise CompileError("an expert-parallel estimate takes one rank's input ids [batch, tokens]")
    rank_tokens = ids.numel()  # prefill: batch x tokens; decode: one new token per sequence
    routing = sampled_routing(ep * rank_tokens, experts, top_k, ep, skew)
    local = routing.rank_experts(routing.busiest_rank)
    with local_expert_rows(local):  # the lowering runs the experts at the busiest rank's shapes
        profile = estimate(
            model,
            example_inputs,
            example_kwargs,
            target=spec,
            tp=1,
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
    if fmt is not None and fmt.mx_bits:  # the MX cost path at the local experts' exact rows
        for record in grouped:
            _price_local_experts_mx(record, spec, local, profile.cores_per_rank, fmt.mx_bits)
    moe_layers = _moe_layers(model)
    elt = 2  # the hidden states travel in bf16
    dispatch = max(rank_tokens * top_k, sum(local)) * hidden * elt
    us = all_to_all_us(spec, placement, dispatch)
    for step in ("ep_dispatch", "ep_combine"):
        profile.records.append(
            OpRecord(
                node=step,
                op="all_to_all",
                kind="collective",
                kernel="all_to_all",
                device_us=us,
                count=moe_layers,
                shapes=f"[{dispatch // (hidden * elt)}, {hidden}]:bfloat16 per rank, {ep} ranks",
            )
        )
    if profile.weight_bytes:
        profile.weight_bytes -= _remote_expert_bytes(model, experts, ep, fmt)
    profile.label = f"{profile.label} (ep={ep})"
    return EPEstimate(profile, ep, routing, rank_tokens, top_k, dispatch)


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

"""Tensor parallelism for estimates (Megatron-style): attention heads, MLP columns and the vocabulary are
split over `tp` logical cores; the row-parallel projections (attention output, MLP down) end in an
all-reduce and the logits in an all-gather, costed over the instance topology (sim/collectives.py).

The per-rank model is built from the Hugging Face config with heads / KV heads / intermediate size /
vocabulary divided by tp, so every kernel is simulated at exactly the shape one rank runs. When tp does not
divide the heads, they are padded to the next multiple of tp, as transformers-neuronx and NxD Inference do
(e.g. Llama-2-70B's 64 heads at tp=24 run as 72, three per rank): the padded heads' FLOPs, weights and KV
cache are paid for. KV heads fewer than tp are replicated (each rank keeps one, NxD's
REPLICATE_TO_TP_DEGREE); more than tp but not a multiple are padded likewise. A rank whose query heads do
not group evenly over its KV heads keeps one KV head per query head (NxD's CONVERT_TO_MHA).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx

from trnsim.errors import CompileError
from trnsim.hw.spec import HardwareSpec
from trnsim.sim.collectives import Placement, all_gather_us, all_reduce_us


@dataclass
class WeightRoles:
    """Which weights (get_attr paths of the captured graph) end in which collective ('all_reduce' after a
    row-parallel projection, 'all_gather' after the LM head); `current` is the role of the node being lowered
    (set by the GraphRunner), so a linear's collective follows its weight rather than its shape."""

    collective: dict[str, str] = field(default_factory=dict)
    current: str | None = None


@dataclass(frozen=True)
class TPPlan:
    spec: HardwareSpec
    placement: Placement
    hidden: int  # model width: row-parallel projections produce it
    vocab_local: int  # vocabulary slice of one rank (lm_head output)
    roles: WeightRoles | None = None  # None: decide by shape (serving's step costs, which have no graph)

    @property
    def tp(self) -> int:
        return self.placement.tp

    def after_linear(self, k: int, n: int, out_bytes: int) -> tuple[str, float] | None:
        """The collective a linear of in-features k, out-features n (per rank) needs, and its time in µs."""
        if self.tp == 1:
            return None
        if self.roles is not None:
            return self.collective(self.roles.current, out_bytes)
        if n == self.hidden and k != self.hidden:
            return "all_reduce", all_reduce_us(self.spec, self.placement, out_bytes)
        if n == self.vocab_local and self.vocab_local != self.hidden:
            return "all_gather", all_gather_us(self.spec, self.placement, out_bytes * self.tp)
        return None

    def collective(self, kind: str | None, out_bytes: int) -> tuple[str, float] | None:
        """The time of `kind` after a linear whose (per-rank) output is `out_bytes`."""
        if kind == "all_reduce":
            return kind, all_reduce_us(self.spec, self.placement, out_bytes)
        if kind == "all_gather":
            return kind, all_gather_us(self.spec, self.placement, out_bytes * self.tp)
        return None


# families whose rank is rebuilt from a config with fewer heads; the others (tp_families.py) are cut module by
# module from the model itself
SHARDABLE = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "phi3")


def local_heads(heads: int, kv_heads: int, tp: int) -> tuple[int, int]:
    """(query heads, KV heads) one rank holds, padding included (see the module docstring)."""
    if tp < 1 or heads < 1 or kv_heads < 1:
        raise CompileError(f"heads ({heads}), KV heads ({kv_heads}) and tp ({tp}) must be >= 1")
    q = -(-heads // tp)  # heads padded up to a multiple of tp
    kv = -(-kv_heads // tp)  # fewer than tp: one replica per rank; else padded up to a multiple of tp
    if q % kv:
        kv = q  # no even grouping on this rank: one KV head per query head
    return q, kv


def shard_config(config: Any, tp: int) -> Any:
    """The config of one rank's slice of the model."""
    if tp == 1:
        return config
    model_type = getattr(config, "model_type", "")
    if model_type not in SHARDABLE:
        raise CompileError(
            f"tp={tp} sharding is implemented for decoder models with an explicit head layout "
            f"({', '.join(SHARDABLE)}), not {model_type or type(config).__name__}; use tp=1 for this model"
        )
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    local = copy.deepcopy(config)
    local.head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    local.num_attention_heads, local.num_key_value_heads = local_heads(heads, kv, tp)
    local.intermediate_size = math.ceil(config.intermediate_size / tp)
    local.vocab_size = math.ceil(config.vocab_size / tp)
    return local


def local_model(model: torch.nn.Module, tp: int) -> tuple[torch.nn.Module, Any]:
    """One rank's model (on the meta device) and its full config."""
    config = getattr(model, "config", None)
    if tp == 1:
        return model, config
    if config is None:
        raise CompileError(
            f"tp={tp} needs a Hugging Face model (with .config) so its heads and MLP can be split; "
            f"{type(model).__name__} has no config - estimate it with tp=1"
        )
    dtype = next((p.dtype for p in model.parameters()), torch.bfloat16)
    if getattr(config, "model_type", "") not in SHARDABLE:
        return _surgery_model(model, config, tp, dtype), config
    with torch.device("meta"):
        local = type(model)(shard_config(config, tp))
    return local.to(dtype).eval(), config


def _surgery_model(model: torch.nn.Module, config: Any, tp: int, dtype: torch.dtype) -> torch.nn.Module:
    """One rank of a family whose head layout is not in its config alone (GPT-2, GPT-J, GPT-NeoX, OPT,
    Falcon): the model's modules cut as a compiled tp run cuts them (tp_shard.py), on the meta device."""
    from trnsim.compiler.tp_shard import shard_model  # tp_shard builds on local_heads above

    with torch.device("meta"):
        full = type(model)(config)
    local: Any
    local, roles = shard_model(full.to(dtype), tp, 0)
    # the rank's LM head holds a slice of the vocabulary (its config is the copy's own, shared by its modules)
    local.config.vocab_size = roles.vocab_local
    local._trnsim_tp_roles = dict(roles.collective)
    return local


def tp_roles(rank_model: torch.nn.Module, tp: int) -> WeightRoles | None:
    """The weights of one rank whose linears end in a collective, by name (None: place them by shape)."""
    if tp == 1:
        return None
    known = getattr(rank_model, "_trnsim_tp_roles", None)
    if known is None:
        from trnsim.compiler.tp_families import collective_roles

        known = collective_roles(rank_model, getattr(rank_model, "config", None))
    return None if known is None else WeightRoles(dict(known))


def weight_role(node: torch.fx.Node, roles: WeightRoles) -> str | None:
    """The collective role of the weight a linear-like graph node reads (through a transpose), if any."""
    if str(node.target) in _WEIGHT_VIEWS:
        return None  # the weight's transpose, on its way to the linear
    for arg in node.args:
        while isinstance(arg, torch.fx.Node) and arg.op == "call_function" and str(arg.target) in _WEIGHT_VIEWS:
            arg = arg.args[0]
        if isinstance(arg, torch.fx.Node) and arg.op == "get_attr" and str(arg.target) in roles.collective:
            return roles.collective[str(arg.target)]
    return None


# ops between a weight and the linear that reads it: the weight is still that parameter
_WEIGHT_VIEWS = ("aten.t.default", "aten.permute.default", "aten.transpose.int")

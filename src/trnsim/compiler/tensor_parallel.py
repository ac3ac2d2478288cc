"""Tensor parallelism for estimates (Megatron-style): attention heads, MLP columns and the vocabulary are
split over `tp` logical cores; the row-parallel projections (attention output, MLP down) end in an
all-reduce and the logits in an all-gather, costed over the instance topology (sim/collectives.py).

The per-rank model is built from the Hugging Face config with heads / KV heads / intermediate size /
vocabulary divided by tp (families whose head layout is in the config), or cut module by module from the
model (tp_families.py: GPT-2, GPT-J, GPT-NeoX, OPT, Falcon, BLOOM), so every kernel is simulated at exactly
the shape one rank runs. Heads are padded and KV heads replicated as tp_heads.py says: the padded heads'
FLOPs, weights and KV cache are paid for. Compiled tp runs (tp_compile.py) split real weights by the same
rule, and the collective after a linear follows its weight (`WeightRoles`) in both.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx

from trnsim.compiler.llama4_routed import FAMILY as LLAMA4
from trnsim.compiler.llama4_routed import route_experts
from trnsim.compiler.tp_families import FAMILIES, collective_roles, shard_model
from trnsim.compiler.tp_heads import WeightRoles, local_heads
from trnsim.compiler.tp_llama4 import EXPERTS_REDUCE, estimate_roles
from trnsim.errors import CompileError
from trnsim.hw.spec import HardwareSpec
from trnsim.sim.collectives import Placement, all_gather_us, all_reduce_us


@dataclass(frozen=True)
class TPPlan:
    spec: HardwareSpec
    placement: Placement
    hidden: int  # model width: row-parallel projections produce it
    vocab_local: int  # vocabulary slice of one rank (lm_head output)
    roles: WeightRoles | None = None  # None: decide by shape (serving's step costs, which have no graph)
    moe_top_k: int = 1  # experts per token: a grouped expert matmul's rows are tokens x top-k

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
        if kind in ("all_reduce", EXPERTS_REDUCE):  # EXPERTS_REDUCE: a Llama-4 MoE block's, at its experts
            return "all_reduce", all_reduce_us(self.spec, self.placement, out_bytes)
        if kind == "all_gather":
            return kind, all_gather_us(self.spec, self.placement, out_bytes * self.tp)
        return None


# families whose rank is rebuilt from a config with fewer heads; the others (tp_families.py) are cut module by
# module from the model itself
__all__ = [
    "SHARDABLE",
    "TPPlan",
    "WeightRoles",
    "local_heads",
    "local_model",
    "shard_config",
    "tp_roles",
    "unsupported_family",
    "weight_role",
]

SHARDABLE = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "phi3",
    "qwen2_moe",
    "qwen3_moe",
    "deepseek_v3",
    "gpt_oss",
    "llama4_text",  # routed experts are bmm's: their all-reduce follows the weight (tp_llama4.py)
)
MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3", "gpt_oss", "llama4_text")
# MLP widths a rank holds 1/tp of: dense MLP, routed experts (each expert column-split), shared experts
_FFN_WIDTHS = ("intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size", "intermediate_size_mlp")


def shard_config(config: Any, tp: int) -> Any:
    """The config of one rank's slice of the model."""
    if tp == 1:
        return config
    model_type = getattr(config, "model_type", "")
    if model_type not in SHARDABLE:
        raise CompileError(unsupported_family(tp, model_type or type(config).__name__))
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    local = copy.deepcopy(config)
    local.head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    local.num_attention_heads, local.num_key_value_heads = local_heads(heads, kv, tp)
    for width in _FFN_WIDTHS:
        if isinstance(getattr(config, width, None), int):
            setattr(local, width, math.ceil(getattr(config, width) / tp))
    local.vocab_size = math.ceil(config.vocab_size / tp)
    pad = getattr(config, "pad_token_id", None)
    if isinstance(pad, int) and pad >= local.vocab_size:
        # the rank's embedding is built at the vocabulary slice's size (a lookup costs the rows it reads);
        # its padding row only masks gradients, so a pad id past the slice is dropped (Llama-4: 201134)
        local.pad_token_id = None
    return local


def unsupported_family(tp: int, family: str) -> str:
    """The refusal of tp > 1 for a family neither path shards, naming those that are."""
    dense = [f for f in dict.fromkeys((*SHARDABLE, *FAMILIES)) if f not in MOE_FAMILIES]
    return (
        f"tp={tp} sharding is implemented for the decoder families {', '.join(dense)} and the mixture-of-experts "
        f"families {', '.join(MOE_FAMILIES)}, not {family}; use tp=1 for this model"
    )


def local_model(model: torch.nn.Module, tp: int) -> tuple[torch.nn.Module, Any]:
    """One rank's model (on the meta device) and its full config."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", "") == LLAMA4:
        return _llama4_rank(model, config, tp), config
    if tp == 1:
        return model, config
    if config is None:
        raise CompileError(
            f"tp={tp} needs a Hugging Face model (with .config) so its heads and MLP can be split; "
            f"{type(model).__name__} has no config - estimate it with tp=1"
        )
    dtype = next((p.dtype for p in model.parameters()), torch.bfloat16)
    family = getattr(config, "model_type", "")
    if family not in SHARDABLE and family not in FAMILIES:
        raise CompileError(unsupported_family(tp, family or type(model).__name__))
    if family not in SHARDABLE:
        return _surgery_model(model, config, tp, dtype), config
    with torch.device("meta"):
        local = type(model)(shard_config(config, tp))
    return local.to(dtype).eval(), config


def _llama4_rank(model: torch.nn.Module, config: Any, tp: int) -> torch.nn.Module:
    """A Llama-4 rank on the meta device (tp = 1 included) whose MoE blocks route each token to its top-k experts
    only, as deployments run them (compiler/llama4_routed.py); transformers' own block runs every expert."""
    dtype = next((p.dtype for p in model.parameters()), torch.bfloat16)
    with torch.device("meta"):
        local = type(model)(shard_config(config, tp))
    return route_experts(local.to(dtype).eval())


def _surgery_model(model: torch.nn.Module, config: Any, tp: int, dtype: torch.dtype) -> torch.nn.Module:
    """One rank of a family whose head layout is not in its config alone (GPT-2, GPT-J, GPT-NeoX, OPT,
    Falcon): the model's modules cut as a compiled tp run cuts them (tp_shard.py), on the meta device."""
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
    if known is None and getattr(getattr(rank_model, "config", None), "model_type", "") == "llama4_text":
        known = estimate_roles(rank_model)  # the experts' bmm is placed by its weight, not by shape
    elif known is None:
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

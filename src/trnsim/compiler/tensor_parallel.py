"""Tensor parallelism for estimates (Megatron-style): attention heads, MLP columns and the vocabulary are
split over `tp` logical cores; the row-parallel projections (attention output, MLP down) end in an
all-reduce and the logits in an all-gather, costed over the instance topology (sim/collectives.py).

The per-rank model is built from the Hugging Face config with heads / KV heads / intermediate size /
vocabulary divided by tp (KV heads replicated when fewer than tp, as Megatron and NxD do), so every kernel is
simulated at exactly the shape one rank runs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch

from trnsim.errors import CompileError
from trnsim.hw.spec import HardwareSpec
from trnsim.sim.collectives import Placement, all_gather_us, all_reduce_us


@dataclass(frozen=True)
class TPPlan:
    spec: HardwareSpec
    placement: Placement
    hidden: int  # model width: row-parallel projections produce it
    vocab_local: int  # vocabulary slice of one rank (lm_head output)

    @property
    def tp(self) -> int:
        return self.placement.tp

    def after_linear(self, k: int, n: int, out_bytes: int) -> tuple[str, float] | None:
        """The collective a linear of in-features k, out-features n (per rank) needs, and its time in µs."""
        if self.tp == 1:
            return None
        if n == self.hidden and k != self.hidden:
            return "all_reduce", all_reduce_us(self.spec, self.placement, out_bytes)
        if n == self.vocab_local and self.vocab_local != self.hidden:
            return "all_gather", all_gather_us(self.spec, self.placement, out_bytes * self.tp)
        return None


SHARDABLE = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "phi3")


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
    if heads % tp:
        raise CompileError(f"tp={tp} must divide the {heads} attention heads of {model_type}")
    local = copy.deepcopy(config)
    local.head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    local.num_attention_heads = heads // tp
    local.num_key_value_heads = max(1, kv // tp)  # fewer KV heads than ranks: each rank keeps one (replicated)
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
    with torch.device("meta"):
        local = type(model)(shard_config(config, tp))
    return local.to(dtype).eval(), config

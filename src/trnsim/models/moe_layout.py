"""Where a mixture-of-experts model's MLP widths sit: how many layers are dense, their MLP width, and the shared
experts each MoE layer runs next to the routed ones (the per-family rules of param_count_moe.py, as counts).

- deepseek_v3: the first `first_k_dense_replace` layers are dense (`intermediate_size`); each MoE layer has
  `n_shared_experts` shared experts of `moe_intermediate_size` (one gated MLP of their summed width).
- qwen2_moe / qwen3_moe: dense where `mlp_only_layers` lists a layer or it is not a `decoder_sparse_step`-th
  one; qwen2_moe has one shared expert of `shared_expert_intermediate_size`.
- llama4_text: MoE layers are those in `moe_layers`, the rest dense at `intermediate_size_mlp`; one shared expert
  of `intermediate_size` per MoE layer.
- mixtral, gpt_oss and any other family: every layer MoE, no shared expert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig


@dataclass(frozen=True)
class MoeLayout:
    dense_layers: int  # layers whose MLP is a plain (dense) one
    dense_intermediate_size: int  # their MLP width (0 when there are none)
    shared_expert_size: int  # summed width of the shared experts of one MoE layer (0: none)


def _qwen_sparse(c: PretrainedConfig, i: int) -> bool:
    step = int(getattr(c, "decoder_sparse_step", 1) or 1)
    return i not in (getattr(c, "mlp_only_layers", None) or []) and (i + 1) % step == 0


def moe_layout(config: PretrainedConfig) -> MoeLayout:
    """The layout of a mixture-of-experts `config` (see the module docstring)."""
    c, layers = config, int(config.num_hidden_layers)
    family = c.model_type
    if family == "deepseek_v3":
        dense = min(layers, int(getattr(c, "first_k_dense_replace", 0) or 0))
        shared = int(c.moe_intermediate_size) * int(getattr(c, "n_shared_experts", 0) or 0)
        return MoeLayout(dense, int(c.intermediate_size) if dense else 0, shared)
    if family in ("qwen2_moe", "qwen3_moe"):
        dense = sum(1 for i in range(layers) if not _qwen_sparse(c, i))
        shared = int(getattr(c, "shared_expert_intermediate_size", 0) or 0)
        return MoeLayout(dense, int(c.intermediate_size) if dense else 0, shared)
    if family == "llama4_text":
        dense = layers - len(set(c.moe_layers))
        return MoeLayout(dense, int(c.intermediate_size_mlp) if dense else 0, int(c.intermediate_size))
    return MoeLayout(0, 0, 0)

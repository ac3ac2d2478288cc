"""ModelFacts: the numbers about a model that serving and cost planning need (sizes, heads, KV bytes)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trnsim.models.build import build_model, is_causal_lm
from trnsim.models.config import resolve_config
from trnsim.models.errors import ModelError
from trnsim.models.moe_layout import MoeLayout, moe_layout
from trnsim.models.param_count import count_params, head_dim, kv_heads, vit_tokens
from trnsim.models.param_count_moe import MOE_FORMULA_FAMILIES

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# Config fields that hold an expert count in the families transformers ships.
_EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts")


@dataclass(frozen=True)
class ModelFacts:
    """Architecture facts of one model. Sizes are counts of elements; bytes come from the methods.

    `max_position` is the longest sequence the model accepts (for ViT: patches + [CLS]); `vocab_size` is 0 for
    models without a token vocabulary (ViT). `intermediate_size` is the MLP width, for mixture-of-experts
    models one routed expert's. `kv_latent_dim` is non-zero for multi-head latent attention (DeepSeek's MLA):
    the width of the one compressed vector per token and layer that the KV cache holds (KV latent + the
    shared RoPE key), from which every head's K and V are expanded; `head_dim` is then the query/key head.
    Mixture-of-experts models: `dense_layers` of the layers have a plain MLP of `dense_intermediate_size`, the
    others route to experts and also run `shared_expert_size` of shared-expert width (models/moe_layout.py).
    """

    name: str
    model_type: str
    n_params: int
    active_params: int
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    n_experts: int
    experts_per_token: int
    max_position: int
    is_decoder: bool
    kv_latent_dim: int = 0
    dense_layers: int = 0
    dense_intermediate_size: int = 0
    shared_expert_size: int = 0

    def weight_bytes(self, bytes_per_param: float = 2) -> int:
        """Bytes of all weights at `bytes_per_param` (2 = bf16/fp16, 1 = fp8, 0.5 = int4)."""
        return math.ceil(self.n_params * bytes_per_param)

    def kv_bytes_per_token(self, bytes_per_elem: float = 2) -> int:
        """KV-cache bytes one token adds: 2 (K and V) x layers x kv_heads x head_dim x bytes, or with MLA
        layers x kv_latent_dim x bytes (as vLLM and SGLang cache DeepSeek); 0 for encoders."""
        if not self.is_decoder:
            return 0
        if self.kv_latent_dim:
            return math.ceil(self.n_layers * self.kv_latent_dim * bytes_per_elem)
        return math.ceil(2 * self.n_layers * self.n_kv_heads * self.head_dim * bytes_per_elem)


def _experts(config: PretrainedConfig) -> tuple[int, int]:
    for field in _EXPERT_FIELDS:
        n = getattr(config, field, None)
        if n:
            return int(n), int(getattr(config, "num_experts_per_tok", 1) or 1)
    return 1, 1


def _max_position(config: PretrainedConfig) -> int:
    if config.model_type == "vit":
        return vit_tokens(config)
    return int(getattr(config, "max_position_embeddings", 0) or 0)


def _param_counts(config: PretrainedConfig, n_experts: int) -> tuple[int, int]:
    counted = count_params(config)
    if counted is not None:
        return counted
    if n_experts > 1:
        raise ModelError(
            f"no parameter formula for the mixture-of-experts family {config.model_type!r}, so its active "
            "parameters per token are unknown; supported MoE families: " + ", ".join(("mixtral", *MOE_FORMULA_FAMILIES))
        )
    # A dense family without a formula: count the tensors of the meta-built model (exact, allocates nothing).
    n = sum(p.numel() for p in build_model(config).parameters())
    return n, n


def model_facts(model: str | Path | PretrainedConfig) -> ModelFacts:
    """Facts of a preset name, a config.json path/folder, or a PretrainedConfig."""
    config = resolve_config(model)
    n_experts, per_token = _experts(config)
    total, active = _param_counts(config, n_experts)
    intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    if intermediate is None and config.model_type == "gpt2":
        intermediate = 4 * config.hidden_size  # GPT-2's default when n_inner is unset
    if n_experts > 1 and getattr(config, "moe_intermediate_size", None):
        intermediate = config.moe_intermediate_size  # Qwen-MoE, DeepSeek: experts narrower than dense layers
    latent = getattr(config, "kv_lora_rank", None)
    kv_latent = int(latent) + int(config.qk_rope_head_dim) if latent else 0
    layout = moe_layout(config) if n_experts > 1 else MoeLayout(0, 0, 0)
    heads_dim = int(config.qk_nope_head_dim) + int(config.qk_rope_head_dim) if latent else head_dim(config)
    return ModelFacts(
        name=str(getattr(config, "name_or_path", "") or config.model_type),
        model_type=config.model_type,
        n_params=total,
        active_params=active,
        n_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        n_heads=config.num_attention_heads,
        n_kv_heads=kv_heads(config),
        head_dim=heads_dim,
        intermediate_size=int(intermediate or 0),
        vocab_size=int(getattr(config, "vocab_size", 0) or 0),
        n_experts=n_experts,
        experts_per_token=per_token,
        max_position=_max_position(config),
        is_decoder=is_causal_lm(config),
        kv_latent_dim=kv_latent,
        dense_layers=layout.dense_layers,
        dense_intermediate_size=layout.dense_intermediate_size,
        shared_expert_size=layout.shared_expert_size,
    )

"""Exact parameter counts from a config, by formula, for the families the presets use.

Each formula lists the tensors of the module transformers builds for `task="auto"` (see build.py): causal LMs
with their LM head (dropped when tied to the embedding), encoders as the base model with its pooler. Tests
check every formula against `sum(p.numel())` of the meta-built model, on the presets and on random configs.
Counts are (total, active): active is what one token uses, which differs only for mixture-of-experts models
(the router plus `experts_per_token` of the experts in each layer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trnsim.models.param_count_moe import MOE_FORMULA_FAMILIES, count_moe_params

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# RMSNorm + RoPE + gated-SiLU decoders that differ only in which projections carry a bias.
LLAMA_LIKE = ("llama", "mistral", "qwen2", "mixtral")
FORMULA_FAMILIES = (*LLAMA_LIKE, "gpt2", "bert", "vit", *MOE_FORMULA_FAMILIES)


def head_dim(config: PretrainedConfig) -> int:
    explicit = getattr(config, "head_dim", None)
    return int(explicit) if explicit else config.hidden_size // config.num_attention_heads


def kv_heads(config: PretrainedConfig) -> int:
    return int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _llama_like(c: PretrainedConfig) -> tuple[int, int]:
    h, layers, vocab = c.hidden_size, c.num_hidden_layers, c.vocab_size
    q_out, kv_out = c.num_attention_heads * head_dim(c), kv_heads(c) * head_dim(c)
    family = c.model_type
    qkv_bias = family == "qwen2" or (family == "llama" and bool(c.attention_bias))
    o_bias = family == "llama" and bool(c.attention_bias)
    attention = _linear(h, q_out, qkv_bias) + 2 * _linear(h, kv_out, qkv_bias) + _linear(q_out, h, o_bias)
    mlp_bias = family == "llama" and bool(getattr(c, "mlp_bias", False))
    inter = c.intermediate_size
    one_mlp = 2 * _linear(h, inter, mlp_bias) + _linear(inter, h, mlp_bias)  # gate, up, down
    if family == "mixtral":
        experts, k = c.num_local_experts, c.num_experts_per_tok
        router = experts * h  # no bias
        mlp_total, mlp_active = router + experts * one_mlp, router + k * one_mlp
    else:
        mlp_total = mlp_active = one_mlp
    norms = 2 * h
    outside = vocab * h + h + (0 if c.tie_word_embeddings else vocab * h)  # embedding, final norm, LM head
    total = outside + layers * (attention + mlp_total + norms)
    active = outside + layers * (attention + mlp_active + norms)
    return total, active


def _gpt2(c: PretrainedConfig) -> int:
    h, inter = c.n_embd, c.n_inner or 4 * c.n_embd
    layer = (
        2 * 2 * h + _linear(h, 3 * h, True) + _linear(h, h, True) + _linear(h, inter, True) + _linear(inter, h, True)
    )
    lm_head = 0 if c.tie_word_embeddings else c.vocab_size * h
    return c.vocab_size * h + c.n_positions * h + c.n_layer * layer + 2 * h + lm_head


def _encoder_layer(h: int, inter: int, qkv_bias: bool) -> int:
    # Q, K, V, attention output, two LayerNorms (weight + bias), MLP in and out.
    return (
        3 * _linear(h, h, qkv_bias)
        + _linear(h, h, True)
        + 2 * 2 * h
        + _linear(h, inter, True)
        + _linear(inter, h, True)
    )


def _bert(c: PretrainedConfig) -> int:
    h = c.hidden_size
    embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h + 2 * h
    pooler = _linear(h, h, True)
    return embeddings + c.num_hidden_layers * _encoder_layer(h, c.intermediate_size, True) + pooler


def vit_tokens(c: PretrainedConfig) -> int:
    """Patches plus the [CLS] token: the sequence length of a ViT."""
    return (c.image_size // c.patch_size) ** 2 + 1


def _vit(c: PretrainedConfig) -> int:
    h = c.hidden_size
    patch_embed = _linear(c.num_channels * c.patch_size**2, h, True)
    mask_token = h if getattr(c, "use_mask_token", False) else 0
    embeddings = h + vit_tokens(c) * h + patch_embed + mask_token  # [CLS], positions, patch projection
    pooler = _linear(h, getattr(c, "pooler_output_size", None) or h, True)
    layers = c.num_hidden_layers * _encoder_layer(h, c.intermediate_size, bool(c.qkv_bias))
    return embeddings + layers + 2 * h + pooler  # + final LayerNorm


def count_params(config: PretrainedConfig) -> tuple[int, int] | None:
    """(total, active) parameters by formula, or None for a family without one."""
    family = config.model_type
    if family in LLAMA_LIKE:
        return _llama_like(config)
    counters = {"gpt2": _gpt2, "bert": _bert, "vit": _vit}
    if family in counters:
        n = counters[family](config)
        return n, n
    return count_moe_params(config)

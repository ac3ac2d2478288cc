"""Exact (total, active) parameter counts of the 2025 mixture-of-experts families, by formula from the config.

Each formula lists the tensors transformers builds for the family's causal LM (tests compare every formula with
`sum(p.numel())` of the meta-built model, on the presets and on random configs). "Active" is what one token
uses: attention, norms, embedding and head fully, the router, the shared experts, and `num_experts_per_tok` of
the routed experts of each MoE layer. Which layers are MoE follows each family's modeling code:

- deepseek_v3: layers from `first_k_dense_replace` on (the first ones are dense MLPs); MLA attention
  (low-rank Q and KV projections); the router's score-correction bias is a buffer, not a parameter.
- qwen3_moe: every `decoder_sparse_step`-th layer unless listed in `mlp_only_layers`; per-head Q/K RMSNorm.
- llama4_text: the layers in `moe_layers`; each MoE layer has one shared expert; dense layers use
  `intermediate_size_mlp`; the QK norm is weightless (L2).
- gpt_oss: every layer; biases on attention, router and experts; one learned attention sink per head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig

MOE_FORMULA_FAMILIES = ("deepseek_v3", "qwen3_moe", "llama4_text", "gpt_oss")


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _gated_mlp(h: int, inter: int) -> int:
    return 3 * h * inter  # gate, up, down; no biases in these families' MLPs


def _outside(c: PretrainedConfig) -> int:
    """Embedding, final norm and (untied) LM head."""
    h, vocab = c.hidden_size, c.vocab_size
    return vocab * h + h + (0 if c.tie_word_embeddings else vocab * h)


def _gqa_attention(c: PretrainedConfig, head_dim: int, bias: bool, o_bias: bool) -> int:
    h = c.hidden_size
    q_out, kv_out = c.num_attention_heads * head_dim, c.num_key_value_heads * head_dim
    return _linear(h, q_out, bias) + 2 * _linear(h, kv_out, bias) + _linear(q_out, h, o_bias)


def _sum_layers(c: PretrainedConfig, fixed: int, mlp: list[tuple[int, int]]) -> tuple[int, int]:
    """(total, active) from the per-layer parts every layer has (`fixed`) and each layer's MLP (total, active)."""
    total = _outside(c) + sum(fixed + t for t, _ in mlp)
    active = _outside(c) + sum(fixed + a for _, a in mlp)
    return total, active


def _deepseek_v3(c: PretrainedConfig) -> tuple[int, int]:
    h, heads, bias = c.hidden_size, c.num_attention_heads, bool(c.attention_bias)
    qk_head = c.qk_nope_head_dim + c.qk_rope_head_dim
    if c.q_lora_rank is None:
        q = _linear(h, heads * qk_head, False)
    else:  # down-projection, its RMSNorm, up-projection
        q = _linear(h, c.q_lora_rank, bias) + c.q_lora_rank + _linear(c.q_lora_rank, heads * qk_head, False)
    kv = (
        _linear(h, c.kv_lora_rank + c.qk_rope_head_dim, bias)  # kv_a_proj_with_mqa: latent + shared RoPE key
        + c.kv_lora_rank  # kv_a_layernorm
        + _linear(c.kv_lora_rank, heads * (c.qk_nope_head_dim + c.v_head_dim), False)
    )
    attention = q + kv + _linear(heads * c.v_head_dim, h, bias)
    experts, k = c.n_routed_experts, c.num_experts_per_tok
    one_expert = _gated_mlp(h, c.moe_intermediate_size)
    shared = _gated_mlp(h, c.moe_intermediate_size * c.n_shared_experts)
    router = experts * h
    moe = (router + experts * one_expert + shared, router + k * one_expert + shared)
    dense = (_gated_mlp(h, c.intermediate_size),) * 2
    mlp = [moe if i >= c.first_k_dense_replace else dense for i in range(c.num_hidden_layers)]
    return _sum_layers(c, attention + 2 * h, mlp)


def _qwen3_moe(c: PretrainedConfig) -> tuple[int, int]:
    h, hd = c.hidden_size, c.head_dim
    bias = bool(c.attention_bias)
    attention = _gqa_attention(c, hd, bias, bias) + 2 * hd  # + q_norm, k_norm over one head
    experts, k = c.num_experts, c.num_experts_per_tok
    one_expert, router = _gated_mlp(h, c.moe_intermediate_size), experts * h
    moe = (router + experts * one_expert, router + k * one_expert)
    dense = (_gated_mlp(h, c.intermediate_size),) * 2

    def sparse(i: int) -> bool:
        return i not in c.mlp_only_layers and experts > 0 and (i + 1) % c.decoder_sparse_step == 0

    mlp = [moe if sparse(i) else dense for i in range(c.num_hidden_layers)]
    return _sum_layers(c, attention + 2 * h, mlp)


def _llama4_text(c: PretrainedConfig) -> tuple[int, int]:
    h, bias = c.hidden_size, bool(c.attention_bias)
    attention = _gqa_attention(c, c.head_dim, bias, bias)
    experts, k = c.num_local_experts, c.num_experts_per_tok
    one_expert, router = _gated_mlp(h, c.intermediate_size), experts * h
    shared = one_expert
    moe = (router + experts * one_expert + shared, router + k * one_expert + shared)
    dense = (_gated_mlp(h, c.intermediate_size_mlp),) * 2
    moe_layers = set(c.moe_layers)
    mlp = [moe if i in moe_layers else dense for i in range(c.num_hidden_layers)]
    return _sum_layers(c, attention + 2 * h, mlp)


def _gpt_oss(c: PretrainedConfig) -> tuple[int, int]:
    h, inter = c.hidden_size, c.intermediate_size
    bias = bool(c.attention_bias)
    attention = _gqa_attention(c, c.head_dim, bias, bias) + c.num_attention_heads  # + sinks
    experts, k = c.num_local_experts, c.num_experts_per_tok
    one_expert = _linear(h, 2 * inter, True) + _linear(inter, h, True)  # fused gate_up, down; with biases
    router = _linear(h, experts, True)
    moe = (router + experts * one_expert, router + k * one_expert)
    return _sum_layers(c, attention + 2 * h, [moe] * c.num_hidden_layers)


_COUNTERS = {
    "deepseek_v3": _deepseek_v3,
    "qwen3_moe": _qwen3_moe,
    "llama4_text": _llama4_text,
    "gpt_oss": _gpt_oss,
}


def count_moe_params(config: PretrainedConfig) -> tuple[int, int] | None:
    """(total, active) parameters by formula for the families above, or None for another family."""
    counter = _COUNTERS.get(config.model_type)
    return counter(config) if counter is not None else None

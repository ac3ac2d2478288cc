"""The 2025 MoE parameter formulas against transformers' own modules, on fresh random configs of each family.

Total: `sum(p.numel())` of the meta-built model. Active: the module tree again, with every routed-expert tensor
(stacked [experts, ...]) counted k/E of its size, so neither check reuses the formula.
"""

from __future__ import annotations

import numpy as np
import pytest
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from trnsim.models import build_model, model_facts


def _int(rng: np.random.Generator, low: int, high: int) -> int:
    return int(rng.integers(low, high + 1))


def _random_config(rng: np.random.Generator, family: str) -> dict[str, object]:
    kv = _int(rng, 1, 2)
    heads = kv * _int(rng, 1, 3)
    head_dim = int(rng.choice([8, 16]))
    layers = _int(rng, 1, 4)
    experts = _int(rng, 2, 6)
    common: dict[str, object] = {
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "hidden_size": _int(rng, 2, 6) * 8,
        "num_hidden_layers": layers,
        "vocab_size": _int(rng, 10, 300),
        "tie_word_embeddings": bool(rng.integers(2)),
        "num_experts_per_tok": _int(rng, 1, experts),
        "intermediate_size": _int(rng, 8, 64),
    }
    if family == "deepseek_v3":
        return common | {
            "num_key_value_heads": heads,
            "n_routed_experts": experts,
            "n_shared_experts": _int(rng, 1, 2),
            "n_group": 1,
            "topk_group": 1,
            "moe_intermediate_size": _int(rng, 4, 32),
            "first_k_dense_replace": _int(rng, 0, layers),
            "q_lora_rank": None if rng.integers(2) else _int(rng, 4, 24),
            "kv_lora_rank": _int(rng, 4, 24),
            "qk_nope_head_dim": head_dim,
            "qk_rope_head_dim": 8,
            "v_head_dim": int(rng.choice([8, 16])),
            "attention_bias": bool(rng.integers(2)),
        }
    if family == "qwen3_moe":
        step = _int(rng, 1, 2)
        return common | {
            "head_dim": head_dim,
            "num_experts": experts,
            "moe_intermediate_size": _int(rng, 4, 32),
            "decoder_sparse_step": step,
            "mlp_only_layers": [i for i in range(layers) if rng.integers(3) == 0],
            "attention_bias": bool(rng.integers(2)),
        }
    if family == "llama4_text":
        return common | {
            "head_dim": head_dim,
            "num_local_experts": experts,
            "intermediate_size_mlp": _int(rng, 8, 64),
            "interleave_moe_layer_step": _int(rng, 1, 2),
            "attention_bias": bool(rng.integers(2)),
            "use_qk_norm": bool(rng.integers(2)),
        }
    assert family == "gpt_oss"
    return common | {
        "head_dim": head_dim,
        "num_local_experts": experts,
        "layer_types": [str(rng.choice(["sliding_attention", "full_attention"])) for _ in range(layers)],
        "attention_bias": bool(rng.integers(2)),
    }


@pytest.mark.parametrize("family", ["deepseek_v3", "qwen3_moe", "llama4_text", "gpt_oss"])
def test_moe_formula_equals_module_count_on_random_configs(family: str, rng: np.random.Generator) -> None:
    for _ in range(4):
        config = CONFIG_MAPPING[family](**_random_config(rng, family))
        model = build_model(config, task="causal-lm")
        facts = model_facts(config)
        assert facts.n_params == sum(p.numel() for p in model.parameters()), config.to_dict()
        active = 0
        for name, p in model.named_parameters():
            routed = ".experts." in name
            active += p.numel() // facts.n_experts * facts.experts_per_token if routed else p.numel()
        assert facts.active_params == active, config.to_dict()

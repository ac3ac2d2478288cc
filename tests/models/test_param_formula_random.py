"""The parameter formulas against transformers' own modules, on fresh random configs of every family."""

from __future__ import annotations

import numpy as np
import pytest
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from trnsim.models import build_model, model_facts


def _pick(rng: np.random.Generator, *options: int) -> int:
    return int(rng.choice(options))


def _decoder(rng: np.random.Generator, family: str) -> dict[str, object]:
    kv = _pick(rng, 1, 2, 4)
    heads = kv * _pick(rng, 1, 2, 3)
    hd = _pick(rng, 8, 16, 32)
    cfg: dict[str, object] = {
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "hidden_size": heads * hd,
        "intermediate_size": int(rng.integers(8, 200)),
        "num_hidden_layers": int(rng.integers(1, 4)),
        "vocab_size": int(rng.integers(10, 500)),
        "tie_word_embeddings": bool(rng.integers(2)),
    }
    if family == "llama":
        cfg |= {"attention_bias": bool(rng.integers(2)), "mlp_bias": bool(rng.integers(2))}
        if rng.integers(2):
            cfg["head_dim"] = _pick(rng, 8, 24)  # head_dim independent of hidden / heads
    if family == "mixtral":
        experts = int(rng.integers(2, 6))
        cfg |= {"num_local_experts": experts, "num_experts_per_tok": int(rng.integers(1, experts + 1))}
    return cfg


def _random_config(rng: np.random.Generator, family: str) -> dict[str, object]:
    if family in ("llama", "mistral", "qwen2", "mixtral"):
        return _decoder(rng, family)
    heads = _pick(rng, 1, 2, 4)
    hidden = heads * _pick(rng, 8, 16)
    if family == "gpt2":
        inner = None if rng.integers(2) else int(rng.integers(8, 100))
        return {
            "n_embd": hidden,
            "n_head": heads,
            "n_layer": int(rng.integers(1, 4)),
            "n_positions": int(rng.integers(8, 64)),
            "n_inner": inner,
            "vocab_size": int(rng.integers(10, 500)),
            "tie_word_embeddings": bool(rng.integers(2)),
        }
    common = {
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_hidden_layers": int(rng.integers(1, 4)),
        "intermediate_size": int(rng.integers(8, 100)),
    }
    if family == "bert":
        extra = {"vocab_size": 300, "max_position_embeddings": 40, "type_vocab_size": int(rng.integers(1, 4))}
        return common | extra
    patch = _pick(rng, 2, 4)
    return common | {
        "image_size": patch * int(rng.integers(1, 6)),
        "patch_size": patch,
        "num_channels": _pick(rng, 1, 3),
        "qkv_bias": bool(rng.integers(2)),
    }


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "mixtral", "gpt2", "bert", "vit"])
def test_formula_equals_module_count_on_random_configs(family: str, rng: np.random.Generator) -> None:
    for _ in range(4):
        config = CONFIG_MAPPING[family](**_random_config(rng, family))
        model = build_model(config, task="causal-lm" if family not in ("bert", "vit") else "base")
        counted = sum(p.numel() for p in model.parameters())
        assert model_facts(config).n_params == counted, config.to_dict()

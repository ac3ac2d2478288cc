"""A served MLA model (DeepSeek-V3) caches its latent per token and layer, replicated on every TP rank; a GQA model
caches K and V per KV head. Both against closed forms from the published configs."""

from __future__ import annotations

import pytest

from trnsim.serve.setup import served_model


@pytest.mark.parametrize("tp", [1, 8, 16])
def test_deepseek_v3_caches_its_latent_on_every_rank(tp: int) -> None:
    layers, latent = 61, 512 + 64  # num_hidden_layers; kv_lora_rank + qk_rope_head_dim
    assert served_model("deepseek-v3", tp=tp).kv_bytes_per_token == layers * latent * 2 * tp
    assert served_model("deepseek-v3", tp=tp, kv_bytes=1).kv_bytes_per_token == layers * latent * tp


def test_gqa_cache_is_k_and_v_per_kv_head() -> None:
    layers, kv_heads, head_dim = 32, 8, 128  # Llama-3.1-8B
    assert served_model("llama-3.1-8b", tp=1).kv_bytes_per_token == 2 * layers * kv_heads * head_dim * 2
    # tp=16 > 8 KV heads: each rank holds one (replicated) KV head
    assert served_model("llama-3.1-8b", tp=16).kv_bytes_per_token == 2 * layers * 16 * head_dim * 2

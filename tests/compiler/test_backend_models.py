"""torch.compile(model, backend="trnsim") against eager PyTorch on small transformers models and CNNs."""

import warnings

import pytest
import torch
import transformers

import trnsim
from trnsim.errors import TrnsimWarning


def _small(kind: str) -> torch.nn.Module:
    if kind == "gpt2":
        cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=300, n_positions=64, use_cache=False)
        return transformers.GPT2LMHeadModel(cfg)
    if kind == "llama":
        cfg = transformers.LlamaConfig(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=300,
            use_cache=False,
        )
        return transformers.LlamaForCausalLM(cfg)
    if kind == "mistral":
        cfg = transformers.MistralConfig(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            vocab_size=300,
            use_cache=False,
            sliding_window=None,
        )
        return transformers.MistralForCausalLM(cfg)
    if kind == "qwen2":
        cfg = transformers.Qwen2Config(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=300,
            use_cache=False,
        )
        return transformers.Qwen2ForCausalLM(cfg)
    cfg = transformers.BertConfig(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, vocab_size=300
    )
    return transformers.BertModel(cfg)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "mistral", "qwen2", "bert"])
def test_transformers_match_eager_fp32(kind):
    torch.manual_seed(torch.randint(0, 2**31, ()).item())
    model = _small(kind).eval()
    ids = torch.randint(0, 300, (2, 24))
    compiled = torch.compile(model, backend="trnsim")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TrnsimWarning)  # these models must run entirely on the chip
        ref = model(ids)[0]
        out = compiled(ids)[0]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    prof = trnsim.last_profile()
    assert prof is not None and prof.device_time_us > 0 and not prof.host_fallback
    assert prof.flops > 0 and prof.hbm_bytes > 0
    assert "linear" in prof.by_kernel() or "matmul" in prof.by_kernel()


def test_llama_bf16_matches_eager_within_bf16_tolerance():
    model = _small("llama").to(torch.bfloat16).eval()
    ids = torch.randint(0, 300, (1, 32))
    compiled = torch.compile(model, backend="trnsim")
    with torch.no_grad():
        ref = model.float()(ids)[0]
        model.to(torch.bfloat16)
        out = compiled(ids)[0].float()
    # bf16 keeps 8 mantissa bits; logits accumulate through 2 layers
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.999
    torch.testing.assert_close(out, ref, rtol=0.1, atol=0.1)


def test_small_cnn_matches_eager():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TrnsimWarning)
        out = torch.compile(model, backend="trnsim")(x)
        ref = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert "conv2d" in trnsim.last_profile().by_kernel()


# More Hugging Face families, one tiny random-weight config each (one layer, or two where the family
# alternates attention kinds). With the five above and the MoE tests (tests/compiler/test_moe_models.py:
# Mixtral, Qwen2-MoE, Qwen3-MoE) these are the families the compiler is held to.
_TINY = {"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "vocab_size": 300}
_DECODER = {**_TINY, "num_key_value_heads": 2, "num_hidden_layers": 1, "use_cache": False}
MORE_FAMILIES = {
    "qwen3": lambda: transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**_DECODER, head_dim=16)),
    "phi3": lambda: transformers.Phi3ForCausalLM(transformers.Phi3Config(**_DECODER, pad_token_id=0)),
    "gemma": lambda: transformers.GemmaForCausalLM(transformers.GemmaConfig(**_DECODER, head_dim=16)),
    "gemma2": lambda: transformers.Gemma2ForCausalLM(
        transformers.Gemma2Config(**{**_DECODER, "num_hidden_layers": 2}, head_dim=16)
    ),
    "olmo2": lambda: transformers.Olmo2ForCausalLM(transformers.Olmo2Config(**_DECODER)),
    "granite": lambda: transformers.GraniteForCausalLM(transformers.GraniteConfig(**_DECODER)),
    "stablelm": lambda: transformers.StableLmForCausalLM(transformers.StableLmConfig(**_DECODER)),
    "gpt_neox": lambda: transformers.GPTNeoXForCausalLM(
        transformers.GPTNeoXConfig(**_TINY, num_hidden_layers=1, use_cache=False)
    ),
    "falcon": lambda: transformers.FalconForCausalLM(
        transformers.FalconConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=300)
    ),
    "gptj": lambda: transformers.GPTJForCausalLM(
        transformers.GPTJConfig(n_embd=64, n_layer=1, n_head=4, vocab_size=300, rotary_dim=8, n_positions=64)
    ),
    "bloom": lambda: transformers.BloomForCausalLM(
        transformers.BloomConfig(hidden_size=64, n_layer=1, n_head=4, vocab_size=300)
    ),
    "distilbert": lambda: transformers.DistilBertModel(
        transformers.DistilBertConfig(dim=64, hidden_dim=96, n_layers=1, n_heads=4, vocab_size=300)
    ),
    "olmoe": lambda: transformers.OlmoeForCausalLM(
        transformers.OlmoeConfig(**_DECODER, num_experts=4, num_experts_per_tok=2)
    ),
    "gpt_oss": lambda: transformers.GptOssForCausalLM(
        transformers.GptOssConfig(
            **{**_DECODER, "num_hidden_layers": 2},
            head_dim=16,
            num_local_experts=4,
            num_experts_per_tok=2,
            layer_types=["sliding_attention", "full_attention"],
            sliding_window=8,
        )
    ),
}


@pytest.mark.parametrize("family", sorted(MORE_FAMILIES))
def test_more_families_match_eager_on_the_chip(family):
    torch.manual_seed(torch.randint(0, 2**31, ()).item())
    model = MORE_FAMILIES[family]().eval()
    ids = torch.randint(0, 300, (2, 24))
    compiled = torch.compile(model, backend="trnsim")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TrnsimWarning)  # every op on the chip, routing included
        ref = model(ids)[0]
        out = compiled(ids)[0]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    prof = trnsim.last_profile()
    assert prof is not None and prof.device_time_us > 0 and not prof.host_fallback

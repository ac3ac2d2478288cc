"""Tensor parallelism for every decoder family trnsim shards: a compiled tp=2 run matches the eager (unsplit)
model, and trnsim.estimate prices tp=2 and tp=4 with one all-reduce per row-parallel projection and an
all-gather of the logits, the same collective time as the compiled run."""

from __future__ import annotations

import pytest
import torch
import transformers

import trnsim
from trnsim.errors import CompileError

VOCAB = 300
LLAMA_LIKE = dict(
    hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2
)

# intermediate sizes are 4 x hidden where the family fixes it (GPT-2, GPT-J, Falcon, BLOOM): at tp=4 a rank's
# MLP slice is as wide as the model, which a shape rule could not tell from a column-parallel projection
FAMILIES = {
    "gpt2": lambda: transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=1, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=64, use_cache=False)
    ),
    "gptj": lambda: transformers.GPTJForCausalLM(
        transformers.GPTJConfig(n_embd=64, n_layer=1, n_head=4, vocab_size=VOCAB, rotary_dim=8, use_cache=False)
    ),
    "gpt_neox": lambda: transformers.GPTNeoXForCausalLM(
        transformers.GPTNeoXConfig(
            hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4, vocab_size=VOCAB
        )
    ),
    "opt": lambda: transformers.OPTForCausalLM(
        transformers.OPTConfig(
            hidden_size=64,
            ffn_dim=96,
            num_hidden_layers=1,
            num_attention_heads=4,
            vocab_size=VOCAB,
            word_embed_proj_dim=64,
        )
    ),
    "falcon": lambda: transformers.FalconForCausalLM(
        transformers.FalconConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=VOCAB)
    ),
    "falcon_grouped": lambda: transformers.FalconForCausalLM(
        transformers.FalconConfig(
            hidden_size=64,
            num_hidden_layers=1,
            num_attention_heads=8,
            num_kv_heads=2,
            new_decoder_architecture=True,
            vocab_size=VOCAB,
        )
    ),
    "bloom": lambda: transformers.BloomForCausalLM(
        transformers.BloomConfig(hidden_size=64, n_layer=1, n_head=4, vocab_size=VOCAB)
    ),
    "qwen2": lambda: transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**LLAMA_LIKE, vocab_size=VOCAB)),
    "phi3": lambda: transformers.Phi3ForCausalLM(
        transformers.Phi3Config(**LLAMA_LIKE, vocab_size=VOCAB, pad_token_id=0)
    ),
}


def _model(family: str) -> torch.nn.Module:
    torch.manual_seed(int(torch.randint(0, 2**31, ()).item()))
    model = FAMILIES[family]().eval()
    model.config.use_cache = False
    return model


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_compiled_tp2_matches_eager_and_estimate(family):
    model = _model(family)
    ids = torch.randint(0, VOCAB, (1, 8))
    exe = trnsim.compile(model, (ids,), tp=2)
    with torch.no_grad():
        torch.testing.assert_close(exe(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)
    compiled = trnsim.last_profile()
    assert compiled is not None and not compiled.host_fallback
    estimated = trnsim.estimate(model, (ids,), tp=2)
    assert compiled.collective_us == pytest.approx(estimated.collective_us, rel=1e-12)


@pytest.mark.parametrize("family", ["gpt2", "gptj", "gpt_neox", "opt", "falcon", "bloom"])
def test_family_estimate_at_tp4_has_every_collective(family):
    model = _model(family)
    model.config.use_cache = True  # as presets come: the estimate captures without a KV cache
    prof = trnsim.estimate(model, (torch.randint(0, VOCAB, (1, 8)),), tp=4)
    kernels = prof.by_kernel()
    # attention output and MLP down projection of the one layer, then the logits
    assert kernels["all_reduce"]["count"] == 2 and kernels["all_gather"]["count"] == 1
    assert prof.tp == 4 and prof.device_time_us > 0


def test_unsplittable_family_is_a_clear_error():
    cfg = transformers.BertConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4)
    with pytest.raises(CompileError, match=r"tp=2 sharding is implemented for the decoder families .*not bert"):
        trnsim.compile(transformers.BertModel(cfg).eval(), (torch.randint(0, 100, (1, 8)),), tp=2)

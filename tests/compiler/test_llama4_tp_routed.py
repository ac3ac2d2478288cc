"""The routed form of Llama-4's MoE blocks that estimates price (compiler/llama4_routed.py): the same values as
transformers' every-expert Llama4TextMoe on random weights, and grouped matmuls over tokens x top-k rows in an
estimate instead of batched matmuls over every expert's copy of every token."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import transformers

import trnsim
from trnsim.compiler.llama4_routed import route_experts
from trnsim.models import build_model


def _config(top_k: int, experts: int) -> transformers.Llama4TextConfig:
    return transformers.Llama4TextConfig(
        hidden_size=64,
        intermediate_size=48,
        intermediate_size_mlp=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=experts,
        num_experts_per_tok=top_k,
        interleave_moe_layer_step=1,
        vocab_size=300,
        use_cache=False,
    )


@pytest.mark.parametrize("top_k", [1, 2])
def test_routed_blocks_match_transformers_every_expert_form(top_k: int) -> None:
    torch.manual_seed(int(torch.randint(0, 2**31, ()).item()))
    model = transformers.Llama4ForCausalLM(_config(top_k, 4)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 3:  # transformers leaves the experts' weights at zero: give them values
                p.normal_(std=0.05)
    routed = route_experts(copy.deepcopy(model))
    assert type(routed.model.layers[0].feed_forward).__name__ == "RoutedLlama4TextMoe"
    ids = torch.randint(0, 300, (2, 11))
    with torch.no_grad():
        want, got = model(ids).logits, routed(ids).logits
        for block in routed.modules():  # the experts matter: without them the logits move
            if hasattr(block, "gate_up_proj"):
                block.down_proj.zero_()
        without = routed(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert (without - want).abs().max() > 100 * (got - want).abs().max() + 1e-4


def test_estimate_prices_top_k_rows_not_every_expert() -> None:
    experts, tokens = 16, 64
    net = build_model(_config(1, experts), device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the complex rotary embedding runs on the host
        prof = trnsim.estimate(net, (torch.zeros(1, tokens, dtype=torch.long, device="meta"),), target="trn2")
    grouped = [r for r in prof.records if r.op == "aten._grouped_mm.default"]
    # gate|up then down, each of the 64 routed rows once: 2 x 64 x 64 x (2 x 48 + 48) per layer
    assert sum(r.flops * r.count for r in grouped) == 2 * 2 * tokens * 64 * 3 * 48
    assert not [r for r in prof.records if r.op in ("aten.bmm.default", "aten.repeat.default")]
    assert net.model.layers[0].feed_forward.__class__.__name__ == "Llama4TextMoe"  # the caller's model unchanged

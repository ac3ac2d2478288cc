"""Tensor parallelism for MoE decoders in estimates: each rank holds every expert's 1/tp column slice (and 1/tp
of the heads, the dense MLPs and the shared experts), so each MoE block ends in one all-reduce of the combined
[tokens, hidden] output, like the attention output projection's. Checked on tiny random configs of each MoE
family against closed forms: the per-rank expert widths, one all-reduce per MoE block moving the same bytes as
the attention's (so the same time), and the per-rank grouped-matmul FLOPs."""

from __future__ import annotations

import math
import random
import warnings
from typing import Any

import pytest
import torch
from transformers import DeepseekV3Config, GptOssConfig, MixtralConfig, Qwen3MoeConfig

import trnsim
from trnsim.models import build_model

HIDDEN, HEADS, KV = 256, 8, 4


def _configs(inter: int, experts: int, top_k: int) -> dict[str, Any]:
    common: dict[str, Any] = dict(hidden_size=HIDDEN, num_attention_heads=HEADS, num_key_value_heads=KV, vocab_size=512)
    return {
        "mixtral": MixtralConfig(
            intermediate_size=inter, num_local_experts=experts, num_experts_per_tok=top_k, num_hidden_layers=2, **common
        ),
        "qwen3_moe": Qwen3MoeConfig(
            intermediate_size=inter * 2,
            moe_intermediate_size=inter,
            num_experts=experts,
            num_experts_per_tok=top_k,
            num_hidden_layers=2,
            **{**common, "head_dim": 32},  # head_dim: a config attribute the stubs do not list
        ),
        "gpt_oss": GptOssConfig(
            intermediate_size=inter,
            num_local_experts=experts,
            num_experts_per_tok=top_k,
            head_dim=32,
            num_hidden_layers=2,
            layer_types=["full_attention", "full_attention"],
            **common,
        ),
        "deepseek_v3": DeepseekV3Config(
            intermediate_size=inter * 2,
            moe_intermediate_size=inter,
            n_routed_experts=experts,
            num_experts_per_tok=top_k,
            n_group=1,
            topk_group=1,
            n_shared_experts=1,
            first_k_dense_replace=0,
            q_lora_rank=64,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=16,
            v_head_dim=16,
            num_hidden_layers=2,
            **{**common, "num_key_value_heads": HEADS},
        ),
    }


@pytest.mark.parametrize("family", ["mixtral", "qwen3_moe", "gpt_oss", "deepseek_v3"])
def test_moe_blocks_end_in_one_all_reduce_per_rank(family: str) -> None:
    rng = random.Random()
    tp = rng.choice([2, 4])
    inter = rng.choice([96, 160, 192])  # inter / tp never equals HIDDEN (the shape rule's one ambiguity)
    experts, top_k, tokens = rng.choice([4, 8]), 2, rng.choice([32, 64])
    config = _configs(inter, experts, top_k)[family]
    net = build_model(config, device="meta")
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = trnsim.estimate(net, (ids,), target="trn2", tp=tp)
    reduces = [r for r in prof.records if r.kernel == "all_reduce"]
    attention = [r for r in reduces if r.shapes.startswith("[1, ")]  # the o_proj's [1, tokens, hidden]
    moe = [r for r in reduces if not r.shapes.startswith("[1, ")]  # the experts' combined [tokens, hidden]
    shared = 1 if family == "deepseek_v3" else 0  # a shared expert's down_proj is a linear
    layers = config.num_hidden_layers
    assert sum(r.count for r in attention) == layers * (1 + shared), family
    assert sum(r.count for r in moe) == layers, family
    assert moe[0].shapes == f"[{tokens}, {HIDDEN}]:bfloat16"
    # the same bytes over the same ranks: the same time as the attention's all-reduce
    assert moe[0].device_us == pytest.approx(attention[0].device_us)
    grouped = [r for r in prof.records if r.kernel == "grouped_matmul"]
    assert grouped, family
    # per-rank expert FLOPs: tokens x top-k rows through gate/up (2 x inter/tp wide) and down, 2 FLOPs per MAC
    k = top_k
    local = math.ceil(inter / tp)
    want = 2 * tokens * k * (HIDDEN * 2 * local + local * HIDDEN) * layers
    assert sum(r.flops * r.count for r in grouped) == want, family

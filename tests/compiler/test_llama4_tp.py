"""Tensor parallelism for Llama-4 (llama4_text), whose routed experts are 3-D weights.

An estimate's rank holds 1/tp of the heads, of every expert's and the shared expert's intermediate width and of
the dense layers' MLP (Maverick interleaves them), and routes each token to its top-k experts only
(compiler/llama4_routed.py: grouped matmuls over tokens x k rows, not transformers' every-expert bmm's); each
block ends in one all-reduce of [tokens, hidden] (the shared expert's partial sum joins the experts' before it)
and the logits in an all-gather. Checked on tiny random configs against closed forms: the collectives' count
and bytes, and the per-rank FLOPs of every weight matmul. A compiled tp=2 run (transformers' own bmm form)
splits real weights the same way and matches the eager model.
"""

from __future__ import annotations

import math
import random
import warnings

import pytest
import torch
import transformers

import trnsim
from trnsim.errors import CompileError
from trnsim.models import build_model
from trnsim.runtime.graph_profile import GraphProfile

HIDDEN, HEADS, KV, HEAD_DIM, VOCAB = 256, 8, 4, 32, 512
# ops that multiply by a weight; the experts' combine (aten.sum over experts, a matmul by ones) is not one
_WEIGHT_MATMULS = ("aten.linear.default", "matmul_epilogue.linear_epilogue", "aten._grouped_mm.default")
GROUPED = "aten._grouped_mm.default"
# Llama-4's rotary embedding in complex numbers, which the chip has no type for: on the host in every run
_ROPE_ON_HOST = {"aten.polar.default", "aten.mul.Tensor", "aten.view_as_complex.default", "aten.view_as_real.default"}


def _config(
    inter: int, inter_mlp: int, experts: int, moe_every: int, layers: int, top_k: int = 1
) -> transformers.Llama4TextConfig:
    return transformers.Llama4TextConfig(
        num_experts_per_tok=top_k,
        hidden_size=HIDDEN,
        num_attention_heads=HEADS,
        num_key_value_heads=KV,
        head_dim=HEAD_DIM,
        intermediate_size=inter,
        intermediate_size_mlp=inter_mlp,
        num_local_experts=experts,
        num_hidden_layers=layers,
        vocab_size=VOCAB,
        interleave_moe_layer_step=moe_every,  # 1: every layer MoE (Scout); 2: dense / MoE alternate (Maverick)
    )


def _estimate(net: torch.nn.Module, tokens: int, tp: int) -> GraphProfile:
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the complex rotary embedding and the router's scatter run on the host
        return trnsim.estimate(net, (ids,), target="trn2", tp=tp)


def _weight_flops(config: transformers.Llama4TextConfig, tokens: int, tp: int) -> int:
    """FLOPs of one rank's weight matmuls (2 per multiply-add), heads and widths split as the rank holds them."""
    t, h, d, e, k = tokens, HIDDEN, HEAD_DIM, config.num_local_experts, config.num_experts_per_tok
    q_heads, kv_heads = math.ceil(HEADS / tp), math.ceil(KV / tp)
    attention = 2 * t * h * d * (2 * q_heads + 2 * kv_heads)  # q and o, k and v
    inter, inter_mlp = math.ceil(config.intermediate_size / tp), math.ceil(config.intermediate_size_mlp / tp)
    moe = 2 * t * k * h * 3 * inter + 2 * t * h * 3 * inter + 2 * t * h * e  # routed rows, shared expert, router
    dense = 2 * t * h * 3 * inter_mlp
    moe_layers = len(config.moe_layers)
    ffn = moe_layers * moe + (config.num_hidden_layers - moe_layers) * dense
    return config.num_hidden_layers * attention + ffn + 2 * t * h * math.ceil(VOCAB / tp)


@pytest.mark.parametrize("moe_every", [1, 2])
def test_llama4_tp_estimate_has_one_all_reduce_per_block_and_split_flops(moe_every: int) -> None:
    rng = random.Random()
    tp, top_k = rng.choice([1, 2, 4]), rng.choice([1, 2])
    inter, inter_mlp = rng.choice([96, 160, 192]), rng.choice([320, 384])  # / tp never equals HIDDEN
    # 4 layers: the 4th is a NoPE layer (no rotary, no QK norm), so a folded stack regroups Maverick's dense and
    # MoE layers and renumbers them
    experts, tokens, layers = rng.choice([4, 8]), rng.choice([16, 32, 64]), 4
    config = _config(inter, inter_mlp, experts, moe_every, layers, top_k)
    net = build_model(config, device="meta")
    prof = _estimate(net, tokens, tp)

    reduces = [r for r in prof.records if r.kernel == "all_reduce"]
    moe = [r for r in reduces if r.op == GROUPED]
    others = [r for r in reduces if r.op != GROUPED]  # attention outputs, dense MLP downs
    moe_layers = len(config.moe_layers)
    collectives = tp > 1
    assert sum(r.count for r in moe) == moe_layers * collectives
    # none at the shared expert's down projection
    assert sum(r.count for r in others) == (layers + (layers - moe_layers)) * collectives
    # every all-reduce moves one [tokens, hidden] bf16 activation: the same bytes, so the same time
    for r in reduces:
        dims = [int(x) for x in r.shapes.split(":")[0].strip("[]").split(",")]
        assert math.prod(dims) * 2 == tokens * HIDDEN * 2, r.shapes
    assert len({round(r.device_us, 9) for r in reduces}) == collectives
    gathers = [r for r in prof.records if r.kernel == "all_gather"]
    assert sum(r.count for r in gathers) == collectives

    weights = [r for r in prof.records if r.kind == "kernel" and r.op in _WEIGHT_MATMULS]
    assert sum(r.flops * r.count for r in weights) == _weight_flops(config, tokens, tp)
    grouped = [r for r in weights if r.op == GROUPED]
    local = math.ceil(inter / tp)  # each token through its top-k experts only
    assert sum(r.flops * r.count for r in grouped) == moe_layers * 2 * tokens * top_k * HIDDEN * 3 * local
    assert not [r for r in prof.records if r.op == "aten.bmm.default"]
    assert not prof.host_fallback or {r.op for r in prof.host_fallback} <= _ROPE_ON_HOST


def test_llama4_tp1_flops_are_tp_times_a_ranks() -> None:
    """The split FLOPs against the unsplit model's (widths that tp divides: exactly 1/tp)."""
    config = _config(96, 384, 4, 2, 2)
    net = build_model(config, device="meta")

    def matmul_flops(prof: GraphProfile, *, router: bool) -> int:
        keep = [r for r in prof.records if r.kind == "kernel" and r.op in _WEIGHT_MATMULS]
        # the router's [experts, hidden] weight is the one every rank keeps whole (as its linear's [4, hidden], or
        # laid out K-major, [hidden, 4], for the matmul kernel)
        routers = (f"[4, {HIDDEN}]", f"[{HIDDEN}, 4]")
        return sum(r.flops * r.count for r in keep if router or not any(w in r.shapes for w in routers))

    whole, rank = _estimate(net, 32, 1), _estimate(net, 32, 2)
    router = matmul_flops(rank, router=True) - matmul_flops(rank, router=False)
    assert router == 2 * 32 * HIDDEN * 4 * len(config.moe_layers)
    assert matmul_flops(rank, router=False) * 2 == matmul_flops(whole, router=False)
    assert not [r for r in whole.records if r.kind == "collective"]


def test_llama4_compiled_tp2_matches_eager() -> None:
    """Real weights split over 2 ranks: the logits match the unsplit eager model; each MoE block all-reduces
    the experts' bmm output [experts, tokens, hidden] and the shared expert's [tokens, hidden]."""
    torch.manual_seed(int(torch.randint(0, 2**31, ()).item()))
    config = transformers.Llama4TextConfig(
        hidden_size=64,
        intermediate_size=48,
        intermediate_size_mlp=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=4,
        vocab_size=300,
        interleave_moe_layer_step=2,
        use_cache=False,
    )
    model = transformers.Llama4ForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 3:  # transformers leaves the experts' weights at zero: give them values
                p.normal_(std=0.05)
    ids = torch.randint(0, 300, (1, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the complex rotary embedding and the router's scatter run on the host
        exe = trnsim.compile(model, (ids,), tp=2)
        got = exe(ids).logits
    with torch.no_grad():
        want = model(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    prof = trnsim.last_profile()
    assert prof is not None
    shapes = sorted(r.shapes for r in prof.records if r.kernel == "all_reduce")
    # layer 0 dense (attention + MLP), layer 1 MoE (attention + experts + shared expert)
    assert shapes == sorted(["[1, 8, 64]:float32"] * 3 + ["[4, 8, 64]:float32", "[8, 64]:float32"])


def test_unsupported_family_refusal_lists_the_moe_families() -> None:
    config = transformers.BertConfig(
        hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4, vocab_size=100
    )
    net = build_model(config, device="meta")
    with pytest.raises(CompileError, match=r"mixture-of-experts families .*llama4_text.*not bert"):
        trnsim.estimate(net, (torch.zeros(1, 8, dtype=torch.long, device="meta"),), target="trn2", tp=2)

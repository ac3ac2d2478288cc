"""Mixture-of-experts models through torch.compile(backend="trnsim"): logits against eager PyTorch, with the
router (softmax, topk, sort, histc, cumsum), dispatch / combine (gathers, index_put) and the experts'
grouped matmuls all on the simulated chip, in functional and in timing mode."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

import trnsim
from trnsim.errors import TrnsimWarning

# The kernels a MoE layer's routing and experts must land on (no host fallback for any of them).
MOE_KERNELS = {"topk", "sort_ranks_bounded", "histogram", "cumsum", "gather_rows", "scatter_rows", "grouped_matmul"}
VOCAB = 300


def _tiny(kind: str) -> tuple[torch.nn.Module, int, int, int]:
    """(model, hidden, expert intermediate, experts per token) of a 2-layer random-weight MoE model."""
    common = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB)
    if kind == "mixtral":
        cfg = transformers.MixtralConfig(
            intermediate_size=96, num_local_experts=4, num_experts_per_tok=2, use_cache=False, **common
        )
        return transformers.MixtralForCausalLM(cfg), 64, 96, 2
    if kind == "qwen2_moe":
        cfg = transformers.Qwen2MoeConfig(
            intermediate_size=96,
            moe_intermediate_size=48,
            shared_expert_intermediate_size=80,
            num_experts=4,
            num_experts_per_tok=2,
            use_cache=False,
            **common,
        )
        return transformers.Qwen2MoeForCausalLM(cfg), 64, 48, 2
    if kind == "deepseek_v3":  # MLA attention, sigmoid scores, group-limited top-k, a shared expert
        cfg = transformers.DeepseekV3Config(
            **{**common, "num_key_value_heads": 4},
            intermediate_size=96,
            moe_intermediate_size=32,
            n_routed_experts=8,
            n_shared_experts=1,
            num_experts_per_tok=2,
            n_group=4,
            topk_group=2,
            first_k_dense_replace=1,
            q_lora_rank=32,
            kv_lora_rank=16,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=16,
            use_cache=False,
        )
        return transformers.DeepseekV3ForCausalLM(cfg), 64, 32, 2
    cfg = transformers.Qwen3MoeConfig(
        intermediate_size=96,
        moe_intermediate_size=48,
        head_dim=16,
        num_experts=8,
        num_experts_per_tok=3,
        norm_topk_prob=True,
        use_cache=False,
        **common,
    )
    return transformers.Qwen3MoeForCausalLM(cfg), 64, 48, 3


def _compiled_logits(model: torch.nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    compiled = torch.compile(model, backend="trnsim")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TrnsimWarning)  # any op left on the host fails the test
        ref = model(ids)[0]
        out = compiled(ids)[0]
    return out, ref


@pytest.mark.parametrize("kind", ["mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"])
def test_moe_matches_eager_with_routing_on_the_chip(kind: str) -> None:
    torch.manual_seed(torch.randint(0, 2**31, ()).item())
    model, hidden, inter, top_k = _tiny(kind)
    model.eval()
    batch, seq = 2, 24
    ids = torch.randint(0, VOCAB, (batch, seq))
    out, ref = _compiled_logits(model, ids)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    prof = trnsim.last_profile()
    assert prof is not None and not prof.host_fallback
    kernels = prof.by_kernel()
    assert set(kernels) >= MOE_KERNELS, MOE_KERNELS - set(kernels)
    # the experts' matmuls did exactly the routed work: every token's k slots through gate_up and down
    moe_layers = 1 if kind == "deepseek_v3" else 2  # DeepSeek's first layer is dense
    slots = batch * seq * top_k
    expected = moe_layers * 2 * slots * (hidden * 2 * inter + inter * hidden)  # 2 flops per multiply-add
    assert kernels["grouped_matmul"]["flops"] == expected


def test_mixtral_bf16_uses_torch_grouped_mm_on_the_chip() -> None:
    torch.manual_seed(torch.randint(0, 2**31, ()).item())
    model, *_ = _tiny("mixtral")
    model.eval()
    ids = torch.randint(0, VOCAB, (1, 32))
    with torch.no_grad():
        ref = model(ids)[0]
    model.to(torch.bfloat16)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TrnsimWarning)
        out = torch.compile(model, backend="trnsim")(ids)[0].float()
    # bf16 weights and activations through 2 layers: close in direction and within bf16 tolerance
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.999
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)
    prof = trnsim.last_profile()
    assert prof is not None and not prof.host_fallback and "grouped_matmul" in prof.by_kernel()


def test_moe_estimate_on_meta_tensors_keeps_the_experts_on_the_chip() -> None:
    model, hidden, inter, top_k = _tiny("qwen3_moe")
    with torch.device("meta"):
        meta_model = type(model)(model.config).to(torch.bfloat16).eval()
    tokens = 256
    ids = torch.zeros((1, tokens), dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrnsimWarning)
        prof = trnsim.estimate(meta_model, (ids,))
    assert not prof.host_fallback
    kernels = prof.by_kernel()
    assert set(kernels) >= MOE_KERNELS, MOE_KERNELS - set(kernels)
    expected = 2 * 2 * tokens * top_k * (hidden * 2 * inter + inter * hidden)
    assert kernels["grouped_matmul"]["flops"] == expected
    assert kernels["grouped_matmul"]["device_us"] > 0


@pytest.mark.parametrize("masked", [True, False])
def test_mla_attention_head_dims_lower_against_torch(masked: bool) -> None:
    # DeepSeek-V3's MLA: Q/K heads of 192 (longer than a partition column) and V heads of 128
    from trnsim.compiler.kernel_cache import default_cache
    from trnsim.compiler.lowering.attention import sdpa
    from trnsim.compiler.lowering.context import LowerContext
    from trnsim.hw.presets import get_spec

    ctx = LowerContext(get_spec("trn2"), functional=True, cache=default_cache(), node="n", op="sdpa")
    q, k = torch.randn(2, 1, 4, 20, 192).unbind(0)
    v = torch.randn(1, 4, 20, 128)
    mask = torch.randn(1, 1, 20, 20) if masked else None
    out = sdpa(ctx, q, k, v, mask, is_causal=not masked, scale=0.1)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, mask, is_causal=not masked, scale=0.1)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert {r.kind for r in ctx.records} == {"kernel"}  # on the chip, nothing on the host

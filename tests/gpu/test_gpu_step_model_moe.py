"""The GPU step model on the 2025 mixture-of-experts presets: dense layers and shared experts priced, the matmul
FLOPs equal to a closed form from the published configs (2 x tokens x the weights each token multiplies)."""

from __future__ import annotations

import pytest

from trnsim.gpu import OpTime, gpu_step_ops
from trnsim.models import model_facts

MLP_OPS = ("router", "expert_", "shared_expert_", "mlp_")


def mlp_flops(ops: list[OpTime]) -> float:
    return sum(op.count * op.flops_each for op in ops if op.name.startswith(MLP_OPS))


def test_deepseek_v3_mlp_flops_match_the_config() -> None:
    facts = model_facts("deepseek-v3")
    tokens = 4096  # 4096 x 8 assignments spread evenly over 256 experts: 128 each, no rounding
    h = 7168
    gated = 3 * h  # gate, up and down of one unit of MLP width
    # published config: first_k_dense_replace 3 (dense MLP 18432 wide), then 58 MoE layers with a 256-way router,
    # 8 routed experts of 2048 and 1 shared expert of 2048 per token
    per_token = 3 * gated * 18432 + 58 * (256 * h + 8 * gated * 2048 + 1 * gated * 2048)
    ops = gpu_step_ops(facts, "h100", 1, 1, tokens, 0)
    assert mlp_flops(ops) == pytest.approx(2 * tokens * per_token, rel=1e-12)
    names = {op.name for op in ops}
    assert {"shared_expert_gate+up", "mlp_gate+up", "expert_down"} <= names


@pytest.mark.parametrize("preset", ["llama-4-scout", "llama-4-maverick"])
def test_llama4_matmul_flops_are_twice_the_active_weights(preset: str) -> None:
    """Llama-4 has plain GQA attention, so every matmul weight a token uses is one the step multiplies: the
    step's GEMM FLOPs are 2 x tokens x (active parameters - the embedding table - the norm weights)."""
    facts = model_facts(preset)
    tokens = 2048  # a multiple of the expert count (k = 1): every expert gets the same rows
    ops = gpu_step_ops(facts, "h200", 1, 1, tokens, 0, logits="all")
    h, layers = facts.hidden_size, facts.n_layers
    norms = (2 * layers + 1) * h
    want = 2 * tokens * (facts.active_params - facts.vocab_size * h - norms)
    assert sum(op.count * op.flops_each for op in ops) == pytest.approx(want, rel=1e-12)


def test_maverick_interleaves_dense_and_moe_layers() -> None:
    facts = model_facts("llama-4-maverick")
    ops = {op.name: op for op in gpu_step_ops(facts, "h100", 1, 1, 256, 0)}
    assert ops["router"].count == 24 and ops["mlp_down"].count == 24 and ops["shared_expert_down"].count == 24
    # tensor parallelism splits the dense and shared MLP widths like the experts'
    split = {op.name: op for op in gpu_step_ops(facts, "h100", 8, 1, 256, 0)}
    assert split["mlp_down"].flops_each == pytest.approx(ops["mlp_down"].flops_each / 8)
    assert split["shared_expert_gate+up"].flops_each == pytest.approx(ops["shared_expert_gate+up"].flops_each / 8)

"""Layer folding (compiler/layer_folding.py): an estimate captures one layer of each kind and counts its ops once
per layer of that kind. Checked on tiny random configs against the same model estimated unfolded (every layer
captured): the same device time within float rounding, the same FLOPs, and FLOPs equal to a closed form; with
dense-then-MoE layers (DeepSeek-V3), dense and MoE layers alternating with RoPE-less chunked-attention layers
(Llama-4), and a plain dense stack (Llama)."""

from __future__ import annotations

import random
import warnings
from typing import Any

import pytest
import torch
from transformers import DeepseekV3Config, Llama4TextConfig, LlamaConfig

import trnsim
from trnsim.compiler.layer_folding import folded, repeated_stacks
from trnsim.models import build_model
from trnsim.runtime.graph_profile import GraphProfile

HEADS = 4


def _estimate(net: torch.nn.Module, tokens: int, fold: bool) -> GraphProfile:
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trnsim.estimate(net, (ids,), target="trn2", fold_layers=fold)


def _same_estimate(net: torch.nn.Module, tokens: int) -> GraphProfile:
    """The folded estimate, after checking it against the unfolded one."""
    fold = _estimate(net, tokens, True)
    full = _estimate(net, tokens, False)
    assert fold.device_time_us == pytest.approx(full.device_time_us, rel=1e-9)
    assert fold.flops == full.flops
    assert fold.hbm_bytes == full.hbm_bytes
    assert fold.weight_bytes == full.weight_bytes
    assert len(fold.records) < len(full.records)  # it did fold
    return fold


def _flops(profile: GraphProfile, kernels: tuple[str, ...]) -> int:
    return sum(r.flops * r.count for r in profile.records if r.kernel in kernels)


def test_dense_stack_folds_to_one_layer() -> None:
    rng = random.Random()
    hidden, inter, vocab = rng.choice([128, 192]), rng.choice([160, 256]), rng.choice([256, 384])
    layers, tokens = rng.randint(2, 4), rng.choice([32, 64])
    kv = rng.choice([1, 2, 4])
    config = LlamaConfig(
        hidden_size=hidden,
        num_attention_heads=HEADS,
        num_key_value_heads=kv,
        intermediate_size=inter,
        vocab_size=vocab,
        num_hidden_layers=layers,
    )
    net = build_model(config, device="meta")
    assert [(s.kept, s.counts) for s in repeated_stacks(net)] == [((0,), (layers,))]
    prof = _same_estimate(net, tokens)
    kv_width = kv * hidden // HEADS
    # q, k, v, o projections, gate/up/down, then the LM head; 2 FLOPs per multiply-add
    per_layer = hidden * (2 * hidden + 2 * kv_width) + 3 * hidden * inter
    assert _flops(prof, ("linear", "matmul")) == 2 * tokens * (layers * per_layer + hidden * vocab)


def test_deepseek_dense_then_moe_layers_fold_to_two_kinds() -> None:
    rng = random.Random()
    dense, moe = rng.randint(1, 2), rng.randint(2, 3)
    inter, experts, top_k, tokens = rng.choice([64, 96]), rng.choice([4, 8]), 2, rng.choice([32, 64])
    hidden = 128
    config = DeepseekV3Config(
        hidden_size=hidden,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        vocab_size=256,
        intermediate_size=2 * inter,
        moe_intermediate_size=inter,
        n_routed_experts=experts,
        num_experts_per_tok=top_k,
        n_group=1,
        topk_group=1,
        n_shared_experts=1,
        first_k_dense_replace=dense,
        q_lora_rank=64,
        kv_lora_rank=32,
        qk_nope_head_dim=16,
        qk_rope_head_dim=16,
        v_head_dim=16,
        num_hidden_layers=dense + moe,
    )
    net = build_model(config, device="meta")
    assert [(s.kept, s.counts) for s in repeated_stacks(net)] == [((0, dense), (dense, moe))]
    prof = _same_estimate(net, tokens)
    # routed experts: tokens x top-k rows through gate/up (2 x inter wide) and down, in every MoE layer
    assert _flops(prof, ("grouped_matmul",)) == 2 * tokens * top_k * 3 * hidden * inter * moe
    # the router sees every expert: one score per (token, expert) in each MoE layer
    assert _flops(prof, ("linear", "matmul")) > 0
    routers = [r for r in prof.records if f", [{experts}, {hidden}]" in r.shapes and r.kernel in ("linear", "matmul")]
    assert sum(r.count for r in routers) == moe


def test_llama4_kinds_keep_their_attention_types() -> None:
    """Dense and MoE layers alternate and every fourth layer has no RoPE and full (not chunked) attention: three
    or four kinds, each with the attention mask of its own layer type (config.layer_types cut to match)."""
    rng = random.Random()
    layers, tokens, chunk = rng.randint(4, 6), 32, rng.choice([8, 16])
    no_rope = [0 if (i + 1) % 4 == 0 else 1 for i in range(layers)]
    config = Llama4TextConfig(
        hidden_size=128,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        head_dim=32,
        intermediate_size=rng.choice([64, 96]),
        intermediate_size_mlp=rng.choice([128, 192]),
        num_local_experts=4,
        num_hidden_layers=layers,
        interleave_moe_layer_step=2,
        no_rope_layers=no_rope,
        attention_chunk_size=chunk,
        vocab_size=256,
    )
    net = build_model(config, device="meta")
    (stack,) = repeated_stacks(net)
    assert sum(stack.counts) == layers and len(stack.kept) >= 3
    types = list(config.layer_types)
    _same_estimate(net, tokens)
    assert list(config.layer_types) == types


class _Expert(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(8, 16)


class _Layer(torch.nn.Module):
    def __init__(self, moe: bool) -> None:
        super().__init__()
        self.mlp = torch.nn.Linear(8, 8)
        if moe:
            self.experts = torch.nn.ModuleList(_Expert() for _ in range(4))


def test_expert_lists_and_mixed_lists_outside_the_layer_stack_stay_whole() -> None:
    class Config:
        num_hidden_layers = 3

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config: Any = Config()
            self.layers = torch.nn.ModuleList([_Layer(False), _Layer(True), _Layer(True)])
            self.heads = torch.nn.ModuleList([_Layer(False), _Layer(True), _Layer(True), _Layer(True)])
            self.experts = torch.nn.ModuleList(_Expert() for _ in range(4))

    net = Net()
    # the layer stack folds by kind; the 4-long mixed list matches no layer count; expert lists never fold
    assert [(s.name, s.kept, s.counts) for s in repeated_stacks(net)] == [("layers", (0, 1), (1, 2))]
    with folded(net) as paths:
        assert paths == {"layers.0": 1, "layers.1": 2}
        assert len(net.layers) == 2 and len(net.layers[1].experts) == 4 and len(net.heads) == 4
    assert len(net.layers) == 3


def test_folding_restores_the_model_and_config_on_error() -> None:
    config = LlamaConfig(
        hidden_size=64, num_attention_heads=HEADS, intermediate_size=96, vocab_size=128, num_hidden_layers=3
    )
    config.layer_types = ["full_attention"] * 3
    net = build_model(config, device="meta")
    layers = list(net.model.layers)
    with pytest.raises(RuntimeError, match="inside"), folded(net):
        assert len(net.model.layers) == 1
        raise RuntimeError("inside")
    assert list(net.model.layers) == layers and net.config.layer_types == ["full_attention"] * 3

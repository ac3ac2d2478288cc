"""Decode-step estimates: time grows with batch and context as the bytes a decode step reads (weights + KV cache)
over the rank's HBM bandwidth, and bad arguments are clear errors."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from transformers import LlamaConfig

import trnsim
from trnsim.errors import CompileError
from trnsim.hw.presets import get_spec
from trnsim.models import build_model

# Llama-3-8B's layer shapes (big enough that a decode step is bound by its bytes, not fixed kernel costs)
LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB = 2, 4096, 32, 8, 128, 14336, 8192
POINTS = [(1, 256), (1, 4096), (4, 4096)]  # (batch, context)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    config = LlamaConfig(
        hidden_size=HIDDEN,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        intermediate_size=FFN,
        vocab_size=VOCAB,
        num_hidden_layers=LAYERS,
        tie_word_embeddings=False,
    )
    return build_model(config, device="meta")


@pytest.fixture(scope="module")
def profiles(net: torch.nn.Module) -> dict[tuple[int, int], trnsim.GraphProfile]:
    return {p: _decode(net, *p) for p in POINTS}


def _decode(net: torch.nn.Module, batch: int, context: int) -> trnsim.GraphProfile:
    ids = torch.zeros(batch, 1, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trnsim.estimate(net, (ids,), target="trn2", decode=True, context=context)


def _roofline_bytes(net: torch.nn.Module, batch: int, context: int) -> int:
    """Closed form: every weight but the embedding table read once (the embedding only for the batch's rows),
    plus each layer's K and V cache."""
    embedding = VOCAB * HIDDEN * 2
    weights = sum(p.numel() * p.element_size() for p in net.parameters()) - embedding + batch * HIDDEN * 2
    return weights + LAYERS * 2 * batch * KV_HEADS * context * HEAD_DIM * 2


def _hbm_us(nbytes: float) -> float:
    """Time to stream `nbytes` at one rank's share of trn2's HBM bandwidth."""
    spec = get_spec("trn2")
    ranks = spec.chip.physical_cores // spec.chip.default_lnc
    return nbytes / (spec.chip.hbm_bytes_per_ns / ranks) / 1e3


def _roofline_us(net: torch.nn.Module, batch: int, context: int) -> float:
    return _hbm_us(_roofline_bytes(net, batch, context))


def test_decode_step_follows_the_bytes_it_reads(
    net: torch.nn.Module, profiles: dict[tuple[int, int], trnsim.GraphProfile]
) -> None:
    times = {p: prof.device_time_us for p, prof in profiles.items()}
    for p in POINTS:
        roof = _roofline_us(net, *p)
        # never faster than the bandwidth bound; fixed per-kernel costs and DMA efficiency keep it within 1.6x
        assert roof <= times[p] <= 1.6 * roof, (p, times[p], roof)
    # a longer cache adds the extra KV bytes' roofline time
    (_, c0), (b1, c1) = POINTS[0], POINTS[1]
    extra = _roofline_us(net, b1, c1) - _roofline_us(net, b1, c0)
    assert extra * 0.8 <= times[POINTS[1]] - times[POINTS[0]] <= extra * 1.6
    # a bigger batch: the step takes longer, its attention by about the extra KV bytes' roofline time (the
    # rest, the weight matmuls, reads the same weights for 1 or 4 tokens)
    assert times[POINTS[2]] > times[POINTS[1]]
    kv_extra = 2 * LAYERS * (POINTS[2][0] - POINTS[1][0]) * KV_HEADS * POINTS[2][1] * HEAD_DIM * 2
    kv_extra_us = _hbm_us(kv_extra)
    att = {p: _attention_us(profiles[p]) for p in POINTS[1:]}
    assert kv_extra_us * 0.8 <= att[POINTS[2]] - att[POINTS[1]] <= kv_extra_us * 1.6, (att, kv_extra_us)


def test_decode_estimate_agrees_with_the_serving_step_cost(
    net: torch.nn.Module, profiles: dict[tuple[int, int], trnsim.GraphProfile]
) -> None:
    """The serving simulator's step (batch new tokens over context, less its host overhead) is the same step."""
    from trnsim.serve.step_components import StepComponents

    parts = StepComponents(net.config, "trn2", 1, None, "bfloat16")  # type: ignore[arg-type]
    step_us = (parts.step_time_s(4, 4, 4096) - parts.overhead_s) * 1e6
    # serving computes logits of one token in its dense graph and adds the rest's LM head as a separate kernel
    assert profiles[(4, 4096)].device_time_us == pytest.approx(step_us, rel=0.02)


def _attention_us(prof: trnsim.GraphProfile) -> float:
    return sum(r.total_device_us for r in prof.records if r.kernel == "decode_attention")


def test_decode_profile_holds_the_kv_cache_and_one_attention_per_layer(
    net: torch.nn.Module, profiles: dict[tuple[int, int], trnsim.GraphProfile]
) -> None:
    prof = profiles[(4, 4096)]
    attention = [r for r in prof.records if r.op == "aten.scaled_dot_product_attention.default"]
    assert len(attention) == 1 and attention[0].kernel == "decode_attention" and attention[0].count == LAYERS
    kv = LAYERS * 2 * 4 * KV_HEADS * 4096 * HEAD_DIM * 2
    params = sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])
    assert prof.weight_bytes == params + kv
    assert attention[0].hbm_bytes * attention[0].count == kv


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((2, 3), {"decode": True, "context": 64}, r"\[batch, 1\]"),
        ((2, 1), {"decode": True}, "needs context"),
        ((2, 1), {"context": 64}, "pass decode=True"),
        ((2, 1), {"decode": True, "context": 0}, "context >= 1"),
        ((2, 1), {"decode": True, "context": 64, "training": True}, "training"),
    ],
)
def test_bad_decode_arguments_are_clear_errors(
    net: torch.nn.Module, shape: tuple[int, int], kwargs: dict[str, Any], match: str
) -> None:
    ids = torch.zeros(*shape, dtype=torch.long, device="meta")
    with pytest.raises(CompileError, match=match):
        trnsim.estimate(net, (ids,), target="trn2", **kwargs)


def test_gpu_decode_step_reads_the_kv_cache_at_hbm_speed(net: torch.nn.Module) -> None:
    from trnsim.gpu.presets import get_gpu_spec

    bw = get_gpu_spec("h100").memory.hbm_tb_per_s * 1e12
    ids = torch.zeros(4, 1, dtype=torch.long, device="meta")
    att = {}
    for context in (1024, 16384):
        prof = trnsim.estimate(net, (ids,), target="h100", decode=True, context=context)
        (rec,) = [r for r in prof.records if r.kernel == "gpu_decode_attention"]
        att[context] = rec.total_device_us
    kv_extra_us = LAYERS * 2 * 4 * KV_HEADS * (16384 - 1024) * HEAD_DIM * 2 / bw * 1e6
    # the GPU model's attention is bound by the KV bytes at long context: no faster than HBM, within 1.6x of it
    assert kv_extra_us <= att[16384] - att[1024] <= 1.6 * kv_extra_us, (att, kv_extra_us)

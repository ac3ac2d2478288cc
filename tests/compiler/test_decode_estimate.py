"""Decode-step estimates: time grows with batch and context as the bytes a decode step reads (weights + KV cache)
over the rank's HBM bandwidth, and bad arguments are clear errors."""

from __future__ import annotations

import itertools
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


def _roofline_us(net: torch.nn.Module, batch: int, context: int) -> float:
    """Closed form: every weight but the embedding table read once (the embedding only for the batch's rows),
    plus each layer's K and V cache, over one rank's share of the chip's HBM bandwidth."""
    spec = get_spec("trn2")
    embedding = VOCAB * HIDDEN * 2
    weights = sum(p.numel() * p.element_size() for p in net.parameters()) - embedding + batch * HIDDEN * 2
    kv = LAYERS * 2 * batch * KV_HEADS * context * HEAD_DIM * 2
    ranks = spec.chip.physical_cores // spec.chip.default_lnc
    return (weights + kv) / (spec.chip.hbm_bytes_per_ns / ranks) / 1e3


def test_decode_step_follows_the_bytes_it_reads(
    net: torch.nn.Module, profiles: dict[tuple[int, int], trnsim.GraphProfile]
) -> None:
    times = {p: prof.device_time_us for p, prof in profiles.items()}
    for p in POINTS:
        roof = _roofline_us(net, *p)
        # never faster than the bandwidth bound; fixed per-kernel costs and DMA efficiency keep it within 1.6x
        assert roof <= times[p] <= 1.6 * roof, (p, times[p], roof)
    # a longer cache and a bigger batch each add about the extra KV (and embedding-row) bytes' roofline time
    for a, b in itertools.pairwise(POINTS):
        extra = _roofline_us(net, *b) - _roofline_us(net, *a)
        assert extra * 0.8 <= times[b] - times[a] <= extra * 1.6, (a, b, times[a], times[b], extra)


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


def test_decode_on_a_gpu_target_is_refused(net: torch.nn.Module) -> None:
    ids = torch.zeros(2, 1, dtype=torch.long, device="meta")
    with pytest.raises(CompileError, match="Trainium-class"):
        trnsim.estimate(net, (ids,), target="h100", decode=True, context=64)

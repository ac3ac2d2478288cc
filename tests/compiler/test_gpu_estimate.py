"""trnsim.estimate(target="h100"): the captured graph priced op by op on the GPU model, checked against a
closed-form sum over the model's GEMMs; and estimate() with a modified HardwareSpec object as its target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import trnsim
from trnsim.compiler.gpu_estimate import GpuGraphProfile, capture_rank_graph, price_rank_graph
from trnsim.errors import TrnsimError
from trnsim.gpu import GpuModel
from trnsim.hw.presets import get_spec
from trnsim.models import build_model


def _config(rng: np.random.Generator):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig

    heads = int(rng.choice([4, 8]))
    head_dim = int(rng.choice([32, 64]))
    return LlamaConfig(
        hidden_size=heads * head_dim,
        intermediate_size=int(rng.integers(2, 6)) * 128,
        num_hidden_layers=int(rng.integers(2, 4)),
        num_attention_heads=heads,
        num_key_value_heads=heads // 2,
        vocab_size=int(rng.integers(500, 2000)),
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )


def test_gpu_estimate_gemms_match_a_closed_form_sum() -> None:
    rng = np.random.default_rng()
    cfg = _config(rng)
    batch, seq = int(rng.integers(1, 4)), int(rng.integers(16, 200))
    net = build_model(cfg, device="meta")
    prof = trnsim.estimate(net, (torch.zeros(batch, seq, dtype=torch.long, device="meta"),), target="h100")
    assert isinstance(prof, GpuGraphProfile) and prof.target == "h100"

    gpu = GpuModel.from_preset("h100")
    t = batch * seq
    h, d = cfg.hidden_size, cfg.hidden_size // cfg.num_attention_heads
    q_out, kv_out, inter = cfg.num_attention_heads * d, cfg.num_key_value_heads * d, cfg.intermediate_size
    per_layer = [(t, q_out, h), (t, kv_out, h), (t, kv_out, h), (t, h, q_out), (t, inter, h), (t, inter, h)]
    per_layer.append((t, h, inter))
    shapes = per_layer * cfg.num_hidden_layers + [(t, cfg.vocab_size, h)]
    want_s = sum(gpu.gemm_time_s(m, n, k, "bfloat16", isolated=False) for m, n, k in shapes)
    want_flops = sum(2 * m * n * k for m, n, k in shapes)
    gemms = [r for r in prof.records if r.kernel == "gpu_gemm"]
    assert sum(r.count for r in gemms) == len(shapes)
    assert sum(r.total_device_us for r in gemms) * 1e-6 == pytest.approx(want_s, rel=1e-9)
    assert sum(r.flops * r.count for r in gemms) == want_flops
    # no GEMM beats the tensor-core peak
    peak = gpu.peak_flops("bfloat16")
    assert all(r.device_us * 1e-6 >= r.flops / peak for r in gemms)
    attention = [r for r in prof.records if r.op == "aten.scaled_dot_product_attention.default"]
    assert sum(r.count for r in attention) == cfg.num_hidden_layers
    assert prof.device_time_us > sum(r.total_device_us for r in gemms)
    assert 0 < prof.mfu < 1
    assert prof.flops >= want_flops
    out = prof.to_dict()  # everything a GraphProfile reports works without a Trainium spec
    assert out["hbm_capacity_bytes"] == 80 * 2**30 and out["device_time_us"] == prof.device_time_us
    assert prof.summary() is not None


def test_h200_decodes_faster_than_h100() -> None:
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,
        vocab_size=4096,
        tie_word_embeddings=False,
    )
    net = build_model(cfg, device="meta")
    ids = (torch.zeros(8, 1, dtype=torch.long, device="meta"),)
    h100 = trnsim.estimate(net, ids, target="h100")
    # the same captured graph priced on the H200
    h200 = price_rank_graph(capture_rank_graph(net, ids), "h200")
    assert h200.target == "h200" and isinstance(h200, GpuGraphProfile)
    assert h200.device_time_us < h100.device_time_us
    # same graph, same FLOPs and bytes on both
    assert h200.flops == h100.flops and h200.hbm_bytes == h100.hbm_bytes


def test_gpu_tp_adds_all_reduces_and_checks_the_instance() -> None:
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        hidden_size=256, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4
    )
    net = build_model(cfg, device="meta")
    ids = (torch.zeros(1, 32, dtype=torch.long, device="meta"),)
    prof = trnsim.estimate(net, ids, target="h100", tp=2)
    reduces = [r for r in prof.records if r.kernel == "all_reduce"]
    assert sum(r.count for r in reduces) == 2 * cfg.num_hidden_layers  # attention output and MLP down
    want = GpuModel.from_preset("h100").allreduce_time_s(32 * 256 * 2, 2)
    assert all(math.isclose(r.device_us * 1e-6, want, rel_tol=1e-12) for r in reduces)
    with pytest.raises(TrnsimError, match="tp=16"):
        trnsim.estimate(net, ids, target="h100", tp=16)


def test_a_modified_hardware_spec_is_a_target() -> None:
    net = torch.nn.Linear(512, 1024, dtype=torch.bfloat16, device="meta")
    x = (torch.zeros(256, 512, dtype=torch.bfloat16, device="meta"),)
    base = get_spec("trn2")
    dma = base.core.dma.model_copy(update={"queue_bytes_per_ns": base.core.dma.queue_bytes_per_ns / 4})
    slow = base.model_copy(update={"core": base.core.model_copy(update={"dma": dma})})
    fast_prof = trnsim.estimate(net, x, target=base)
    slow_prof = trnsim.estimate(net, x, target=slow)
    # the modified spec must not reuse the preset's cached kernel costs
    assert slow_prof.cache_misses >= 1
    assert slow_prof.device_time_us > fast_prof.device_time_us
    assert trnsim.estimate(net, x, target="trn2").device_time_us == pytest.approx(fast_prof.device_time_us)

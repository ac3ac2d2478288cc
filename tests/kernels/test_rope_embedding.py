"""rope against the Hugging Face Llama formula (fp32, bf16 op for op in torch), embedding against numpy
indexing; ragged shapes, errors, and the memory-bound floors in timing mode."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

import trnsim.nki as nki
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.hw.presets import load_preset
from trnsim.kernels.embedding import embedding, runs
from trnsim.kernels.rope import rope
from trnsim.nki import TensorSpec

BF16 = ml_dtypes.bfloat16


def llama_tables(s: int, d: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [S, D] as transformers' LlamaRotaryEmbedding builds them (base 10000)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    freqs = torch.outer(torch.arange(s, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().numpy().astype(dtype), emb.sin().numpy().astype(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' apply_rotary_pos_emb for one tensor."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def to_torch(x: np.ndarray) -> torch.Tensor:
    if x.dtype == BF16:
        return torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(x)


@pytest.mark.parametrize("shape", [(1, 2, 200, 64), (2, 3, 2048 + 77, 128), (1, 1, 5, 32)])
def test_rope_fp32(rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    cos, sin = llama_tables(shape[2], shape[3], np.float32)
    out = nki.simulate(rope)(x, cos, sin)
    ref = apply_rotary(*(torch.from_numpy(a) for a in (x, cos, sin))).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_rope_bf16_matches_torch_bf16(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 4, 300, 128)).astype(BF16)
    cos, sin = llama_tables(300, 128, BF16)
    out = nki.simulate(rope)(x, cos, sin)
    assert out.dtype == BF16
    ref = apply_rotary(*(to_torch(a) for a in (x, cos, sin))).float().numpy()  # rounded to bf16 op by op
    np.testing.assert_allclose(out.astype(np.float32), ref, rtol=1e-2, atol=1e-2)


def test_rope_errors() -> None:
    run = nki.profile(rope, mode="timing")
    with pytest.raises(ShapeMismatchError, match="even"):
        run(TensorSpec((1, 1, 8, 5)), TensorSpec((8, 5)), TensorSpec((8, 5)))
    with pytest.raises(ShapeMismatchError, match=r"\[S, D\]"):
        run(TensorSpec((1, 1, 8, 64)), TensorSpec((9, 64)), TensorSpec((8, 64)))


def test_rope_timing_floor() -> None:
    """x streams through at the DMA rate: >= 80% of the HBM roofline (bench: ~92% at 32 heads x 4096)."""
    x, t = TensorSpec((1, 8, 4096, 128), "bfloat16"), TensorSpec((4096, 128), "bfloat16")
    prof = nki.profile(rope, target="trn2", mode="timing", cores=1)(x, t, t)
    roofline_us = prof.hbm_bytes / (16 * 23.0) / 1000
    assert roofline_us / prof.latency_us > 0.8


def test_runs() -> None:
    assert runs([5, 6, 7, 2, 3, 9]) == [(0, 5, 3), (3, 2, 2), (5, 9, 1)]
    assert runs([]) == []


@pytest.mark.parametrize("dtype", [np.float32, BF16, ml_dtypes.float8_e4m3])
def test_embedding(rng: np.random.Generator, dtype: Any) -> None:
    table = rng.standard_normal((1000, 64)).astype(np.float32).astype(dtype)
    ids = rng.integers(0, 1000, size=(3, 17)).astype(np.int32)
    ids[1, 2:9] = np.arange(500, 507)  # a run: one DMA
    out = nki.simulate(embedding)(ids, table)
    assert out.shape == (3, 17, 64) and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out.view(np.uint8), table[ids].view(np.uint8))


def test_embedding_list_ids_timing() -> None:
    """Ids as a list work in timing mode; one row per DMA (one queue each) runs at the transfer rate: 16 queues,
    each transfer holding its queue max(per-transfer overhead, data time) (issue 11)."""
    ids = list(np.random.default_rng(0).integers(0, 32000, 512))
    prof = nki.profile(embedding, target="trn2", mode="timing", cores=1)(ids, TensorSpec((32000, 4096), "bfloat16"))
    assert prof.outputs.shape == (512, 4096)
    dma = load_preset("trn2").core.dma
    row = 4096 * 2
    data_ns = row / (dma.queue_bytes_per_ns * row / (row + dma.descriptor_overhead_bytes))
    rate_bound_us = 512 / dma.queues * max(dma.transfer_overhead_ns, data_ns) / 1000
    assert rate_bound_us <= prof.latency_us < 1.2 * rate_bound_us


def test_embedding_errors() -> None:
    table = np.zeros((10, 4), np.float32)
    with pytest.raises(ShapeMismatchError, match=r"0\.\.9"):
        nki.simulate(embedding)(np.array([1, 10], np.int32), table)
    with pytest.raises(UsageError, match="Python list"):
        nki.profile(embedding, mode="timing")(np.array([1, 2], np.int32), TensorSpec((10, 4)))
    with pytest.raises(DtypeError, match="integers"):
        nki.simulate(embedding)(np.array([1.0, 2.0], np.float32), table)

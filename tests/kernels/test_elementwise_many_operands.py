"""fused_chain with many wide streamed operands: the blocks shorten their DMA runs so that the block in use and
the one loading ahead fit in SBUF (8 fp32 tensors of DeepSeek-V3's 7,168 columns overflowed SBUF before), values
against numpy, and the run length against its closed form."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.kernels._stream as stream
import trnsim.nki as nki
from trnsim.hw import load_preset
from trnsim.kernels.elementwise import fused_chain
from trnsim.nki import TensorSpec


def _sum_chain(x0, *rest):
    return fused_chain(x0, [("add", r) for r in rest] + [("multiply", 0.5)])


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_many_wide_operands_fit_and_match_numpy(rng: np.random.Generator, target: str) -> None:
    n_ops = int(rng.integers(8, 13))
    rows, cols = int(rng.integers(130, 300)), int(rng.integers(6000, 8000))
    xs = [rng.standard_normal((rows, cols)).astype(np.float32) for _ in range(n_ops)]
    out = nki.simulate(_sum_chain, target=target)(*xs)
    ref = np.sum(np.stack(xs), axis=0, dtype=np.float64) * 0.5
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * n_ops)


@pytest.mark.parametrize("target", ["trn1", "trn2", "trn3"])
def test_run_length_closed_form(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    sbuf = int(load_preset(target).core.sbuf.partition_bytes)
    monkeypatch.setattr(stream, "sbuf_bytes_per_partition", lambda: sbuf)  # outside a kernel: the preset's SBUF
    for _ in range(50):
        widest = int(rng.choice([2, 4]))
        per_elem = widest * int(rng.integers(1, 20)) + int(rng.integers(0, 5))
        reserved = int(rng.integers(0, 8192))
        run = stream.block_run_bytes(widest, per_elem, reserved)
        budget = int(sbuf * stream.SBUF_SHARE) - reserved
        assert run % widest == 0 and widest <= run <= stream.DMA_RUN_BYTES
        fits = 2 * (run // widest) * per_elem <= budget  # the block in use and the next one
        longer_fits = 2 * (run // widest + 1) * per_elem <= budget
        assert fits or run == widest
        assert run == stream.DMA_RUN_BYTES or not longer_fits


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_time_per_byte_holds_as_operands_grow(rng: np.random.Generator, target: str) -> None:
    """A memory-bound chain moves (operands + 2) tensors; its time per tensor moved stays within 1.5x of a
    one-operand chain's as operands are added (before the runs shortened, 3-5 wide operands lost the load
    ahead and took ~2x per tensor)."""
    shape = (int(rng.integers(16, 33)) * 128, 4096)
    dtype = str(rng.choice(["float32", "bfloat16"]))
    per_tensor = []
    for n_ops in (1, 3, 5):
        specs = [TensorSpec(shape, dtype) for _ in range(n_ops + 1)]
        prof = nki.profile(_sum_chain, target=target, mode="timing")(*specs)
        per_tensor.append(prof.latency_us / (n_ops + 2))
    assert all(p < 1.5 * per_tensor[0] for p in per_tensor[1:]), per_tensor

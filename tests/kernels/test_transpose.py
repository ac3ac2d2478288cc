"""trnsim.kernels transpose against numpy: ragged 2-D and batched shapes, several panels, dtypes, errors,
and the DMA roofline in timing mode."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
from trnsim.errors import DtypeError, ShapeMismatchError
from trnsim.kernels.transpose import transpose
from trnsim.nki import TensorSpec

BF16 = ml_dtypes.bfloat16


@pytest.mark.parametrize(
    "shape",
    # (129, 1025), (100, 700), (2, 60, 1000): short output rows, so stores group several 128-row blocks per DMA
    [(300, 70), (129, 1025), (1, 1), (2000, 3), (3, 257, 130), (2, 1100, 64), (100, 700), (2, 60, 1000)],
)
@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_transpose_is_exact(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> None:
    x = rng.standard_normal(shape).astype(dtype)
    out = nki.simulate(transpose)(x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, np.swapaxes(x, -1, -2))


def test_transpose_trn1_fp8(rng: np.random.Generator) -> None:
    x = rng.standard_normal((200, 300)).astype(ml_dtypes.float8_e4m3)
    np.testing.assert_array_equal(nki.simulate(transpose, target="trn1")(x), x.T)


def test_errors() -> None:
    with pytest.raises(ShapeMismatchError, match=r"2-D \[M, N\] or 3-D"):
        nki.simulate(transpose)(np.ones((4,), np.float32))
    with pytest.raises(DtypeError, match="supported dtypes"):
        nki.simulate(transpose)(np.ones((4, 4), np.int32))


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_memory_bound(target: str) -> None:
    """8 MiB in and out: TensorE transposes keep up with the DMAs (>= 90% of the roofline; measured 0.92 on both
    with the per-transfer DMA overhead of issue 11, the stores grouped so each DMA piece is data-bound)."""
    core = nki.get_target_spec(target).core
    roofline_us = 2 * 8 * 2**20 / (core.dma.queues * core.dma.queue_bytes_per_ns) / 1000
    prof = nki.profile(transpose, target=target, mode="timing", cores=1)(TensorSpec((4, 512, 1024), "float32"))
    assert roofline_us / prof.latency_us >= 0.9, (prof.latency_us, roofline_us)

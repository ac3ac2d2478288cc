"""dtypes.to_float32 against ml_dtypes' own cast (`astype(np.float32)`): every bfloat16 code bit for bit (NaNs and
infinities included), strided views of fresh random tiles, and the other dtypes unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim import dtypes


def test_every_bfloat16_code_bit_for_bit() -> None:
    codes = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtypes.bfloat16)
    np.testing.assert_array_equal(dtypes.to_float32(codes).view(np.uint32), codes.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("dtype", [dtypes.bfloat16, dtypes.float16, dtypes.float8_e4m3fn, dtypes.int32, dtypes.uint8])
def test_random_strided_tiles(rng: np.random.Generator, dtype: np.dtype) -> None:
    p, f = int(rng.integers(1, 129)), int(rng.integers(2, 600))
    tile = (rng.standard_normal((p, f, 3)) * 50).astype(dtype)
    view = tile[:, 1::2, ::-1]
    got = dtypes.to_float32(view)
    want = view.astype(np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))

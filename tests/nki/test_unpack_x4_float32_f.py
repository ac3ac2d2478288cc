"""dtypes.unpack_x4_float32 (table lookup) against ml_dtypes' own conversion, unpack_x4(...).astype(float32), on
fresh random packed words of every x4 type: the same bits (NaN codes included), and the same error."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim import dtypes
from trnsim.errors import DtypeError


@pytest.mark.parametrize("packed", list(dtypes.PACKED_X4), ids=dtypes.name)
def test_same_bits_as_ml_dtypes_conversion(rng: np.random.Generator, packed: np.dtype) -> None:
    bits = 8 * packed.itemsize
    shape = (int(rng.integers(1, 129)), int(rng.integers(1, 300)))
    words = rng.integers(0, 2**bits, size=shape, dtype=np.uint64).astype(f"<u{packed.itemsize}")
    for raw in (words.view(packed), words, words.view(packed)[:, ::2]):  # packed dtype, raw integers, a strided view
        got = dtypes.unpack_x4_float32(raw, packed)
        want = dtypes.unpack_x4(raw, packed).astype(np.float32)
        assert got.dtype == np.float32 and got.shape == want.shape == (raw.shape[0], raw.shape[1] * 4)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_refuses_unpacked_dtypes() -> None:
    with pytest.raises(DtypeError, match="packed x4 dtype"):
        dtypes.unpack_x4_float32(np.zeros((2, 2), np.uint32), np.float32)

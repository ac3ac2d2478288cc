"""The fp8 x4 packed types on the host: a cast to float32 copies the bits, and kernels move them untouched.

nki-library's tests (test_mxfp_load) compare a kernel's float8_e4m3fn_x4 output with the packed words viewed as
float32, after casting the output with `np.asarray(out, dtype=golden.dtype)`; trnsim's x4 types hold their 32
bits in a float32 field so that cast is a bit copy. Checked against packing done here with numpy byte shifts.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.errors import DtypeError

FP8_X4 = [(dtypes.float8_e4m3fn_x4, ml_dtypes.float8_e4m3fn), (dtypes.float8_e5m2_x4, ml_dtypes.float8_e5m2)]


def _pack_by_shifts(values: np.ndarray, element: type) -> np.ndarray:
    """Four fp8 values per little-endian uint32, element 0 in the lowest byte (NKI's x4 layout)."""
    b = values.astype(element).view(np.uint8).astype(np.uint32).reshape(*values.shape[:-1], -1, 4)
    return b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16) | (b[..., 3] << 24)


@pytest.mark.parametrize(("packed", "element"), FP8_X4, ids=["e4m3fn", "e5m2"])
def test_casting_a_packed_array_to_float32_copies_its_bits(
    rng: np.random.Generator, packed: np.dtype, element: type
) -> None:
    values = (rng.standard_normal((16, 64)) * 8).astype(np.float32)
    x4 = dtypes.pack_x4(values, packed)
    want = _pack_by_shifts(values, element)
    np.testing.assert_array_equal(np.asarray(x4, dtype=np.float32).view(np.uint32), want)
    np.testing.assert_array_equal(dtypes.unpack_x4(x4, packed), values.astype(element))
    assert dtypes.name(packed) == packed.names[0] and dtypes.is_packed(packed) and not dtypes.is_float(packed)


@nki.jit
def copy_packed(words):
    """HBM -> SBUF -> (VectorE copy) -> SBUF -> HBM of a float8_e4m3fn_x4 tensor."""
    p, f = words.shape
    a = nl.ndarray((p, f), dtype=nl.float8_e4m3fn_x4, buffer=nl.sbuf)
    b = nl.ndarray((p, f), dtype=nl.float8_e4m3fn_x4, buffer=nl.sbuf)
    nisa.dma_copy(dst=a, src=words)
    nisa.tensor_copy(dst=b, src=a)
    out = nl.ndarray((p, f), dtype=nl.float8_e4m3fn_x4, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=b)
    return out


def test_a_kernel_moves_packed_words_bit_for_bit(rng: np.random.Generator) -> None:
    """Words above 2**24 too: a uint32 field read as float32 by the copy would round them."""
    values = (rng.standard_normal((128, 32 * 4)) * 4).astype(np.float32)
    words = _pack_by_shifts(values, ml_dtypes.float8_e4m3fn)
    assert words.max() > 2**24
    out = nki.simulate(copy_packed, target="trn3")(words.view(dtypes.float8_e4m3fn_x4))
    np.testing.assert_array_equal(np.asarray(out, dtype=np.float32).view(np.uint32), words)


def test_packing_a_ragged_last_dim_is_refused() -> None:
    with pytest.raises(DtypeError, match="multiple of 4"):
        dtypes.pack_x4(np.zeros((4, 6), np.float32), dtypes.float8_e4m3fn_x4)

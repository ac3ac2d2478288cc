"""The NKI 0.6 dtypes: float8_e8m0fnu, the 4-packed MX types and their packing, tfloat32; checked against
ml_dtypes' own rounding and a bit-by-bit packing written out in numpy here.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from trnsim import dtypes
from trnsim.errors import DtypeError

PACKED = [
    (dtypes.float8_e4m3fn_x4, ml_dtypes.float8_e4m3fn, 4),
    (dtypes.float8_e5m2_x4, ml_dtypes.float8_e5m2, 4),
    (dtypes.float4_e2m1fn_x4, ml_dtypes.float4_e2m1fn, 2),
]


def reference_pack(values: np.ndarray, value_type: type, itemsize: int) -> np.ndarray:
    """Four values per element, value 0 in the lowest bits (NKI docs; nki-samples' mx_cpu_utils layout)."""
    codes = values.astype(value_type).view(np.uint8).astype(np.uint64)
    bits = 8 if itemsize == 4 else 4
    groups = codes.reshape(*values.shape[:-1], -1, 4) & ((1 << bits) - 1)
    word = sum(groups[..., i] << (bits * i) for i in range(4))
    return word.astype(np.uint32 if itemsize == 4 else np.uint16)


@pytest.mark.parametrize(("packed", "value_type", "itemsize"), PACKED)
def test_pack_and_unpack_match_the_documented_bit_layout(
    rng: np.random.Generator, packed: np.dtype, value_type: type, itemsize: int
) -> None:
    values = (rng.standard_normal((int(rng.integers(1, 9)), 4 * int(rng.integers(1, 9)))) * 3).astype(np.float32)
    got = dtypes.pack_x4(values, packed)
    assert got.dtype == packed and got.dtype.itemsize == itemsize
    want = reference_pack(values, value_type, itemsize)
    np.testing.assert_array_equal(got.view(want.dtype), want)
    back = dtypes.unpack_x4(got, packed).astype(np.float32)
    np.testing.assert_array_equal(back, values.astype(value_type).astype(np.float32))
    # the raw unsigned bits unpack the same way (what NxD passes as MX weights)
    np.testing.assert_array_equal(dtypes.unpack_x4(want, packed).astype(np.float32), back)


def test_packed_types_are_distinct_from_the_integers_of_their_size() -> None:
    table = {dtypes.float8_e4m3fn_x4: "a", dtypes.uint32: "b", dtypes.float4_e2m1fn_x4: "c", dtypes.uint16: "d"}
    assert len(table) == 4
    assert dtypes.float8_e4m3fn_x4 != dtypes.float8_e5m2_x4
    for packed, _, _ in PACKED:
        assert dtypes.resolve(dtypes.name(packed)) == packed
        assert dtypes.is_packed(packed) and not dtypes.is_float(packed)


def test_float8_e8m0fnu_is_a_power_of_two_scale(rng: np.random.Generator) -> None:
    exps = rng.integers(-127, 128, size=32)
    values = np.ldexp(1.0, exps).astype(np.float32)
    got = values.astype(dtypes.float8_e8m0fnu)
    np.testing.assert_array_equal(got.view(np.uint8), (exps + 127).astype(np.uint8))  # biased exponent, no mantissa
    assert dtypes.resolve("float8_e8m0fnu") == dtypes.float8_e8m0fnu and dtypes.is_float(dtypes.float8_e8m0fnu)
    assert dtypes.resolve("tfloat32").itemsize == 4


def test_packing_errors_name_the_rule() -> None:
    with pytest.raises(DtypeError, match="multiple of 4"):
        dtypes.pack_x4(np.zeros((2, 6), np.float32), dtypes.float8_e4m3fn_x4)
    with pytest.raises(DtypeError, match="packed x4 dtype"):
        dtypes.unpack_x4(np.zeros((2, 2), np.uint32), dtypes.uint32)
    with pytest.raises(DtypeError, match="unknown dtype"):
        dtypes.resolve("float8_e4m3fn_x8")

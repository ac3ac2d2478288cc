"""e8m0 scale codes as factors against ml_dtypes' own float8_e8m0fnu: every one of the 256 codes (0xFF is NaN in
the OCP MX spec, not 2^128), in both storages the MX instructions accept (e8m0 bits and plain uint8)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from trnsim.isa.instructions import mx_format as mx


def test_every_code_matches_ml_dtypes() -> None:
    codes = np.arange(256, dtype=np.uint8)
    want = codes.view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    got = mx.scale_factors(codes)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)  # NaN positions equal too
    assert np.isnan(got[255]) and got[254] == np.float32(2.0**127) and got[0] == np.float32(2.0**-127)


def test_random_scale_tiles_in_both_storages() -> None:
    rng = np.random.default_rng()
    codes = rng.integers(0, 256, size=(int(rng.integers(1, 17)), int(rng.integers(1, 65))), dtype=np.uint8)
    want = codes.view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    as_e8m0 = mx.biased_exponents(codes.view(ml_dtypes.float8_e8m0fnu))
    np.testing.assert_array_equal(mx.scale_factors(as_e8m0), want)
    np.testing.assert_array_equal(mx.scale_factors(codes), want)

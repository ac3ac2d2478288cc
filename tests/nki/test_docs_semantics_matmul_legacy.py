"""The NKI docs' legacy nc_matmul example: fp8 inputs viewed as their own dtype (`x.view(nl.float8_e5m2)` on an
HBM tensor that already is fp8: nothing to reinterpret) and perf_mode="double_row_gen3" (the legacy string for
FP8 double-row mode), against numpy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
import trnsim.nki.legacy_isa as lisa
from trnsim.errors import UsageError

FP8 = ml_dtypes.float8_e5m2


@nki.jit
def legacy_double_row(a_input, b_input):
    out = nl.ndarray([a_input.shape[2], b_input.shape[2]], dtype=nl.float32, buffer=nl.shared_hbm)
    a = nl.load(a_input.view(nl.float8_e5m2))
    b = nl.load(b_input.view(nl.float8_e5m2))
    nl.store(out, lisa.nc_matmul(a, b, perf_mode="double_row_gen3"))
    return out


def test_legacy_double_row_gen3_contracts_over_both_rows(rng: np.random.Generator) -> None:
    a = rng.standard_normal((128, 2, 32)).astype(FP8)
    b = rng.standard_normal((128, 2, 64)).astype(FP8)
    got = nki.simulate(legacy_double_row, target="trn2")(a, b)
    ref = np.einsum("prm,prn->mn", a.astype(np.float32), b.astype(np.float32))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


@nki.jit
def view_hbm_as_other_dtype(a_input):
    return nl.load(a_input.view(nl.bfloat16))


def test_viewing_an_hbm_tensor_as_another_dtype_is_still_an_error(rng: np.random.Generator) -> None:
    with pytest.raises(UsageError, match="whole on-chip tile"):
        nki.simulate(view_hbm_as_other_dtype)(rng.standard_normal((4, 8)).astype(np.float32))

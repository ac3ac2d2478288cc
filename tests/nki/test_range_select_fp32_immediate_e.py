"""nisa.range_select's on_false_value is a float32 immediate (nki.isa docs: "must be float32"): a Python float
literal that rounds to FP32_MIN in float32 (nki-library writes -3.4028235e38) is FP32_MIN; one that does not
(-3.4e38, or one past float32's range) is refused."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError

FP32_MIN = np.finfo(np.float32).min


@nki.jit
def select_with(x, lo, hi, fill):
    t, b0, b1 = nl.load(x), nl.load(lo), nl.load(hi)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.range_select(y, t, nl.greater_equal, nl.less, b0, b1, on_false_value=fill)
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


@pytest.mark.parametrize("fill", [-3.4028235e38, float(FP32_MIN), np.float32(FP32_MIN)])
def test_a_literal_that_rounds_to_fp32_min_is_fp32_min(rng: np.random.Generator, fill: float) -> None:
    assert np.float32(fill) == FP32_MIN
    p, f = int(rng.integers(1, 129)), int(rng.integers(2, 300))
    x = rng.standard_normal((p, f)).astype(np.float32)
    lo = rng.integers(0, f, size=(p, 1)).astype(np.float32)
    hi = lo + rng.integers(1, f, size=(p, 1)).astype(np.float32)
    (y,) = [nki.simulate(select_with, target="trn2")(x, lo, hi, fill)]
    index = np.arange(f, dtype=np.float32)[None, :]
    np.testing.assert_array_equal(y, np.where((index >= lo) & (index < hi), x, FP32_MIN))


@pytest.mark.parametrize("fill", [-3.4e38, -3.41e38, 0.0, "min"])
def test_a_value_that_is_not_fp32_min_in_float32_is_refused(fill: object) -> None:
    x = np.zeros((4, 8), np.float32)
    b = np.zeros((4, 1), np.float32)
    with pytest.raises(UsageError, match="on_false_value must be FP32_MIN") as info:
        nki.profile(select_with, target="trn2", mode="timing")(x, b, b, fill)  # type: ignore[arg-type]
    assert info.value.rule == "on-false" and "test_range_select_fp32_immediate_e.py" in str(info.value)

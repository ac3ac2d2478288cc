"""nl.abs_max as the NKI docs define it: the signed input of larger magnitude (abs_max(-5, 3) is -5), y on ties;
against numpy on fresh random data, through nl.abs_max and nisa.tensor_tensor."""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl


@nki.jit
def language_abs_max(x, y):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.abs_max(nl.load(x), nl.load(y)))
    return out


@nki.jit
def isa_abs_max(x, y):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    dst = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=dst, data1=nl.load(x), data2=nl.load(y), op=nl.abs_max)
    nl.store(out, dst)
    return out


def _reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) > np.abs(y), x, y)


def test_abs_max_returns_the_signed_input_of_larger_magnitude(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 200)).astype(np.float32)
    y = rng.standard_normal((128, 200)).astype(np.float32)
    x[0, :3], y[0, :3] = [-5.0, 1.0, 2.0], [3.0, -1.0, -7.0]  # the docs' examples, a tie, a negative y
    for kernel in (language_abs_max, isa_abs_max):
        got = nki.simulate(kernel, target="trn3")(x, y)
        np.testing.assert_array_equal(got, _reference(x, y))
        assert list(got[0, :3]) == [-5.0, -1.0, -7.0]
        assert np.any(got < 0)  # signed values come back, not magnitudes

"""`if tensor:` in a kernel is a presence test, as in NKI (its NkiTensor defines no truth value): true for any
tensor, so optional tensor arguments (`bias=None`) select code paths. Checked against numpy."""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.language as nl


@nki.jit
def maybe_bias(x, bias=None):
    t = nl.load(x)
    if bias:
        t = nl.add(t, nl.load(bias))
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, t)
    return out


def test_optional_tensor_arguments_select_the_path(rng: np.random.Generator) -> None:
    shape = (int(rng.integers(1, 129)), int(rng.integers(1, 300)))
    x, b = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(nki.simulate(maybe_bias)(x, b), x + b, rtol=1e-6)
    np.testing.assert_array_equal(nki.simulate(maybe_bias)(x), x)

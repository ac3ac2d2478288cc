"""Temporaries of a legacy tile expression: one that dies with the operator lends its SBUF bytes to the
result (the compiler's buffer reuse), so a long sum of products needs two temporaries live, not three.
Named tiles and views of them are never overwritten. Checked against numpy on fresh random data."""

from __future__ import annotations

import ml_dtypes
import numpy as np

import trnsim.nki as nki
import trnsim.nki.language as nl
from trnsim.hw.presets import get_spec

# A tile of 30% of an SBUF partition: the input, its result and two temporaries fit; a third does not.
FREE = get_spec("trn2").core.sbuf.partition_bytes * 3 // 10 // 4


@nki.jit
def long_sum(x, w):
    t = nl.load(x)
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, 27.0 * w * t + 9.0 * w * t + 3.0 * w * t - 2.0 * t + 0.5 * (t * t) + w * t)
    return out


def test_a_long_expression_fits_with_two_temporaries_live(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, FREE)).astype(np.float32)
    w = float(rng.uniform(0.1, 1.0))
    got = nki.simulate(long_sum, target="trn2")(x, w)
    want = 27.0 * w * x + 9.0 * w * x + 3.0 * w * x - 2.0 * x + 0.5 * (x * x) + w * x
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@nki.jit
def named_tiles_survive(x, y):
    a, b = nl.load(x), nl.load(y)
    t = a * b  # named: later expressions must not write into it
    u = t + 1.0
    v = 2.0 * t[...] - b  # a view of a named tile is not a temporary either
    w = (a - b) * (a + b) + t
    outs = []
    for tile in (t, u, v, w):
        o = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(o, tile)
        outs.append(o)
    return tuple(outs)


def test_named_tiles_and_their_views_are_not_reused(rng: np.random.Generator) -> None:
    shape = (int(rng.integers(1, 129)), int(rng.integers(1, 400)))
    x, y = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    t, u, v, w = nki.simulate(named_tiles_survive, target="trn2")(x, y)
    np.testing.assert_allclose(t, x * y, rtol=1e-6)
    np.testing.assert_allclose(u, x * y + 1.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(v, 2.0 * x * y - y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w, (x - y) * (x + y) + x * y, rtol=1e-5, atol=1e-5)


@nki.jit
def mixed_dtypes(x, y):
    a, b = nl.load(x), nl.load(y)
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, (a * 2.0) + b)  # bf16 temporary, fp32 result: a new tile, the temporary is not reused
    return out


def test_a_temporary_of_another_dtype_is_not_reused(rng: np.random.Generator) -> None:
    shape = (int(rng.integers(1, 129)), int(rng.integers(1, 300)))
    x = rng.standard_normal(shape).astype(ml_dtypes.bfloat16)
    y = rng.standard_normal(shape).astype(np.float32)
    got = nki.simulate(mixed_dtypes, target="trn2")(x, y)
    want = (x.astype(np.float32) * 2.0).astype(ml_dtypes.bfloat16).astype(np.float32) + y
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

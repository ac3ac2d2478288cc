"""The random number instructions (nisa.rng, rand2, dropout, set_rng_seed, rand_set_state, rand_get_state) and
nl.rand / nl.random_seed / nl.dropout: bits against a pure-Python XORWOW written from Marsaglia's paper and
cuRAND's curand_init, reproducibility under a seed (functional and timing runs), distribution sanity, and
their rules as clear errors in both modes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError, KernelError, ShapeMismatchError, UsageError
from trnsim.isa import Opcode

M32 = 0xFFFFFFFF


def curand_init(seed: int, generator: int) -> list[int]:
    """cuRAND's XORWOW curand_init for the 64-bit seed (generator << 32 | seed), without skip-ahead."""
    t0 = ((seed ^ 0xAAD26B49) * 1099087573) & M32
    t1 = ((generator ^ 0xF7DCEFDD) * 2591861531) & M32
    return [
        (123456789 + t0) & M32,
        362436069 ^ t0,
        (521288629 + t1) & M32,
        88675123 ^ t1,
        (5783321 + t0) & M32,
        (6615241 + t1 + t0) & M32,
    ]


def xorwow(s: list[int]) -> int:
    """One XORWOW step (Marsaglia 2003, 'Xorshift RNGs' p. 5), updating s = [x, y, z, w, v, d] in place."""
    x, y, z, w, v, d = s
    t = x ^ (x >> 2)
    x, y, z, w = y, z, w, v
    v = (v ^ ((v << 4) & M32)) ^ (t ^ ((t << 1) & M32))
    d = (d + 362437) & M32
    s[:] = [x, y, z, w, v, d]
    return (v + d) & M32


def reference_bits(seed: int, partitions: int, n: int, generators: int) -> np.ndarray:
    """Element j of lane p comes from generator p * generators + j % generators."""
    out = np.zeros((partitions, n), np.uint64)
    for p in range(partitions):
        states = [curand_init(seed, p * generators + g) for g in range(generators)]
        for j in range(n):
            out[p, j] = xorwow(states[j % generators])
    return out


@nki.jit
def bits_after_seed(seed, shape_src, dtype_src, engine):
    s = nl.load(seed)
    nisa.set_rng_seed(s)
    bits = nl.ndarray(shape_src.shape, dtype=dtype_src.dtype, buffer=nl.sbuf)
    nisa.rng(bits, engine=engine)
    out = nl.ndarray(shape_src.shape, dtype=dtype_src.dtype, buffer=nl.shared_hbm)
    nl.store(out, bits)
    return out


@pytest.mark.parametrize("dtype", [np.uint32, np.uint16, np.int8, np.int32])
def test_vector_rng_bits_match_a_pure_python_xorwow(rng: np.random.Generator, dtype: Any) -> None:
    seed = int(rng.integers(0, 2**31))
    p, n = int(rng.integers(1, 9)), int(rng.integers(1, 40))
    like = np.zeros((p, n), dtype)
    got = nki.simulate(bits_after_seed)(np.array([[seed]], np.int32), like, like, nisa.engine.vector)
    want = reference_bits(seed, p, n, generators=4)
    np.testing.assert_array_equal(got, want.astype(np.uint32).astype(dtype))  # the least significant bits


def test_same_seed_same_bits_other_seed_other_bits(rng: np.random.Generator) -> None:
    like = np.zeros((128, 64), np.uint32)
    seed = int(rng.integers(0, 2**31))
    a = nki.simulate(bits_after_seed)(np.array([[seed]], np.int32), like, like, nisa.engine.vector)
    b = nki.simulate(bits_after_seed)(np.array([[seed]], np.int32), like, like, nisa.engine.vector)
    c = nki.simulate(bits_after_seed)(np.array([[seed + 1]], np.int32), like, like, nisa.engine.vector)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.99
    assert len(np.unique(a)) > 0.99 * a.size  # lanes draw different streams


def test_timing_runs_issue_the_same_instructions() -> None:
    seed = np.array([[7]], np.int32)
    like = np.zeros((128, 64), np.uint32)
    args = (nki.TensorSpec(seed.shape, "int32"), nki.TensorSpec(like.shape, "uint32"))
    t1 = nki.profile(bits_after_seed, target="trn2", mode="timing")(*args, args[1], nisa.engine.gpsimd)
    t2 = nki.profile(bits_after_seed, target="trn2", mode="timing")(*args, args[1], nisa.engine.gpsimd)
    f = nki.profile(bits_after_seed, target="trn2", mode="functional")(seed, like, like, nisa.engine.gpsimd)
    ops = [[(i.opcode, i.engine, i.cycles) for i in p.instructions] for p in (t1, t2, f)]
    assert ops[0] == ops[1] == ops[2]
    assert t1.latency_us == f.latency_us
    assert any(op is Opcode.RNG and eng.key == "gpsimd" for op, eng, _ in ops[0])


@nki.jit
def uniform(seed, like):
    nl.random_seed(nl.load(seed))
    a = nl.rand(like.shape, dtype=nl.float32)
    b = nl.rand(like.shape, dtype=nl.float32)
    nl.random_seed(nl.load(seed))
    c = nl.rand(like.shape, dtype=nl.float32)
    out = nl.ndarray((3, *like.shape), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out[0], a)
    nl.store(out[1], b)
    nl.store(out[2], c)
    return out


def test_nl_rand_is_uniform_and_reseeding_repeats_it(rng: np.random.Generator) -> None:
    seed = np.array([[int(rng.integers(0, 2**31))]], np.int32)
    a, b, c = nki.simulate(uniform)(seed, np.zeros((128, 512), np.float32))
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    for u in (a, b):
        assert u.min() >= 0.0 and u.max() < 1.0
        n = u.size  # mean 1/2 and variance 1/12, within 6 standard errors
        assert abs(u.mean() - 0.5) < 6 * np.sqrt(1 / 12 / n)
        assert abs(u.var() - 1 / 12) < 6 * np.sqrt(1 / 180 / n)
        hist = np.histogram(u, bins=16, range=(0, 1))[0]
        assert np.abs(hist - n / 16).max() < 6 * np.sqrt(n / 16)


@nki.jit
def drop(x, prob):
    t = nl.load(x)
    p = nl.load(prob) if not isinstance(prob, float) else prob
    y = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dropout(y, t, p)
    z = nl.dropout(t, p)
    out = nl.ndarray((2, *x.shape), dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out[0], y)
    nl.store(out[1], z)
    return out


def test_dropout_zeroes_at_the_rate_and_keeps_the_rest_unscaled(rng: np.random.Generator) -> None:
    x = (rng.random((128, 512)) + 0.5).astype(np.float32)  # no zeros of its own
    prob = rng.random((128, 1)).astype(np.float32)
    prob[:4] = [[0.0], [1.0], [0.5], [0.25]]
    for got in nki.simulate(drop)(x, prob):
        kept = got != 0
        np.testing.assert_array_equal(got[kept], x[kept])  # the docs do not rescale kept values
        rate = 1 - kept.mean(axis=1)
        assert rate[0] == 0.0 and rate[1] == 1.0
        n = x.shape[1]
        assert np.all(np.abs(rate - prob[:, 0]) < 6 * np.sqrt(prob[:, 0] * (1 - prob[:, 0]) / n) + 1e-9)


def test_dropout_with_a_scalar_rate_on_integer_data(rng: np.random.Generator) -> None:
    x = rng.integers(1, 1000, size=(64, 256)).astype(np.int32)
    y, z = nki.simulate(drop)(x, 0.2)
    for got in (y, z):
        kept = got != 0
        np.testing.assert_array_equal(got[kept], x[kept])
        assert abs((1 - kept.mean()) - 0.2) < 6 * np.sqrt(0.2 * 0.8 / x.size)


@nki.jit
def rand2_kernel(lo, hi, like):
    a = nl.load(lo)
    b = nl.load(hi)
    y = nl.ndarray(like.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.rand2(y, a, b)
    out = nl.ndarray(like.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


def test_rand2_is_uniform_in_each_partitions_range(rng: np.random.Generator) -> None:
    lo = rng.uniform(-10, 0, size=(128, 1)).astype(np.float32)
    hi = lo + rng.uniform(0.5, 10, size=(128, 1)).astype(np.float32)
    y = nki.simulate(rand2_kernel, target="trn3")(lo, hi, np.zeros((128, 1024), np.float32))
    u = (y - lo) / (hi - lo)
    assert u.min() >= 0.0 and u.max() <= 1.0
    assert abs(u.mean() - 0.5) < 6 * np.sqrt(1 / 12 / u.size)


@nki.jit
def state_roundtrip(words, engine):
    s = nl.load(words)
    nisa.rand_set_state(s, engine=engine)
    back = nl.ndarray(words.shape, dtype=nl.uint32, buffer=nl.sbuf)
    nisa.rand_get_state(back, engine=engine)
    bits = nl.ndarray((words.shape[0], 8), dtype=nl.uint32, buffer=nl.sbuf)
    nisa.rng(bits, engine=engine)
    after = nl.ndarray(words.shape, dtype=nl.uint32, buffer=nl.sbuf)
    nisa.rand_get_state(after, engine=engine)
    out = nl.ndarray((2, *words.shape), dtype=nl.uint32, buffer=nl.shared_hbm)
    nl.store(out[0], back)
    nl.store(out[1], after)
    bo = nl.ndarray(bits.shape, dtype=nl.uint32, buffer=nl.shared_hbm)
    nl.store(bo, bits)
    return out, bo


@pytest.mark.parametrize(("target", "engine", "words"), [("trn2", "gpsimd", 6), ("trn3", "vector", 24)])
def test_state_set_get_roundtrip_and_draws_continue_from_it(
    rng: np.random.Generator, target: str, engine: str, words: int
) -> None:
    p = int(rng.integers(1, 129))
    state = rng.integers(1, 2**32, size=(p, words), dtype=np.uint64).astype(np.uint32)
    (back, after), bits = nki.simulate(state_roundtrip, target=target)(state, getattr(nisa.engine, engine))
    np.testing.assert_array_equal(back, state)
    gens = words // 6
    want = np.zeros((p, 8), np.uint64)
    for lane in range(p):
        states = [list(map(int, state[lane, g * 6 : (g + 1) * 6])) for g in range(gens)]
        for j in range(8):
            want[lane, j] = xorwow(states[j % gens])
        np.testing.assert_array_equal(after[lane], np.concatenate(states))
    np.testing.assert_array_equal(bits, want)


@nki.jit
def bad(which):
    f = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    u = nl.ndarray((128, 6), dtype=nl.uint32, buffer=nl.sbuf)
    nisa.memset(f, 1.0)
    nisa.memset(u, 1)
    if which == "rng-float":
        nisa.rng(f)
    elif which == "rng-gpsimd-psum":
        nisa.rng(nl.ndarray((128, 64), dtype=nl.int32, buffer=nl.psum), engine=nisa.engine.gpsimd)
    elif which == "rand2-v3":
        nisa.rand2(f, 0.0, 1.0)
    elif which == "dropout-dtype":
        nisa.dropout(nl.ndarray((128, 64), dtype=nl.bfloat16, buffer=nl.sbuf), f, 0.5)
    elif which == "dropout-prob-shape":
        nisa.dropout(f, f, f)
    elif which == "dropout-prob-range":
        nisa.dropout(f, f, 1.5)
    elif which == "seed-shape":
        nisa.set_rng_seed(u)
    elif which == "state-words":
        nisa.rand_set_state(nl.ndarray((128, 5), dtype=nl.uint32, buffer=nl.sbuf))
    elif which == "state-dtype":
        nisa.rand_get_state(nl.ndarray((128, 6), dtype=nl.int32, buffer=nl.sbuf))
    elif which == "state-vector-v3":
        nisa.rand_get_state(nl.ndarray((128, 24), dtype=nl.uint32, buffer=nl.sbuf), engine=nisa.engine.vector)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("rng-float", DtypeError, "integer tile"),
        ("rng-gpsimd-psum", UsageError, "PSUM"),
        ("rand2-v3", UsageError, "NeuronCore-v4"),
        ("dropout-dtype", DtypeError, "must have data's dtype"),
        ("dropout-prob-shape", ShapeMismatchError, "scalar or a [128, 1]"),
        ("dropout-prob-range", UsageError, "probability in [0, 1]"),
        ("seed-shape", ShapeMismatchError, "[1, 1]"),
        ("state-words", ShapeMismatchError, "6 XORWOW state words"),
        ("state-dtype", DtypeError, "uint32"),
        ("state-vector-v3", UsageError, "NeuronCore-v4"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_random_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn2", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_random.py" in str(info.value)
    assert isinstance(info.value, nisa.NkiValidationError)


def test_rng_on_gpsimd_needs_neuroncore_v3() -> None:
    like = np.zeros((4, 4), np.uint32)
    with pytest.raises(KernelError, match="NeuronCore-v3"):
        nki.simulate(bits_after_seed, target="trn1")(np.array([[1]], np.int32), like, like, nisa.engine.gpsimd)


@nki.jit
def drop_with_one_rate(x, rate):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.dropout(nl.load(x), nl.load(rate)))
    return out


def test_nl_dropout_takes_a_one_element_rate_tile(rng: np.random.Generator) -> None:
    x = (rng.random((128, 512)) + 0.5).astype(np.float32)
    rate = float(rng.uniform(0.1, 0.9))
    got = nki.simulate(drop_with_one_rate)(x, np.array([[rate]], np.float32))
    kept = got != 0
    np.testing.assert_array_equal(got[kept], x[kept])
    assert abs((1 - kept.mean()) - rate) < 6 * np.sqrt(rate * (1 - rate) / x.size)


@nki.jit
def rand_in(where):
    buffer = {"hbm": nl.hbm, "psum": nl.psum, "shared": nl.shared_hbm}[where]
    r = nl.rand((64, 32), nl.float32, buffer=buffer)
    out = nl.ndarray((64, 32), dtype=nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(out, r) if where == "hbm" else nl.store(out, nl.copy(r))
    return out


def test_nl_rand_in_hbm_and_psum_and_not_in_shared_hbm() -> None:
    for where in ("hbm", "psum"):
        u = nki.simulate(rand_in)(where)
        assert u.min() >= 0.0 and u.max() < 1.0 and len(np.unique(u)) > 0.9 * u.size
    with pytest.raises(UsageError, match="store it into shared_hbm"):
        nki.simulate(rand_in)("shared")

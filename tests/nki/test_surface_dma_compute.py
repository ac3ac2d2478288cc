"""nisa.dma_compute against numpy (the fp32 sum of 1..16 sources cast to dst's dtype, HBM and SBUF operands, as
the nki-library kernels call it) and its rules as clear errors in functional and timing runs."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.isa import Opcode


@nki.jit
def add_all(*xs):
    out = nl.ndarray(xs[0].shape, dtype=xs[0].dtype, buffer=nl.shared_hbm)
    nisa.dma_compute(out, list(xs), reduce_op=nl.add, scales=[1.0] * len(xs))
    return out


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
def test_dma_compute_sums_hbm_sources(rng: np.random.Generator, dtype: Any) -> None:
    k = int(rng.integers(1, 17))
    shape = (int(rng.integers(1, 300)), int(rng.integers(1, 300)))
    xs = [rng.standard_normal(shape).astype(dtype) for _ in range(k)]
    got = nki.simulate(add_all)(*xs)
    want = np.sum([x.astype(np.float32) for x in xs], axis=0, dtype=np.float32).astype(dtype)
    np.testing.assert_allclose(
        got.astype(np.float32), want.astype(np.float32), rtol=1e-6 if dtype == np.float32 else 1e-2
    )


@nki.jit
def sbuf_accumulate(a, b):
    t = nl.load(a)
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_compute(out, (t, b), nl.add)  # an SBUF source and an HBM source, scales None
    return out


def test_dma_compute_mixes_sbuf_and_hbm(rng: np.random.Generator) -> None:
    a, b = (rng.standard_normal((128, 64)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(nki.simulate(sbuf_accumulate)(a, b), a + b, rtol=1e-6)


def test_dma_compute_is_a_dma_that_moves_one_copy_per_source() -> None:
    spec = nki.TensorSpec((128, 512), "float32")
    prof = nki.profile(add_all, target="trn2", mode="timing")(spec, spec, spec)
    (ins,) = [i for i in prof.instructions if i.opcode is Opcode.DMA_COMPUTE]
    assert ins.dma_bytes == 3 * 128 * 512 * 4 and ins.hbm_bytes == 4 * 128 * 512 * 4


@nki.jit
def bad(which, x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    if which == "op":
        nisa.dma_compute(out, [x, x], nl.multiply)
    elif which == "scales":
        nisa.dma_compute(out, [x, x], nl.add, scales=[1.0, 2.0])
    elif which == "scale-count":
        nisa.dma_compute(out, [x, x], nl.add, scales=[1.0])
    elif which == "count":
        nisa.dma_compute(out, [x] * 17, nl.add)
    elif which == "shape":
        nisa.dma_compute(out, [x, x[0:1]], nl.add)
    elif which == "psum":
        p = nl.ndarray((x.shape[0], 4), dtype=nl.float32, buffer=nl.psum)
        nisa.dma_compute(out[:, 0:4], [p], nl.add)
    elif which == "unique":
        nisa.dma_compute(out, [x], nl.add, unique_indices=False)
    elif which == "not-a-list":
        nisa.dma_compute(out, x, nl.add)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("op", UsageError, "'multiply' is not supported"),
        ("scales", UsageError, "scales must all be 1.0"),
        ("scale-count", UsageError, "2 srcs but 1 scales"),
        ("count", UsageError, "1..16 srcs"),
        ("shape", ShapeMismatchError, "counts must match"),
        ("psum", UsageError, "PSUM"),
        ("unique", UsageError, "unique_indices=True"),
        ("not-a-list", UsageError, "must be a list of tensors"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_dma_compute_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    x: Any = np.zeros((8, 16), np.float32) if mode == "functional" else nki.TensorSpec((8, 16), "float32")
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn2", mode=mode)(which, x)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_dma_compute.py" in str(info.value)


@nki.jit
def fold_halves(x):
    """nki-library's MoE reduction: output[0:T] += output[T:2T] through static .ap() views of one HBM tensor."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(out, x)
    t, h = x.shape[0] // 2, x.shape[1]
    first = out.ap(pattern=[[h, t], [1, h]], offset=0)
    nisa.dma_compute(dst=first, srcs=[first, out.ap(pattern=[[h, t], [1, h]], offset=t * h)], reduce_op=nl.add)
    return out


def test_dma_compute_through_access_patterns(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2 * int(rng.integers(1, 64)), int(rng.integers(1, 200)))).astype(np.float32)
    want = x.copy()
    want[: x.shape[0] // 2] += x[x.shape[0] // 2 :]
    np.testing.assert_allclose(nki.simulate(fold_halves)(x), want, rtol=1e-6)


@nki.jit
def gather_rmw(table, idx, acc):
    """Gather RMW: acc(SBUF) = acc + table(HBM)[indices] (a vector_offset source)."""
    a, i = nl.load(acc), nl.load(idx)
    rows = table.ap(pattern=[[table.shape[1], idx.shape[0]], [1, table.shape[1]]], offset=0, vector_offset=i)
    nisa.dma_compute(a, [a, rows], nl.add)
    out = nl.ndarray(acc.shape, dtype=acc.dtype, buffer=nl.shared_hbm)
    nl.store(out, a)
    return out


@nki.jit
def scatter_rmw(table, idx, upd):
    """Scatter RMW: table(HBM)[indices] = table[indices] + upd(SBUF)."""
    out = nl.ndarray(table.shape, dtype=table.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(out, table)
    i, u = nl.load(idx), nl.load(upd)
    rows = out.ap(pattern=[[table.shape[1], idx.shape[0]], [1, table.shape[1]]], offset=0, vector_offset=i)
    nisa.dma_compute(rows, [rows, u], nl.add)
    return out


def test_dma_compute_gather_and_scatter_read_modify_write(rng: np.random.Generator) -> None:
    n, h = int(rng.integers(2, 200)), int(rng.integers(1, 100))
    k = int(rng.integers(1, min(n, 128) + 1))
    table = rng.standard_normal((n, h)).astype(np.float32)
    ix = rng.permutation(n)[:k].reshape(k, 1).astype(np.int32)  # unique, as NKI 0.6 requires
    acc = rng.standard_normal((k, h)).astype(np.float32)
    np.testing.assert_allclose(nki.simulate(gather_rmw)(table, ix, acc), acc + table[ix[:, 0]], rtol=1e-6)
    want = table.copy()
    want[ix[:, 0]] += acc
    np.testing.assert_allclose(nki.simulate(scatter_rmw)(table, ix, acc), want, rtol=1e-6)

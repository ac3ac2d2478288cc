"""NkiTensor.permute / broadcast / expand_dim / squeeze_dim / reshape_dim / flatten_dims (NKI 0.5 layout view
primitives) against numpy on random data, on HBM and SBUF, and their rules as clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import ShapeMismatchError, UsageError


def apply(t, op, args):
    return getattr(t, op)(*args)


@nki.jit
def sbuf_view(a, op, args):
    t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a)
    v = apply(t, op, args)
    res = nl.ndarray(v.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=v)  # an engine reads the view
    out = nl.ndarray(v.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=res)
    return out


@nki.jit
def hbm_view(a, op, args):
    v = apply(a, op, args)
    res = nl.ndarray(v.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=res, src=v)  # a DMA reads the view
    out = nl.ndarray(v.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=res)
    return out


def test_views_on_sbuf_match_numpy(rng: np.random.Generator) -> None:
    p, b, c = int(rng.integers(1, 129)), int(rng.integers(1, 9)), int(rng.integers(1, 40))
    a = rng.standard_normal((p, b, c)).astype(np.float32)
    run = nki.simulate(sbuf_view)
    np.testing.assert_array_equal(run(a, "permute", ((0, 2, 1),)), a.transpose(0, 2, 1))
    np.testing.assert_array_equal(run(a, "expand_dim", (2,)), a[:, :, None, :])
    np.testing.assert_array_equal(run(a, "reshape_dim", (2, (1, c))), a.reshape(p, b, 1, c))
    np.testing.assert_array_equal(run(a, "flatten_dims", (1, 2)), a.reshape(p, b * c))
    one = a[:, :1, :]
    k = int(rng.integers(2, 6))
    np.testing.assert_array_equal(run(one, "broadcast", (1, k)), np.broadcast_to(one, (p, k, c)))
    np.testing.assert_array_equal(run(one, "squeeze_dim", (1,)), one[:, 0, :])
    w = int(rng.integers(1, 7))
    flat = rng.standard_normal((p, 4 * w)).astype(np.float32)  # the docs' example: split (h w), reorder to w, h
    got = run(flat, "rearrange", (("b", ("h", "w")), ("b", "w", "h"), {"h": 4}))
    np.testing.assert_array_equal(got, flat.reshape(p, 4, w).transpose(0, 2, 1))


def test_views_on_hbm_match_numpy(rng: np.random.Generator) -> None:
    b, p, c = int(rng.integers(1, 6)), int(rng.integers(1, 129)), 2 * int(rng.integers(1, 20))
    a = rng.standard_normal((b, p, c)).astype(np.float32)
    run = nki.simulate(hbm_view)
    np.testing.assert_array_equal(run(a, "permute", ((1, 0, 2),)), a.transpose(1, 0, 2))
    np.testing.assert_array_equal(run(a[0], "reshape_dim", (1, (2, -1))), a[0].reshape(p, 2, c // 2))
    sub = np.ascontiguousarray(a[:, : max(1, 128 // b)])  # at most 128 rows once merged
    merged = run(sub, "rearrange", (("b", "p", "c"), (("b", "p"), "c")))
    np.testing.assert_array_equal(merged, sub.reshape(-1, c))


@nki.jit
def bad(a, which):
    t = nl.ndarray((4, 6, 8), dtype=a.dtype, buffer=nl.sbuf)
    if which == "permute-partition":
        t.permute((1, 0, 2))
    elif which == "broadcast-size":
        t.broadcast(1, 3)
    elif which == "flatten-strided":
        t[:, :, 0:4].flatten_dims(1, 2)  # rows of 4 elements, 8 apart: no single stride
    elif which == "reshape-sizes":
        t.reshape_dim(1, (4, 2))
    elif which == "squeeze-partition":
        t.squeeze_dim(0)
    elif which == "rearrange-names":
        t.rearrange(("p", "a", "b"), ("p", "a", "c"))
    elif which == "rearrange-split":
        t.rearrange(("p", ("a", "x"), "b"), ("p", "a", "x", "b"), {"a": 4})


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("permute-partition", UsageError, "partition dim first"),
        ("broadcast-size", ShapeMismatchError, "not 1"),
        ("flatten-strided", UsageError, "not contiguous"),
        ("reshape-sizes", ShapeMismatchError, "multiply to 6"),
        ("squeeze-partition", UsageError, "partition dim"),
        ("rearrange-names", UsageError, "each name"),
        ("rearrange-split", UsageError, "cannot split dim 1"),
    ],
)
def test_layout_view_errors(which: str, error: type, words: str) -> None:
    with pytest.raises(error, match=r"test_tensor_layout_views_b\.py") as info:
        nki.simulate(bad)(np.zeros((4, 8), np.float32), which)
    assert words in str(info.value)

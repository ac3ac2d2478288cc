"""nisa.tensor_partition_reduce, local_gather and topk (GpSimd, across partitions) against numpy: the NKI docs'
own numpy reference for local_gather, np.sum/max/mean/bitwise reductions over axis 0, and a sort-based top-K
over the documented 16-partition snake; their rules as clear errors in functional and timing runs."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import BoundsError, DtypeError, ShapeMismatchError, TileShapeError, UsageError


@nki.jit
def partition_reduce(x, op):
    t = nl.load(x)
    y = nl.ndarray((1, *x.shape[1:]), dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_partition_reduce(y, op, t)
    out = nl.ndarray((1, *x.shape[1:]), dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


@pytest.mark.parametrize(
    ("op", "reference"),
    [
        (np.add, lambda a: a.sum(axis=0, keepdims=True)),
        (nl.add, lambda a: a.sum(axis=0, keepdims=True)),
        (nl.maximum, lambda a: a.max(axis=0, keepdims=True)),
        (np.max, lambda a: a.max(axis=0, keepdims=True)),
        (nl.average, lambda a: a.mean(axis=0, keepdims=True)),
    ],
)
def test_partition_reduce_matches_numpy(rng: np.random.Generator, op: Any, reference: Any) -> None:
    p, a, b = int(rng.integers(1, 129)), int(rng.integers(1, 33)), int(rng.integers(1, 9))
    x = (rng.standard_normal((p, a, b)) * 100).astype(np.float32)
    got = nki.simulate(partition_reduce)(x, op)
    np.testing.assert_allclose(got, reference(x.astype(np.float64)), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(("op", "fn"), [(nl.bitwise_or, np.bitwise_or), (nl.bitwise_and, np.bitwise_and)])
def test_bitwise_partition_reduce_is_bit_exact(rng: np.random.Generator, op: Any, fn: Any) -> None:
    x = rng.integers(0, 2**31, size=(int(rng.integers(2, 129)), 40), dtype=np.int64).astype(np.int32)
    got = nki.simulate(partition_reduce)(x, op)
    np.testing.assert_array_equal(got, fn.reduce(x, axis=0, keepdims=True))


@nki.jit
def gather(src, index, e, v, out_shape):
    s = nl.load(src)
    i = nl.load(index)
    y = nl.ndarray(out_shape.shape, dtype=src.dtype, buffer=nl.sbuf)
    nisa.local_gather(y, s, i, num_elem_per_idx=e, num_valid_indices=v)
    out = nl.ndarray(out_shape.shape, dtype=src.dtype, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


def docs_reference(src_buffer: np.ndarray, index: np.ndarray, num_valid_indices: int) -> np.ndarray:
    """The NKI docs' numpy semantics (test_nki_isa_local_gather.py), as written there (with index in units of
    elements-per-index groups; the kernel gets index * num_elem_per_idx)."""
    num_partitions_per_core = 16
    output_np = np.ndarray(shape=(src_buffer.shape[0], num_valid_indices, src_buffer.shape[2]), dtype=src_buffer.dtype)
    for i_core in range(src_buffer.shape[0] // 16):
        start_par = i_core * num_partitions_per_core
        end_par = (i_core + 1) * num_partitions_per_core
        indices_1d = index[start_par:end_par].flatten(order="F")[0:num_valid_indices]
        output_np[start_par:end_par, :, :] = np.take(src_buffer[start_par:end_par], indices_1d, axis=1)
    return output_np


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16, np.int16])
def test_local_gather_matches_the_docs_numpy_reference(rng: np.random.Generator, dtype: Any) -> None:
    groups, k = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    e = int(rng.choice([1, 2, 4, 8, 16, 32]))
    n = int(rng.integers(1, 200))
    src = (rng.standard_normal((16 * groups, n, e)) * 50).astype(dtype)
    index = rng.integers(0, n, size=(16 * groups, k)).astype(np.uint16)
    v = int(rng.integers(1, 16 * k + 1))
    got = nki.simulate(gather)(src, index * e, e, v, np.zeros((16 * groups, v, e), dtype))
    np.testing.assert_array_equal(got, docs_reference(src, index, v))


def test_local_gather_docs_example_shapes(rng: np.random.Generator) -> None:
    src = (rng.random((128, 512, 4)) * 100).astype(np.float32)
    index = np.tile(rng.integers(0, 512, size=(16, 4)).astype(np.uint16), (8, 1))
    got = nki.simulate(gather)(src, index * 4, 4, 64, np.zeros((128, 4, 16, 4), np.float32))
    np.testing.assert_array_equal(got, docs_reference(src, index, 64).reshape(128, 4, 16, 4))


def test_local_gather_index_past_the_end_is_a_bounds_error() -> None:
    src = np.zeros((16, 10), np.float32)
    index = np.full((16, 1), 9, np.uint16)
    with pytest.raises(BoundsError, match=r"outside \[0, 10\)"):
        nki.simulate(gather)(src, index, 2, 16, np.zeros((16, 32), np.float32))


@nki.jit
def topk_kernel(x, n, k):
    s = nl.load(x)
    vals = nl.ndarray((x.shape[0], k), dtype=nl.bfloat16, buffer=nl.sbuf)
    idx = nl.ndarray((x.shape[0], k), dtype=nl.uint32, buffer=nl.sbuf)
    nisa.memset(vals, -1.0)
    nisa.memset(idx, 7)
    nisa.topk(val_dst=vals, idx_dst=idx, src=s, n=n)
    ov = nl.ndarray(vals.shape, dtype=nl.bfloat16, buffer=nl.shared_hbm)
    oi = nl.ndarray(idx.shape, dtype=nl.uint32, buffer=nl.shared_hbm)
    nl.store(ov, vals)
    nl.store(oi, idx)
    return ov, oi


def test_topk_writes_each_snakes_largest_values_as_an_ascending_snake(rng: np.random.Generator) -> None:
    groups = int(rng.integers(1, 9))
    n = int(rng.integers(8, 2000))
    k = int(rng.integers(1, min(n, 64) + 1))
    cols = -(-n // 16) + int(rng.integers(0, 3))
    bits = rng.choice(np.arange(1, 0x7F80, dtype=np.uint16), size=16 * groups * cols, replace=False)
    x = bits.reshape(16 * groups, cols).view(ml_dtypes.bfloat16)  # distinct positive finite bf16 values
    vals, idx = nki.simulate(topk_kernel)(x, n, k)
    pos = np.arange(k)
    for g in range(groups):
        snake = x[16 * g : 16 * (g + 1)].astype(np.float32).T.reshape(-1)[:n]  # element s: partition s % 16
        order = np.argsort(snake)[-k:]  # ascending, the largest K
        rows, cols_out = 16 * g + pos % 16, pos // 16  # output position pos, de-snaked as nki-library does
        np.testing.assert_array_equal(idx[rows, cols_out], order)
        np.testing.assert_array_equal(vals[rows, cols_out].astype(np.float32), snake[order])
    untouched = np.ones(vals.shape, bool)
    untouched[(np.arange(16 * groups)[:, None] % 16 + 16 * np.arange(k)[None, :]) < k] = False
    assert np.all(vals[untouched].astype(np.float32) == -1.0) and np.all(idx[untouched] == 7)


@nki.jit
def bad(which):
    f = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(f, 1.0)
    i16 = nl.ndarray((32, 4), dtype=nl.uint16, buffer=nl.sbuf)
    nisa.memset(i16, 0)
    bf = nl.ndarray((32, 64), dtype=nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(bf, 0.0)
    if which == "pr-shape":
        nisa.tensor_partition_reduce(nl.ndarray((2, 64), dtype=nl.float32, buffer=nl.sbuf), nl.add, f)
    elif which == "pr-bitwise-float":
        nisa.tensor_partition_reduce(nl.ndarray((1, 64), dtype=nl.float32, buffer=nl.sbuf), nl.bitwise_or, f)
    elif which == "pr-op":
        nisa.tensor_partition_reduce(nl.ndarray((1, 64), dtype=nl.float32, buffer=nl.sbuf), nl.subtract, f)
    elif which == "pr-psum":
        nisa.tensor_partition_reduce(nl.ndarray((1, 64), dtype=nl.float32, buffer=nl.psum), nl.add, f)
    elif which == "lg-index-dtype":
        nisa.local_gather(nl.ndarray((32, 8), dtype=nl.float32, buffer=nl.sbuf), f, f[:, 0:4])
    elif which == "lg-partitions":
        nisa.local_gather(nl.ndarray((24, 4), dtype=nl.float32, buffer=nl.sbuf), f[0:24], i16[0:24])
    elif which == "lg-elems":
        nisa.local_gather(nl.ndarray((32, 192), dtype=nl.float32, buffer=nl.sbuf), f, i16, num_elem_per_idx=3)
    elif which == "lg-dst-shape":
        nisa.local_gather(nl.ndarray((32, 5), dtype=nl.float32, buffer=nl.sbuf), f, i16)
    elif which == "lg-valid":
        nisa.local_gather(nl.ndarray((32, 65), dtype=nl.float32, buffer=nl.sbuf), f, i16, num_valid_indices=65)
    elif which == "topk-dtype":
        nisa.topk(
            nl.ndarray((32, 8), dtype=nl.bfloat16, buffer=nl.sbuf),
            nl.ndarray((32, 8), dtype=nl.uint32, buffer=nl.sbuf),
            f,
            n=64,
        )
    elif which == "topk-n":
        nisa.topk(
            nl.ndarray((32, 8), dtype=nl.bfloat16, buffer=nl.sbuf),
            nl.ndarray((32, 8), dtype=nl.uint32, buffer=nl.sbuf),
            bf,
            n=4,
        )
    elif which == "topk-src-short":
        nisa.topk(
            nl.ndarray((32, 8), dtype=nl.bfloat16, buffer=nl.sbuf),
            nl.ndarray((32, 8), dtype=nl.uint32, buffer=nl.sbuf),
            bf[:, 0:2],
            n=40,
        )
    elif which == "topk-partitions":
        nisa.topk(
            nl.ndarray((24, 8), dtype=nl.bfloat16, buffer=nl.sbuf),
            nl.ndarray((24, 8), dtype=nl.uint32, buffer=nl.sbuf),
            bf[0:24],
            n=40,
        )
    elif which == "topk-idx-shape":
        nisa.topk(
            nl.ndarray((32, 8), dtype=nl.bfloat16, buffer=nl.sbuf),
            nl.ndarray((32, 7), dtype=nl.uint32, buffer=nl.sbuf),
            bf,
            n=40,
        )
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("pr-shape", ShapeMismatchError, "one partition of 64 elements"),
        ("pr-bitwise-float", DtypeError, "integer bits"),
        ("pr-op", UsageError, "'subtract' is not supported"),
        ("pr-psum", UsageError, "PSUM"),
        ("lg-index-dtype", DtypeError, "index must be uint16"),
        ("lg-partitions", TileShapeError, "multiple of 16"),
        ("lg-elems", UsageError, "num_elem_per_idx must be one of"),
        ("lg-dst-shape", ShapeMismatchError, "dst must be [32, 64]"),
        ("lg-valid", UsageError, "num_valid_indices must be 1..64"),
        ("topk-dtype", DtypeError, "src must be bfloat16"),
        ("topk-n", UsageError, "n must be in [8, 65536)"),
        ("topk-src-short", ShapeMismatchError, "fewer than n=40"),
        ("topk-partitions", TileShapeError, "multiple of 16"),
        ("topk-idx-shape", ShapeMismatchError, "idx_dst must be [32, 8]"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_partition_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn2", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_partition.py" in str(info.value)

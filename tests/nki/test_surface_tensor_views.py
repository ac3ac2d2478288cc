"""NkiTensor storage members against numpy: strides, offset, get_pattern, is_contiguous, .ap() with static,
scalar and vector offsets and dtype reinterpretation, reinterpret_cast; and the errors for their rules.

References are numpy's own views of the same data (`np.lib.stride_tricks.as_strided` over the flattened
storage, fancy indexing, `ndarray.view`), computed without trnsim.
"""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import BoundsError, DtypeError, ShapeMismatchError, UsageError


def as_pattern(storage: np.ndarray, pattern: list[list[int]], offset: int) -> np.ndarray:
    """numpy's reading of an access pattern: element [i...] = flat[offset + sum(i_k * step_k)]."""
    flat = storage.reshape(-1)
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=[n for _, n in pattern], strides=[s * item for s, _ in pattern]
    ).copy()


@nki.jit
def copy_through_pattern(a, pattern, offset):
    t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a)
    shape = tuple(n for _, n in pattern)
    s = nl.ndarray(shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=s, src=t.ap(pattern=pattern, offset=offset))
    out = nl.ndarray(shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=s)
    return out


def test_static_ap_on_sbuf_reads_the_pattern(rng: np.random.Generator) -> None:
    p, f = int(rng.integers(2, 129)), int(rng.integers(8, 65))
    a = rng.standard_normal((p, f)).astype(np.float32)
    step = int(rng.integers(1, 3))
    count = (f - 1) // step
    pattern = [[f, p], [step, count]]
    out = copy_through_pattern(a, pattern, 1)
    np.testing.assert_array_equal(out, as_pattern(a, pattern, 1))


@nki.jit
def hbm_pattern_to_sbuf(a, pattern, offset, dtype):
    shape = tuple(n for _, n in pattern)
    s = nl.ndarray(shape, dtype=dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=s, src=a.ap(pattern=pattern, offset=offset, dtype=dtype))
    out = nl.ndarray(shape, dtype=dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=s)
    return out


def test_ap_on_hbm_with_a_3d_pattern_and_offset(rng: np.random.Generator) -> None:
    a = rng.standard_normal((8, 64)).astype(np.float32)
    pattern = [[64, 4], [8, 3], [1, 5]]
    offset = int(rng.integers(0, 64))
    out = hbm_pattern_to_sbuf(a, pattern, offset, nl.float32)
    np.testing.assert_array_equal(out, as_pattern(a, pattern, offset))


def test_ap_dtype_reinterprets_the_bytes(rng: np.random.Generator) -> None:
    a = rng.integers(0, 2**31, size=(4, 16), dtype=np.int64).astype(np.int32)
    out = hbm_pattern_to_sbuf(a, [[32, 4], [1, 32]], 0, nl.bfloat16)
    np.testing.assert_array_equal(out.view(np.uint16), a.view(np.uint16).reshape(4, 32))


@nki.jit
def gather_rows(a, rows, scalar_row):
    n = rows.shape[0]
    r = nl.ndarray((n, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=r, src=rows)
    s = nl.ndarray((n, a.shape[1]), dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=s, src=a.ap([[a.shape[1], n], [1, a.shape[1]]], 0, vector_offset=r, indirect_dim=0))
    out = nl.ndarray((n, a.shape[1]), dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=s)
    i = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=i, src=scalar_row)
    s2 = nl.ndarray((2, a.shape[1] // 2), dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=s2, src=a.ap([[a.shape[1], 2], [1, a.shape[1] // 2]], 1, scalar_offset=i, indirect_dim=0))
    out2 = nl.ndarray((2, a.shape[1] // 2), dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out2, src=s2)
    return out, out2


def test_vector_and_scalar_offsets_read_rows_chosen_at_run_time(rng: np.random.Generator) -> None:
    a = rng.standard_normal((64, 32)).astype(np.float32)
    rows = rng.integers(0, 64, size=(int(rng.integers(1, 17)), 1)).astype(np.int32)
    start = rng.integers(0, 63, size=(1, 1)).astype(np.int32)
    out, out2 = gather_rows(a, rows, start)
    np.testing.assert_array_equal(out, a[rows[:, 0]])
    r = int(start[0, 0])
    flat, base = a.reshape(-1), r * 32 + 1  # two rows of 16 elements, 32 apart, from element 1 of row r
    np.testing.assert_array_equal(out2, np.stack([flat[base + 32 * j : base + 32 * j + 16] for j in range(2)]))


@nki.jit
def layout_facts(a):
    t = nl.ndarray((128, 4, 64), dtype=nl.float32, buffer=nl.sbuf)
    v = t[3:10, 1, 8:40:2]
    h = a[2:5, 1:7]
    return v.strides, v.offset, v.get_pattern(), v.is_contiguous(), h.strides, h.offset, h.is_contiguous()


def test_strides_offset_and_pattern_match_numpy() -> None:
    ref = np.zeros((128, 4, 64), dtype=np.float32)[3:10, 1, 8:40:2]
    hbm = np.zeros((9, 11), dtype=np.float32)
    got = nki.simulate(layout_facts)(hbm)
    strides, offset, pattern, contiguous, h_strides, h_offset, h_contiguous = got
    assert strides == tuple(s // 4 for s in ref.strides)
    assert offset == 3 * 256 + 1 * 64 + 8
    assert pattern == [[256, 7], [2, 16]]
    assert contiguous is False
    assert h_strides == (11, 1) and h_offset == 2 * 11 + 1 and h_contiguous is False


@nki.jit
def cast_view(a, dtype):
    t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a)
    v = t[:, 2:6].reinterpret_cast(dtype)
    s = nl.ndarray(v.shape, dtype=dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=s, src=v)
    out = nl.ndarray(v.shape, dtype=dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=s)
    return out


def test_reinterpret_cast_of_a_slice(rng: np.random.Generator) -> None:
    a = rng.integers(-(2**30), 2**30, size=(16, 8)).astype(np.int32)
    out = cast_view(a, nl.uint16)
    np.testing.assert_array_equal(out, a[:, 2:6].copy().view(np.uint16))


@nki.jit
def bad_ap(a, which):
    t = nl.ndarray((16, 16), dtype=nl.float32, buffer=nl.sbuf)
    i = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.sbuf)
    if which == "partition-step":
        t.ap([[32, 8], [1, 16]])
    elif which == "out-of-bounds":  # on chip: refused when an instruction uses it
        dst = nl.ndarray((16, 16), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=dst, src=t.ap([[16, 16], [1, 16]], offset=1))
    elif which == "out-of-bounds-hbm":
        a.ap([[2, 2], [1, 2]], offset=1)
    elif which == "both-offsets":
        t.ap([[16, 1], [1, 16]], scalar_offset=i, vector_offset=i)
    elif which == "float-offset":
        t.ap([[16, 1], [1, 16]], scalar_offset=i)
    elif which == "not-pairs":
        t.ap([16, 16])
    elif which == "odd-bytes":
        nl.ndarray((16, 3), dtype=nl.bfloat16, buffer=nl.sbuf).reinterpret_cast(nl.float32)
    return a


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("partition-step", UsageError, "walks the partitions"),
        ("out-of-bounds", BoundsError, "reaches 0..16 in dim 0"),
        ("out-of-bounds-hbm", BoundsError, "reaches storage elements"),
        ("both-offsets", UsageError, "at most one"),
        ("float-offset", DtypeError, "must hold integers"),
        ("not-pairs", UsageError, "[step, count]"),
        ("odd-bytes", ShapeMismatchError, "whole 4-byte elements"),
    ],
)
def test_ap_rules_are_clear_errors(which: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        nki.simulate(bad_ap)(np.zeros((2, 2), np.float32), which)
    assert words in str(info.value)
    assert "test_surface_tensor_views.py" in str(info.value)  # points at the kernel line

"""Indirect DMA: an HBM tensor indexed by an SBUF index tile (gather on load, scatter on store), as the NKI
docs' nl.load/nl.store and nisa.dma_copy examples write it, against numpy on random rows; oob_mode error and
skip; the legacy dst_rmw_op; its DMA cost; and its rules as clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
import trnsim.nki.legacy_isa as lisa
from trnsim.errors import BoundsError, DtypeError, ShapeMismatchError, UsageError
from trnsim.isa import Opcode


@nki.jit
def gather(data, idx, form):
    p, m = idx.shape[0], data.shape[1]
    out = nl.ndarray((p, m), dtype=data.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(p)[:, None]
    i_f = nl.arange(m)[None, :]
    idx_tile = nl.load(idx)
    if form == "expr":
        tile = nl.load(data[idx_tile, i_f])
    elif form == "sub-tile":
        tile = nl.load(data[idx_tile[i_p, 0], i_f])
    else:
        tile = nl.load(data[idx_tile, :])
    nl.store(out, tile)
    return out


@pytest.mark.parametrize("form", ["expr", "sub-tile", "slice"])
def test_load_gathers_the_rows_the_index_tile_names(rng: np.random.Generator, form: str) -> None:
    n, m, p = int(rng.integers(2, 300)), int(rng.integers(1, 600)), int(rng.integers(1, 129))
    data = rng.standard_normal((n, m)).astype(np.float32)
    idx = rng.integers(0, n, size=(p, 1)).astype(np.int32)  # repeats allowed: a gather may read a row twice
    np.testing.assert_array_equal(nki.simulate(gather)(data, idx, form), data[idx[:, 0]])


@nki.jit
def gather_3d(data, idx, j):
    p, _, m = idx.shape[0], data.shape[1], data.shape[2]
    out = nl.ndarray((p, m), dtype=data.dtype, buffer=nl.shared_hbm)
    idx_tile = nl.load(idx)
    nl.store(out, nl.load(data[idx_tile, j, 0:m]))
    return out


def test_gather_from_a_3d_tensor_with_an_int_dim(rng: np.random.Generator) -> None:
    data = rng.standard_normal((int(rng.integers(2, 64)), 5, int(rng.integers(1, 200)))).astype(np.float32)
    idx = rng.integers(0, data.shape[0], size=(int(rng.integers(1, 129)), 1)).astype(np.uint32)
    j = int(rng.integers(0, 5))
    np.testing.assert_array_equal(nki.simulate(gather_3d)(data, idx, j), data[idx[:, 0], j])


@nki.jit
def scatter(src, idx, rows):
    out = nl.ndarray((rows, src.shape[1]), dtype=src.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.zeros((rows, src.shape[1]), dtype=src.dtype))
    idx_tile = nl.load(idx)
    nl.store(out[idx_tile, nl.arange(src.shape[1])[None, :]], nl.load(src))
    return out


def test_store_scatters_each_partition_to_its_row(rng: np.random.Generator) -> None:
    rows, m, p = 128, int(rng.integers(1, 300)), int(rng.integers(1, 129))
    src = rng.standard_normal((p, m)).astype(np.float32)
    idx = rng.permutation(rows)[:p].reshape(p, 1).astype(np.int32)
    want = np.zeros((rows, m), np.float32)
    want[idx[:, 0]] = src
    np.testing.assert_array_equal(nki.simulate(scatter)(src, idx, rows), want)


@nki.jit
def gather_oob(data, idx, skip):
    p, m = idx.shape[0], data.shape[1]
    out = nl.ndarray((p, m), dtype=data.dtype, buffer=nl.shared_hbm)
    idx_tile = nl.load(idx)
    t = nl.ndarray((p, m), dtype=data.dtype, buffer=nl.sbuf)
    nisa.memset(t, -1.0)
    mode = nisa.oob_mode.skip if skip else nisa.oob_mode.error
    nisa.dma_copy(dst=t, src=data[idx_tile, nl.arange(m)[None, :]], oob_mode=mode)  # the kernel line
    nl.store(out, t)
    return out


def test_oob_skip_leaves_out_of_bounds_rows_untouched(rng: np.random.Generator) -> None:
    n, m, p = int(rng.integers(2, 100)), int(rng.integers(1, 300)), int(rng.integers(2, 129))
    data = rng.standard_normal((n, m)).astype(np.float32)
    idx = rng.integers(-n, 2 * n, size=(p, 1)).astype(np.int32)
    idx[0, 0] = n  # at least one row past the end
    ok = (idx[:, 0] >= 0) & (idx[:, 0] < n)
    want = np.full((p, m), -1.0, np.float32)
    want[ok] = data[idx[ok, 0]]
    np.testing.assert_array_equal(nki.simulate(gather_oob)(data, idx, True), want)


def test_oob_error_is_nki_index_error_caused_by_the_kernel_line(rng: np.random.Generator) -> None:
    n, m, p = int(rng.integers(2, 100)), int(rng.integers(1, 300)), int(rng.integers(2, 129))
    data = rng.standard_normal((n, m)).astype(np.float32)
    idx = rng.integers(0, n, size=(p, 1)).astype(np.int32)
    bad_p = int(rng.integers(0, p))
    idx[bad_p, 0] = n + int(rng.integers(0, 5))
    with pytest.raises(IndexError) as info:
        nki.simulate(gather_oob)(data, idx, False)
    first_bad = idx[: bad_p + 1, 0]
    first_row = int(first_bad[(first_bad < 0) | (first_bad >= n)][0])
    # NKI's simulator names the element of the flattened tensor, as numpy does
    assert str(info.value) == f"index {first_row * m} is out of bounds for axis 0 with size {n * m}"
    cause = info.value.__cause__
    assert isinstance(cause, BoundsError)
    assert "test_indirect_dma_b.py" in str(cause) and f"row {first_row}" in str(cause)


@nki.jit
def rmw_scatter(src, idx, rows):
    out = nl.ndarray((rows, src.shape[1]), dtype=src.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.full((rows, src.shape[1]), 1.0, dtype=src.dtype))
    idx_tile = nl.load(idx)
    lisa.dma_copy(dst=out[idx_tile, nl.arange(src.shape[1])[None, :]], src=nl.load(src), dst_rmw_op=np.add)
    return out


def test_legacy_dst_rmw_op_adds_into_the_rows(rng: np.random.Generator) -> None:
    rows, m, p = 128, int(rng.integers(1, 300)), int(rng.integers(1, 129))
    src = rng.standard_normal((p, m)).astype(np.float32)
    idx = rng.permutation(rows)[:p].reshape(p, 1).astype(np.int32)
    want = np.ones((rows, m), np.float32)
    want[idx[:, 0]] += src
    np.testing.assert_allclose(nki.simulate(rmw_scatter)(src, idx, rows), want, rtol=1e-6)


def test_gather_is_one_dma_of_one_descriptor_per_row() -> None:
    p, m = 64, 512
    prof = nki.profile(gather, target="trn2", mode="timing")(
        nki.TensorSpec((128, m), "float32"), nki.TensorSpec((p, 1), "int32"), "expr"
    )
    loads = [i for i in prof.instructions if i.opcode is Opcode.DMA_COPY and i.dma_bytes == p * m * 4]
    gather_dma = loads[0]  # the gather (the store of the result moves the same bytes from SBUF)
    assert gather_dma.dma_rows == p and gather_dma.dma_row_bytes == m * 4 and gather_dma.hbm_bytes == p * m * 4


@nki.jit
def bad(which, data, idx):
    i_f = nl.arange(data.shape[1])[None, :]
    if which == "float-index":
        t = nl.load(idx[:, 0:1])
        nl.load(data[nl.copy(t, dtype=nl.float32), i_f])
    elif which == "wide-index":
        t = nl.load(idx)
        nl.load(data[t, i_f])
    elif which == "hbm-index":
        nl.load(data[idx, i_f])
    elif which == "sbuf-data":
        nl.load(nl.load(data)[nl.load(idx[:, 0:1]), i_f])
    elif which == "second-dim":
        t = nl.load(idx[:, 0:1])
        nl.load(data[nl.arange(4)[:, None], t])
    elif which == "rmw-skip":
        t = nl.load(idx[:, 0:1])
        lisa.dma_copy(dst=data[t, i_f], src=nl.load(data[0:4]), dst_rmw_op=np.add, oob_mode=nisa.oob_mode.skip)


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("float-index", DtypeError, "integers"),
        ("wide-index", ShapeMismatchError, "[P, 1]"),
        ("hbm-index", UsageError, "SBUF"),
        ("sbuf-data", UsageError, "HBM"),
        ("second-dim", UsageError, "dim 0"),
        ("rmw-skip", UsageError, "dst_rmw_op"),
    ],
)
def test_bad_index_tiles_are_clear_errors(which: str, error: type, words: str) -> None:
    data = np.zeros((16, 8), np.float32)
    idx = np.zeros((4, 2), np.int32)
    with pytest.raises(error, match=r"test_indirect_dma_b\.py") as info:
        nki.simulate(bad)(which, data, idx)
    assert words in str(info.value)


@nki.jit
def ap_scatter_skip(src, idx, rows):
    p, m = src.shape
    out = nl.ndarray((rows, m), dtype=src.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.zeros((rows, m), dtype=src.dtype))
    idx_tile = nl.ndarray((p, 1), dtype=idx.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=idx_tile, src=idx)
    data = nl.ndarray((p, m), dtype=src.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=data, src=src)
    # the nki-library KV-cache update: rows marked invalid with uint32 max are skipped
    dst = out.ap(pattern=[[m, p], [1, m]], vector_offset=idx_tile, indirect_dim=0)
    nisa.dma_copy(dst=dst, src=data, oob_mode=nisa.oob_mode.skip)
    return out


def test_ap_vector_offset_scatter_skips_invalid_rows(rng: np.random.Generator) -> None:
    rows, m, p = 128, int(rng.integers(1, 200)), int(rng.integers(2, 129))
    src = rng.standard_normal((p, m)).astype(np.float32)
    idx = rng.permutation(rows)[:p].reshape(p, 1).astype(np.uint32)
    invalid = rng.random(p) < 0.3
    idx[invalid, 0] = np.iinfo(np.uint32).max
    want = np.zeros((rows, m), np.float32)
    want[idx[~invalid, 0].astype(np.int64)] = src[~invalid]
    np.testing.assert_array_equal(nki.simulate(ap_scatter_skip)(src, idx, rows), want)


@nki.jit
def ap_gather(data, idx, skip):
    p, m = idx.shape[0], data.shape[1]
    idx_tile = nl.ndarray((p, 1), dtype=idx.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=idx_tile, src=idx)
    t = nl.ndarray((p, m), dtype=data.dtype, buffer=nl.sbuf)
    nisa.memset(t, -1.0)
    src = data.ap(pattern=[[m, p], [1, m]], vector_offset=idx_tile, indirect_dim=0)
    nisa.dma_copy(dst=t, src=src, oob_mode=nisa.oob_mode.skip if skip else nisa.oob_mode.error)
    out = nl.ndarray((p, m), dtype=data.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out


def test_ap_vector_offset_gather_under_both_oob_modes(rng: np.random.Generator) -> None:
    n, m, p = int(rng.integers(2, 100)), int(rng.integers(1, 200)), int(rng.integers(2, 129))
    data = rng.standard_normal((n, m)).astype(np.float32)
    idx = rng.integers(0, 2 * n, size=(p, 1)).astype(np.int32)
    idx[0, 0] = n + 1
    ok = idx[:, 0] < n
    want = np.full((p, m), -1.0, np.float32)
    want[ok] = data[idx[ok, 0]]
    np.testing.assert_array_equal(nki.simulate(ap_gather)(data, idx, True), want)
    with pytest.raises(IndexError, match=f"index {(n + 1) * m} is out of bounds for axis 0 with size {n * m}"):
        nki.simulate(ap_gather)(data, idx, False)

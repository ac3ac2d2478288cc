"""A PSUM tile may span several banks; one matmul output must stay inside one bank (NC-v2/v3).

NKI docs: the architecture guide gives VectorE/ScalarE a free size of "4K elements for PSUM" (all 8 banks of
2 KiB), `tile_size.psum_fmax` "does not represent the free-dim size per partition" (NKI 0.4), and "each
nc_matmul can only write to a single PSUM bank" (nki.isa.nc_matmul: moving free <= 512 on NC-v2/v3, up to
8 banks on NC-v4). nki-library's rotational top-k allocates a [128, 1024] fp32 PSUM tile and fills it with
two 512-column matmuls. Checked against numpy on fresh random data; each rule's error names the kernel line.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import TileShapeError

BANK_FP32 = 512  # fp32 elements per partition in one 2 KiB PSUM bank


@nki.jit
def banks_side_by_side(a, b):
    """out = a.T @ b for b up to 8 banks wide, through one PSUM tile spanning its banks, copied out at once."""
    k, m = a.shape
    n = b.shape[1]
    out = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.shared_hbm)
    sa = nl.ndarray((k, m), dtype=a.dtype, buffer=nl.sbuf)
    sb = nl.ndarray((k, n), dtype=b.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=sa, src=a)
    nisa.dma_copy(dst=sb, src=b)
    acc = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.psum)
    for j in range((n + BANK_FP32 - 1) // BANK_FP32):
        cols = nl.ds(j * BANK_FP32, min(BANK_FP32, n - j * BANK_FP32))
        nisa.nc_matmul(acc[:, cols], sa, sb[:, cols])
    res = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)  # one VectorE read across every bank of the tile
    nisa.dma_copy(dst=out, src=res)
    return out


@pytest.mark.parametrize("banks", [2, 3, 8])
def test_matmuls_fill_a_tile_wider_than_a_bank(rng: np.random.Generator, banks: int) -> None:
    k, m = int(rng.integers(1, 129)), int(rng.integers(1, 129))
    n = BANK_FP32 * (banks - 1) + int(rng.integers(1, BANK_FP32 + 1))
    a = rng.standard_normal((k, m)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    got = nki.simulate(banks_side_by_side, target="trn2")(a, b)
    np.testing.assert_allclose(got, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@nki.jit
def legacy_accumulate_into_second_bank(a, b):
    """`psum[:, 512:1024] += nl.matmul(...)` over two K tiles, written into the second bank of a 2-bank tile."""
    k2, m = a.shape
    n = b.shape[1]
    out = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.shared_hbm)
    acc = nl.zeros((m, 2 * BANK_FP32), dtype=nl.float32, buffer=nl.psum)
    for kt in nl.affine_range(k2 // 128):
        sa = nl.load(a[kt * 128 : (kt + 1) * 128, :])
        sb = nl.load(b[kt * 128 : (kt + 1) * 128, :])
        acc[:, BANK_FP32 : BANK_FP32 + n] += nl.matmul(sa, sb, transpose_x=True)
    nl.store(out, value=nl.copy(acc[:, BANK_FP32 : BANK_FP32 + n]))
    return out


def test_legacy_accumulation_into_the_second_bank(rng: np.random.Generator) -> None:
    m, n = int(rng.integers(1, 129)), int(rng.integers(1, BANK_FP32 + 1))
    a = rng.standard_normal((256, m)).astype(np.float32)
    b = rng.standard_normal((256, n)).astype(np.float32)
    got = nki.simulate(legacy_accumulate_into_second_bank, target="trn2")(a, b)
    np.testing.assert_allclose(got, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@nki.jit
def matmul_across_a_bank_boundary(a, b):
    k, m = a.shape
    sa = nl.ndarray((k, m), dtype=a.dtype, buffer=nl.sbuf)
    sb = nl.ndarray((k, BANK_FP32), dtype=b.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=sa, src=a)
    nisa.dma_copy(dst=sb, src=b)
    acc = nl.ndarray((m, 2 * BANK_FP32), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul(acc[:, 256 : 256 + BANK_FP32], sa, sb)  # ERR
    return acc


@nki.jit
def legacy_matmul_across_a_bank_boundary(a, b):
    acc = nl.zeros((128, 2 * BANK_FP32), dtype=nl.float32, buffer=nl.psum)
    acc[:, 100:600] += nl.matmul(nl.load(a), nl.load(b), transpose_x=True)  # ERR
    return acc


@nki.jit
def psum_tile_over_the_partition(a):
    acc = nl.ndarray((128, 8 * BANK_FP32 + 1), dtype=nl.float32, buffer=nl.psum)  # ERR
    return acc


def _marked_line(kernel: Any) -> str:
    """'file:line' of the line of `kernel` that ends with `# ERR`."""
    fn = inspect.unwrap(kernel.fn if isinstance(kernel, nki.Kernel) else kernel)
    lines, start = inspect.getsourcelines(fn)
    hit = next(start + i for i, text in enumerate(lines) if text.rstrip().endswith("# ERR"))
    return f"{fn.__code__.co_filename}:{hit}"


@pytest.mark.parametrize(
    ("kernel", "span"),
    [(matmul_across_a_bank_boundary, "bytes 1024..3071"), (legacy_matmul_across_a_bank_boundary, "bytes 400..2399")],
    ids=["isa", "legacy"],
)
def test_one_matmul_output_crossing_a_bank_boundary_is_refused(kernel: Any, span: str) -> None:
    a = np.zeros((128, 128), np.float32)
    b = np.zeros((128, 500 if kernel is legacy_matmul_across_a_bank_boundary else BANK_FP32), np.float32)
    with pytest.raises(TileShapeError) as info:
        nki.simulate(kernel, target="trn2")(a, b)
    err = info.value
    assert err.rule == "psum-bank", str(err)
    assert err.location == _marked_line(kernel), str(err)
    for says in (span, "across PSUM banks 0..1", "1 bank(s) of 2048 B", "multiple of 512 fp32"):
        assert says in str(err), str(err)


@nki.jit
def matmul_straddling_two_banks(a, b):
    """out = a.T @ b written at PSUM columns 256.. of a 2-bank tile: inside one bank only when n <= 256."""
    k, m = a.shape
    n = b.shape[1]
    out = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.shared_hbm)
    sa = nl.ndarray((k, m), dtype=a.dtype, buffer=nl.sbuf)
    sb = nl.ndarray((k, n), dtype=b.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=sa, src=a)
    nisa.dma_copy(dst=sb, src=b)
    acc = nl.ndarray((m, 2 * BANK_FP32), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul(acc[:, 256 : 256 + n], sa, sb)
    res = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc[:, 256 : 256 + n])
    nisa.dma_copy(dst=out, src=res)
    return out


@pytest.mark.parametrize(("target", "n_low", "n_high"), [("trn2", 1, 256), ("trn3", 257, BANK_FP32)])
def test_which_core_lets_one_matmul_cross_banks(rng: np.random.Generator, target: str, n_low: int, n_high: int) -> None:
    """Columns 256..256+n: one bank when n <= 256 (any core); two banks otherwise, legal on NC-v4 (trn3, whose
    `max_tile_banks` is 8: "the size of 8x PSUM banks") and refused on NC-v3 (trn2)."""
    k, m, n = int(rng.integers(1, 129)), int(rng.integers(1, 129)), int(rng.integers(n_low, n_high + 1))
    a = rng.standard_normal((k, m)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    got = nki.simulate(matmul_straddling_two_banks, target=target)(a, b)
    np.testing.assert_allclose(got, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    if target == "trn2":
        wide = rng.standard_normal((k, 257)).astype(np.float32)
        with pytest.raises(TileShapeError, match=r"across PSUM banks 0\.\.1"):
            nki.simulate(matmul_straddling_two_banks, target=target)(a, wide)


def test_a_psum_tile_over_the_whole_partition_is_refused() -> None:
    with pytest.raises(TileShapeError) as info:
        nki.simulate(psum_tile_over_the_partition, target="trn2")(np.zeros((1, 1), np.float32))
    err = info.value
    assert err.rule == "psum-partition", str(err)
    assert err.location == _marked_line(psum_tile_over_the_partition), str(err)
    for says in ("16388 bytes per partition", "over 16384", "8 banks of 2048 B"):
        assert says in str(err), str(err)


@nki.jit
def transpose_into_column(a, col):
    """A TensorE transpose of a [p, f] tile into PSUM columns col..col+p of a 2-bank fp32 tile."""
    p, f = a.shape
    t = nl.ndarray((p, f), dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a)
    acc = nl.ndarray((f, 2 * BANK_FP32), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_transpose(dst=acc[:, col : col + p], data=t, engine=nisa.tensor_engine)
    res = nl.ndarray((f, p), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc[:, col : col + p])
    out = nl.ndarray((f, p), dtype=nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=res)
    return out


def test_a_tensore_transpose_is_a_matmul_for_the_bank_rule(rng: np.random.Generator) -> None:
    """nc_transpose on TensorE is nc_matmul(is_transpose=True) (NKI docs): its output stays inside one bank."""
    p, f = int(rng.integers(2, 129)), int(rng.integers(1, 129))
    a = rng.standard_normal((p, f)).astype(np.float32)
    col = BANK_FP32 + int(rng.integers(0, BANK_FP32 - p + 1))  # inside the second bank
    np.testing.assert_array_equal(nki.simulate(transpose_into_column, target="trn2")(a, col), a.T)
    with pytest.raises(TileShapeError, match=r"across PSUM banks 0\.\.1"):
        nki.simulate(transpose_into_column, target="trn2")(a, BANK_FP32 - 1)  # columns 511..511+p-1

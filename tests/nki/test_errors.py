"""Kernels that break a hardware rule get trnsim's own errors, naming the rule, the limit and the kernel line.

Every offending call in the kernels below ends with a marker comment (`# ERR`, `# BAD`, ...); the tests
check that the error's `location` is exactly that line of this file. Uninitialised reads yield NaN (4
for integers) and add a warning to the profile. Misuse of any kind raises a `TrnsimError` subclass,
never a bare Python exception from inside the simulator.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.errors import (
    BoundsError,
    CapacityError,
    DtypeError,
    KernelError,
    ShapeMismatchError,
    SpecError,
    TileShapeError,
    TrnsimError,
    UsageError,
)
from trnsim.nki import legacy_isa as lisa

TARGET = "trn2"
SPEC = nki.get_target_spec(TARGET)
PMAX = SPEC.core.sbuf.partitions  # 128
BANK_BYTES = SPEC.core.psum.bank_bytes  # 2048
STATIONARY_FMAX = SPEC.core.tensor.pe_cols  # 128
MOVING_FMAX = SPEC.core.tensor.moving_fmax  # 512
SBUF_BYTES = SPEC.core.sbuf.partition_bytes  # 229376 per partition
PSUM_BYTES = SPEC.core.psum.partition_bytes  # 16384 per partition (8 banks)
PSUM_BANKS = SPEC.core.psum.banks  # 8


def where(kernel: Any, marker: str = "ERR") -> str:
    """'file:line' of the single line of `kernel`'s source that ends with `# marker`."""
    fn = inspect.unwrap(kernel.fn if isinstance(kernel, nki.Kernel) else kernel)
    lines, start = inspect.getsourcelines(fn)
    hits = [start + i for i, text in enumerate(lines) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, f"marker {marker!r} must occur once in {fn.__name__}"
    return f"{fn.__code__.co_filename}:{hits[0]}"


def run(kernel: Any, *args: Any) -> Any:
    return nki.simulate(kernel, target=TARGET)(*args)


def expect(
    cls: type[KernelError], kernel: Any, *args: Any, rule: str, says: tuple[str, ...], marker: str = "ERR"
) -> KernelError:
    """Run `kernel`, expecting `cls` with `rule`, at the marked line, with every string of `says` in the message."""
    with pytest.raises(cls) as info:
        run(kernel, *args)
    err = info.value
    assert err.rule == rule, str(err)
    assert err.location == where(kernel, marker), str(err)
    text = str(err)
    assert text.startswith(f"{err.location}: [{rule}] "), text
    for s in says:
        assert s in text, f"{s!r} not in {text!r}"
    return err


def hbm(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


# -- partition dim > 128 ------------------------------------------------------------------------------
@nki.jit
def partition_isa(x):
    t = nl.ndarray((256, 64), nl.float32, buffer=nl.sbuf)  # ERR
    return t


@nki.jit
def partition_psum_isa(x):
    t = nl.ndarray((129, 64), nl.float32, buffer=nl.psum)  # ERR
    return t


@nki.jit
def partition_legacy(x):
    t = nl.load(x)  # ERR
    return t


@pytest.mark.parametrize(
    ("kernel", "shape"),
    [(partition_isa, (8, 8)), (partition_psum_isa, (8, 8)), (partition_legacy, (256, 64))],
    ids=["isa-sbuf", "isa-psum", "legacy-load"],
)
def test_partition_dim_over_128(kernel: Any, shape: tuple[int, ...]) -> None:
    err = expect(TileShapeError, kernel, hbm(*shape), rule="partition-dim", says=(f"exceeds {PMAX}", "pmax"))
    assert "129" in str(err) or "256" in str(err)


# -- PSUM tile over the whole PSUM partition (8 banks of 2 KiB; one matmul's bank rule: test_psum_multibank_f) --
@nki.jit
def psum_bank_fp32(x):
    ok = nl.ndarray((128, 8 * 512), nl.float32, buffer=nl.psum)  # exactly the 8 banks
    big = nl.ndarray((128, 8 * 512 + 1), nl.float32, buffer=nl.psum)  # ERR
    return ok, big


@nki.jit
def psum_bank_bf16(x):
    ok = nl.ndarray((128, 1024), nl.bfloat16, buffer=nl.psum)  # 2 KiB of bf16
    big = nl.ndarray((128, 8, 1025), nl.bfloat16, buffer=nl.psum)  # ERR
    return ok, big


@nki.jit
def psum_bank_legacy(x):
    big = nl.zeros((128, 8 * 1024), nl.float32, buffer=nl.psum)  # ERR
    return big


@pytest.mark.parametrize(
    ("kernel", "needed"),
    [(psum_bank_fp32, (8 * 512 + 1) * 4), (psum_bank_bf16, 8 * 1025 * 2), (psum_bank_legacy, 8 * 1024 * 4)],
    ids=["isa-fp32", "isa-bf16-3d", "legacy-zeros"],
)
def test_psum_tile_over_the_psum_partition(kernel: Any, needed: int) -> None:
    expect(
        TileShapeError,
        kernel,
        hbm(8, 8),
        rule="psum-partition",
        says=(f"{needed} bytes per partition", f"over {8 * BANK_BYTES}", f"8 banks of {BANK_BYTES} B"),
    )


# -- matmul stationary free > 128, moving free > 512 -------------------------------------------------
@nki.jit
def stationary_free_isa(x):
    st = nl.ndarray((128, 256), nl.bfloat16, buffer=nl.sbuf)
    mv = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
    ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, st, mv)  # ERR


@nki.jit
def stationary_free_legacy_isa(x):
    st = nl.ndarray((128, 256), nl.bfloat16, buffer=nl.sbuf)
    mv = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
    return lisa.nc_matmul(st, mv)  # ERR


@nki.jit
def stationary_free_nl_matmul(x):
    xt = nl.ndarray((128, 256), nl.bfloat16, buffer=nl.sbuf)
    y = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
    return nl.matmul(xt, y, transpose_x=True)  # ERR


@pytest.mark.parametrize(
    "kernel",
    [stationary_free_isa, stationary_free_legacy_isa, stationary_free_nl_matmul],
    ids=["isa", "legacy-isa", "nl.matmul"],
)
def test_matmul_stationary_free_over_128(kernel: Any) -> None:
    expect(
        TileShapeError,
        kernel,
        hbm(8, 8),
        rule="gemm_stationary_fmax",
        says=("stationary free size 256", f"exceeds {STATIONARY_FMAX}", "gemm_stationary_fmax"),
    )


@nki.jit
def moving_free_isa(x):
    st = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    mv = nl.ndarray((128, 1024), nl.bfloat16, buffer=nl.sbuf)
    ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(dst=ps, stationary=st, moving=mv)  # ERR


@nki.jit
def moving_free_legacy_isa(x):
    st = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    mv = nl.ndarray((128, 1024), nl.bfloat16, buffer=nl.sbuf)
    return lisa.nc_matmul(st, mv)  # ERR


@nki.jit
def moving_free_nl_matmul(x):
    a = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    b = nl.ndarray((128, 1024), nl.bfloat16, buffer=nl.sbuf)
    return nl.matmul(a, b)  # ERR


@pytest.mark.parametrize(
    "kernel",
    [moving_free_isa, moving_free_legacy_isa, moving_free_nl_matmul],
    ids=["isa", "legacy-isa", "nl.matmul"],
)
def test_matmul_moving_free_over_512(kernel: Any) -> None:
    expect(
        TileShapeError,
        kernel,
        hbm(8, 8),
        rule="gemm_moving_fmax",
        says=("moving free size 1024", f"exceeds {MOVING_FMAX}", "gemm_moving_fmax"),
    )


@nki.jit
def matmul_at_limits(a_t, b):
    st = nl.ndarray((128, 128), nl.float32, buffer=nl.sbuf)
    mv = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=st, src=a_t)
    nisa.dma_copy(dst=mv, src=b)
    ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, st, mv)
    sb = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=sb, src=ps)
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=sb)
    return out


def test_matmul_exactly_at_the_limits_runs(rng: np.random.Generator) -> None:
    a_t = rng.standard_normal((128, 128)).astype(np.float32)
    b = rng.standard_normal((128, 512)).astype(np.float32)
    np.testing.assert_allclose(run(matmul_at_limits, a_t, b), a_t.T @ b, rtol=1e-4, atol=1e-3)


# -- contraction dims that differ ---------------------------------------------------------------------
@nki.jit
def contraction_isa(x):
    st = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    mv = nl.ndarray((64, 512), nl.bfloat16, buffer=nl.sbuf)
    ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, st, mv)  # ERR


@nki.jit
def contraction_legacy_isa(x):
    st = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    mv = nl.ndarray((64, 512), nl.bfloat16, buffer=nl.sbuf)
    return lisa.nc_matmul(st, mv)  # ERR


@nki.jit
def contraction_nl_matmul(x):
    a = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    b = nl.ndarray((64, 512), nl.bfloat16, buffer=nl.sbuf)
    return nl.matmul(a, b, transpose_x=True)  # ERR


@pytest.mark.parametrize(
    "kernel",
    [contraction_isa, contraction_legacy_isa, contraction_nl_matmul],
    ids=["isa", "legacy-isa", "nl.matmul"],
)
def test_matmul_contraction_dims_differ(kernel: Any) -> None:
    expect(
        ShapeMismatchError,
        kernel,
        hbm(8, 8),
        rule="contraction",
        says=("contraction dims differ", "stationary has 128 partitions", "moving has 64"),
    )


# -- fp32 mixed with bf16 in nc_matmul ----------------------------------------------------------------
@nki.jit
def mixed_dtype_isa(x):
    st = nl.ndarray((128, 128), nl.float32, buffer=nl.sbuf)
    mv = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
    ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, st, mv)  # ERR


@nki.jit
def mixed_dtype_legacy_isa(x):
    st = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
    mv = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    return lisa.nc_matmul(st, mv)  # ERR


@nki.jit
def mixed_dtype_nl_matmul(x):
    a = nl.ndarray((128, 128), nl.float32, buffer=nl.sbuf)
    b = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
    return nl.matmul(a, b, transpose_x=True)  # ERR


@pytest.mark.parametrize(
    "kernel",
    [mixed_dtype_isa, mixed_dtype_legacy_isa, mixed_dtype_nl_matmul],
    ids=["isa", "legacy-isa", "nl.matmul"],
)
def test_matmul_fp32_mixed_with_bf16(kernel: Any) -> None:
    expect(
        DtypeError,
        kernel,
        hbm(8, 8),
        rule="matmul-dtype",
        says=("float32", "bfloat16", "the other must be too"),
    )


# -- SBUF over capacity -------------------------------------------------------------------------------
# (128, 16384) fp32 = 64 KiB per partition: three fit in trn2's 224 KiB, the fourth does not.
SBUF_TILE = (128, 16384)


@nki.jit
def sbuf_hoard_isa(x):
    keep = []
    for _ in nl.affine_range(8):
        t = nl.ndarray(SBUF_TILE, nl.float32, buffer=nl.sbuf)  # ERR
        keep.append(t)
    return x


@nki.jit
def sbuf_hoard_legacy(x):
    keep = []
    for _ in nl.affine_range(8):
        keep.append(nl.zeros(SBUF_TILE, nl.float32))  # ERR
    return x


@nki.jit
def sbuf_reuse_isa(x):
    for _ in nl.affine_range(8):
        t = nl.ndarray(SBUF_TILE, nl.float32, buffer=nl.sbuf)
        nisa.memset(dst=t, value=1.0)
    return x


@nki.jit
def sbuf_reuse_legacy(x):
    for _ in nl.affine_range(8):
        t = nl.zeros(SBUF_TILE, nl.float32)
        t[...] = 2.0
    return x


@pytest.mark.parametrize("kernel", [sbuf_hoard_isa, sbuf_hoard_legacy], ids=["isa", "legacy"])
def test_sbuf_over_capacity_with_live_tiles(kernel: Any) -> None:
    tile_bytes = SBUF_TILE[1] * 4
    live = SBUF_BYTES // tile_bytes
    expect(
        CapacityError,
        kernel,
        hbm(8, 8),
        rule="sbuf-capacity",
        says=(
            "SBUF capacity exceeded",
            f"needs {tile_bytes} bytes per partition",
            f"{live * tile_bytes} of {SBUF_BYTES} in use",
            f"by {live} live tensors",
        ),
    )


@pytest.mark.parametrize("kernel", [sbuf_reuse_isa, sbuf_reuse_legacy], ids=["isa", "legacy"])
def test_sbuf_tiles_are_freed_when_unreferenced(kernel: Any) -> None:
    prof = nki.profile(kernel, target=TARGET)(hbm(8, 8))
    tile_bytes = SBUF_TILE[1] * 4
    # Rebinding `t` frees the previous tile: at most two are ever live (the new one, before the rebind).
    assert tile_bytes <= prof.sbuf_peak_bytes <= 2 * tile_bytes
    assert prof.warnings == []


# -- PSUM over capacity (more than 8 live bank tiles) ---------------------------------------------------
@nki.jit
def psum_hoard_isa(x):
    banks = [nl.ndarray((128, 512), nl.float32, buffer=nl.psum) for _ in range(8)]
    extra = nl.ndarray((128, 2), nl.float32, buffer=nl.psum)  # ERR
    return banks, extra


@nki.jit
def psum_hoard_legacy(x):
    banks = []
    for _ in nl.affine_range(16):
        banks.append(nl.zeros((128, 128), nl.float32, buffer=nl.psum))  # ERR
    return x


@nki.jit
def psum_reuse(x):
    banks = [nl.ndarray((128, 512), nl.float32, buffer=nl.psum) for _ in range(7)]
    for _ in nl.affine_range(20):  # a tile that dies each iteration gives its bank back
        t = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
        del t
    assert len(banks) == 7
    return x


@pytest.mark.parametrize("kernel", [psum_hoard_isa, psum_hoard_legacy], ids=["isa", "legacy"])
def test_psum_over_capacity(kernel: Any) -> None:
    expect(
        CapacityError,
        kernel,
        hbm(8, 8),
        rule="psum-capacity",
        says=(
            "PSUM capacity exceeded",
            f"needs {BANK_BYTES} bytes per partition",  # even a small PSUM tile takes a whole bank
            f"{PSUM_BANKS * BANK_BYTES} of {PSUM_BYTES} in use",
            f"by {PSUM_BANKS} live tensors",
        ),
    )


def test_psum_banks_of_dead_tiles_are_reused() -> None:
    prof = nki.profile(psum_reuse, target=TARGET)(hbm(8, 8))
    assert prof.psum_peak_bytes == PSUM_BYTES  # all 8 banks in use at the peak, never more


# -- HBM slice out of bounds --------------------------------------------------------------------------
@nki.jit
def hbm_slice_isa(x):
    t = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x[0:256, :])  # ERR
    return t


@nki.jit
def hbm_store_slice_isa(x):
    t = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x)
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out[:, 256:768], src=t[:, 0:512])  # ERR
    return out


@nki.jit
def hbm_slice_legacy(x):
    t = nl.load(x[nl.ds(100, 64), :])  # ERR
    return t


@nki.jit
def hbm_index_legacy(x):
    t = nl.load(x[128])  # ERR
    return t


@pytest.mark.parametrize(
    ("kernel", "says"),
    [
        (hbm_slice_isa, ("slice 0:256", "dim 0", "(size 128)")),
        (hbm_store_slice_isa, ("slice 256:768", "dim 1", "(size 512)")),
        (hbm_slice_legacy, ("nl.ds(100, 64)", "dim 0", "(size 128)")),
        (hbm_index_legacy, ("index 128", "dim 0", "(size 128)")),
    ],
    ids=["isa-load", "isa-store", "legacy-ds", "legacy-int"],
)
def test_hbm_slice_out_of_bounds(kernel: Any, says: tuple[str, ...]) -> None:
    expect(BoundsError, kernel, hbm(128, 512), rule="bounds", says=("out of bounds", *says))


# -- index expressions: out of bounds without a mask, fine with one -------------------------------------
@nki.jit
def ragged_unmasked_load(x):
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(512)[None, :]
    t = nl.load(x[i_p, i_f])  # ERR
    return t


@nki.jit
def ragged_unmasked_store(x):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(512)[None, :]
    t = nl.load(x[i_p, i_f], mask=(i_p < x.shape[0]))
    nl.store(out[i_p, i_f], value=t)  # ERR
    return out


@nki.jit
def ragged_masked(x):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(512)[None, :]
    t = nl.load(x[i_p, i_f], mask=(i_p < x.shape[0]))
    y = nl.multiply(t, 2.0, mask=(i_p < x.shape[0]))
    nl.store(out[i_p, i_f], value=y, mask=(i_p < x.shape[0]))
    return out


@pytest.mark.parametrize("kernel", [ragged_unmasked_load, ragged_unmasked_store], ids=["load", "store"])
def test_index_expression_out_of_bounds_without_mask(kernel: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((100, 512)).astype(np.float32)
    expect(
        BoundsError,
        kernel,
        x,
        rule="bounds",
        says=("index expression reaches 0..127 in dim 0", "allowed 0..99", "mask="),
    )


def test_index_expression_with_mask_stays_in_bounds(rng: np.random.Generator) -> None:
    x = rng.standard_normal((100, 512)).astype(np.float32)
    prof = nki.profile(ragged_masked, target=TARGET)(x)
    np.testing.assert_array_equal(prof.outputs, x * 2.0)
    assert prof.warnings == []  # the masked-out lanes of the tile are never read


# -- a store of mismatched shape ----------------------------------------------------------------------
@nki.jit
def store_mismatch_legacy(x):
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    t = nl.load(x[:, 0:256])
    nl.store(out, value=t)  # ERR
    return out


@nki.jit
def store_reshaped_legacy(x):
    out = nl.ndarray((64, 1024), nl.float32, buffer=nl.shared_hbm)
    t = nl.load(x)
    nl.store(out, value=t)  # ERR
    return out


@nki.jit
def store_assign_legacy(x):
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    t = nl.load(x[:, 0:256])
    out[...] = t  # ERR
    return out


@nki.jit
def store_mismatch_isa(x):
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    t = nl.ndarray((128, 256), nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x[:, 0:256])
    nisa.dma_copy(dst=out, src=t)  # ERR
    return out


@pytest.mark.parametrize(
    ("kernel", "rule", "says"),
    [
        (store_mismatch_legacy, "store-shape", ("[128, 256] tile", "[128, 512] destination", "shapes must match")),
        (store_reshaped_legacy, "store-shape", ("[128, 512] tile", "[64, 1024] destination", "shapes must match")),
        (store_assign_legacy, "store-shape", ("[128, 256] tile", "[128, 512] destination", "shapes must match")),
        (store_mismatch_isa, "shape", ("32768 elements [128, 256]", "65536 elements [128, 512]", "must match")),
    ],
    ids=["nl.store", "nl.store-reshaped", "assign", "isa-dma_copy"],
)
def test_store_of_mismatched_shape(kernel: Any, rule: str, says: tuple[str, ...], rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 512)).astype(np.float32)
    expect(ShapeMismatchError, kernel, x, rule=rule, says=says)


@nki.jit
def store_unit_dims_legacy(x):
    out = nl.ndarray((128,), nl.float32, buffer=nl.shared_hbm)
    t = nl.load(x)  # [128, 1]
    nl.store(out, value=t)
    return out


def test_store_drops_unit_dims(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 1)).astype(np.float32)
    np.testing.assert_array_equal(run(store_unit_dims_legacy, x), x[:, 0])


# -- reads of uninitialised memory: NaN (4 for integers) and a profile warning -------------------------
@nki.jit
def uninit_isa(x):
    t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)  # UNINIT
    return out


@nki.jit
def uninit_legacy(x):
    t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nl.store(out, value=t)  # UNINIT
    return out


@nki.jit
def uninit_compute(x):
    a = nl.load(x)
    b = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    c = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=c, data1=a, data2=b, op=nl.add)  # UNINIT
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nl.store(out, value=c)
    return out


@nki.jit
def half_written(x):
    t = nl.ndarray((128, 64), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[0:64, :], src=x[0:64, :])
    out = nl.ndarray((128, 64), x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)  # UNINIT
    return out


def _check_uninit(kernel: Any, x: np.ndarray, poison: str) -> np.ndarray:
    prof = nki.profile(kernel, target=TARGET)(x)
    loc = where(kernel, "UNINIT")
    hits = [w for w in prof.warnings if "uninitialised memory" in w]
    assert len(hits) == 1, prof.warnings
    assert hits[0].startswith(f"{loc}: read of uninitialised memory"), hits[0]
    assert f"reads as {poison}" in hits[0]
    return np.asarray(prof.outputs)


@pytest.mark.parametrize("kernel", [uninit_isa, uninit_legacy], ids=["isa", "legacy"])
def test_uninitialised_float_reads_nan_and_warns(kernel: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 64)).astype(np.float32)
    out = _check_uninit(kernel, x, "NaN")
    assert out.dtype == np.float32 and np.isnan(out).all()


@pytest.mark.parametrize("kernel", [uninit_isa, uninit_legacy], ids=["isa", "legacy"])
def test_uninitialised_int_reads_4_and_warns(kernel: Any, rng: np.random.Generator) -> None:
    x = rng.integers(-100, 100, size=(128, 64), dtype=np.int32)
    out = _check_uninit(kernel, x, "4")
    assert out.dtype == np.int32 and (out == 4).all()


def test_uninitialised_bf16_reads_nan(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 64)).astype(dtypes.bfloat16)
    out = _check_uninit(uninit_isa, x, "NaN")
    assert np.isnan(out.astype(np.float32)).all()


def test_uninitialised_operand_poisons_compute(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 64)).astype(np.float32)
    assert np.isnan(_check_uninit(uninit_compute, x, "NaN")).all()


def test_partly_written_tile_reads_nan_only_where_unwritten(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 64)).astype(np.float32)
    out = _check_uninit(half_written, x, "NaN")
    np.testing.assert_array_equal(out[:64], x[:64])
    assert np.isnan(out[64:]).all()


def test_initialised_kernel_has_no_warnings(rng: np.random.Generator) -> None:
    a_t = rng.standard_normal((128, 128)).astype(np.float32)
    b = rng.standard_normal((128, 512)).astype(np.float32)
    assert nki.profile(matmul_at_limits, target=TARGET)(a_t, b).warnings == []


# -- sweep: other misuse raises a TrnsimError subclass at the offending line --------------------------
# Each kernel takes x: HBM [128, 512] fp32; the offending call is marked `# BAD`.
def m_list_as_tile_isa(x):
    t = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_copy(dst=t, src=[[1.0, 2.0]])  # BAD


def m_list_as_tile_dma(x):
    nisa.dma_copy(dst=[0.0] * 4, src=x)  # BAD


def m_list_as_tile_exp(x):
    return nl.exp([[1.0, 2.0]])  # BAD


def m_scalar_as_tile_exp(x):
    return nl.exp(1.0)  # BAD


def m_list_as_tile_matmul(x):
    return nl.matmul([[1.0]], [[2.0]])  # BAD


def m_list_as_tile_transpose(x):
    return nl.transpose([[1.0]])  # BAD


def m_list_as_tile_copy(x):
    return nl.copy([[1.0]])  # BAD


def m_list_as_tile_sum(x):
    return nl.sum([[1.0]], axis=1)  # BAD


def m_list_as_tile_mean(x):
    return nl.mean([[1.0]], axis=1)  # BAD


def m_list_as_tile_softmax(x):
    return nl.softmax([[1.0]])  # BAD


def m_list_as_tile_broadcast(x):
    return nl.broadcast_to([[1.0]], (128, 4))  # BAD


def m_list_as_tile_store(x):
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    nl.store(out, value=[[1.0]])  # BAD


def m_list_as_store_dst(x):
    t = nl.load(x)
    nl.store([[0.0]], value=t)  # BAD


def m_list_as_load_src(x):
    return nl.load([[1.0]])  # BAD


def m_list_legacy_isa_matmul(x):
    return lisa.nc_matmul([[1.0]], [[2.0]])  # BAD


def m_list_legacy_isa_activation(x):
    return lisa.activation(nl.exp, [[1.0]])  # BAD


def m_list_legacy_isa_tensor_tensor(x):
    return lisa.tensor_tensor([1.0], [2.0], nl.add)  # BAD


def m_list_legacy_isa_tensor_scalar(x):
    return lisa.tensor_scalar([1.0], nl.add, 1.0)  # BAD


def m_list_legacy_isa_tensor_copy(x):
    return lisa.tensor_copy([1.0])  # BAD


def m_list_legacy_isa_transpose(x):
    return lisa.nc_transpose([1.0])  # BAD


def m_list_legacy_isa_reduce(x):
    return lisa.tensor_reduce(nl.add, [1.0], axis=1)  # BAD


def m_list_legacy_isa_bn_stats(x):
    return lisa.bn_stats([1.0])  # BAD


def m_list_legacy_isa_affine_select(x):
    return lisa.affine_select(True, [1.0], 0.0)  # BAD


def m_reduce_axis0_isa(x):
    t = nl.load(x)
    d = nl.ndarray((1, 512), nl.float32)
    nisa.tensor_reduce(dst=d, op=nl.add, data=t, axis=0)  # BAD


def m_reduce_axis0_nl(x):
    t = nl.load(x)
    return nl.sum(t, axis=0)  # BAD


def m_reduce_axis0_legacy_isa(x):
    t = nl.load(x)
    return lisa.tensor_reduce(nl.add, t, axis=0)  # BAD


def m_reduce_axis_none(x):
    t = nl.load(x)
    return nl.max(t, axis=None)  # BAD


def m_reduce_axis_str(x):
    t = nl.load(x)
    d = nl.ndarray((128, 1), nl.float32)
    nisa.tensor_reduce(dst=d, op=nl.add, data=t, axis="free")  # BAD


def m_gpsimd_on_psum(x):
    p = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    s = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_copy(dst=s, src=p, engine=nisa.gpsimd_engine)  # BAD


def m_gpsimd_on_psum_legacy(x):
    p = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    return lisa.tensor_copy(p, engine=nisa.gpsimd_engine)  # BAD


def m_tensor_tensor_both_psum(x):
    p = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    q = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    s = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_tensor(dst=s, data1=p, data2=q, op=nl.add)  # BAD


def m_tensor_tensor_both_psum_legacy(x):
    p = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    q = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    return lisa.tensor_tensor(p, q, nl.multiply)  # BAD


def m_dma_from_psum(x):
    p = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=p)  # BAD


def m_dma_to_psum_legacy(x):
    p = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    lisa.dma_copy(dst=p, src=x)  # BAD


def m_matmul_dst_in_sbuf(x):
    st = nl.zeros((128, 128), nl.bfloat16)
    mv = nl.zeros((128, 512), nl.bfloat16)
    d = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    nisa.nc_matmul(d, st, mv)  # BAD


def m_matmul_input_in_psum(x):
    st = nl.zeros((128, 128), nl.bfloat16, buffer=nl.psum)
    mv = nl.zeros((128, 512), nl.bfloat16)
    d = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(d, st, mv)  # BAD


def m_matmul_int_inputs(x):
    st = nl.zeros((128, 128), nl.int32)
    mv = nl.zeros((128, 512), nl.int32)
    d = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(d, st, mv)  # BAD


def m_unknown_activation(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.activation(dst=d, op="frobnicate", data=t)  # BAD


def m_binary_op_as_activation(x):
    t = nl.load(x)
    return lisa.activation(nl.add, t)  # BAD


def m_activation_as_alu_op(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_tensor(dst=d, data1=t, data2=t, op=nl.exp)  # BAD


def m_unknown_cmp_op(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.affine_select(d, [[1, 512]], 1, t, 0.0, cmp_op="sometimes")  # BAD


def m_activation_cmp_op(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.affine_select(d, [[1, 512]], 1, t, 0.0, cmp_op=nl.exp)  # BAD


def m_unknown_engine(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_copy(dst=d, src=t, engine=42)  # BAD


def m_engine_as_string(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_copy(dst=d, src=t, engine="vector")  # BAD


def m_wrong_engine(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_copy(dst=d, src=t, engine=nisa.tensor_engine)  # BAD


def m_dma_engine_for_copy(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_copy(dst=d, src=t, engine=nisa.engine.dma)  # BAD


def m_memset_string(x):
    d = nl.ndarray((128, 512), nl.float32)
    nisa.memset(dst=d, value="zero")  # BAD


def m_memset_string_legacy(x):
    return lisa.memset((128, 4), "one", nl.float32)  # BAD


def m_iota_bad_pattern(x):
    d = nl.ndarray((128, 4), nl.int32)
    nisa.iota(d, [[1]], 0)  # BAD


def m_iota_pattern_not_list(x):
    d = nl.ndarray((128, 4), nl.int32)
    nisa.iota(d, 4, 0)  # BAD


def m_iota_pattern_too_long(x):
    d = nl.ndarray((128, 4), nl.int32)
    nisa.iota(d, [[1, 8]], 0)  # BAD


def m_legacy_iota_string(x):
    return lisa.iota("abc", nl.int32)  # BAD


def m_mgrid_string(x):
    return nl.mgrid[0:128, 0:"all"]  # BAD


def m_tensor_scalar_string_operand(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.tensor_scalar(dst=d, data=t, op0=nl.add, operand0="one")  # BAD


def m_unknown_dtype(x):
    return nl.ndarray((128, 4), "float33")  # BAD


def m_string_in_shape(x):
    return nl.ndarray((128, "four"), nl.float32)  # BAD


def m_negative_shape(x):
    return nl.ndarray((128, -4), nl.float32)  # BAD


def m_none_shape(x):
    return nl.ndarray(None, nl.float32)  # BAD


def m_unknown_buffer(x):
    return nl.ndarray((128, 4), nl.float32, buffer="sbuf")  # BAD


def m_full_in_hbm(x):
    return nl.zeros((128, 4), nl.float32, buffer=nl.hbm)  # BAD


def m_string_index(x):
    return nl.load(x["rows"])  # BAD


def m_float_index(x):
    return nl.load(x[1.5, :])  # BAD


def m_list_index(x):
    return nl.load(x[[0, 1]])  # BAD


def m_too_many_indices(x):
    return nl.load(x[0, 0, 0])  # BAD


def m_negative_step(x):
    return nl.load(x[::-1, :])  # BAD


def m_string_ds(x):
    return nl.load(x[nl.ds("zero", 4), :])  # BAD


def m_mixed_index_expr_and_slice(x):
    i_p = nl.arange(128)[:, None]
    return nl.load(x[i_p, 0:4])  # BAD


def m_bad_mask_shape(x):
    return nl.load(x, mask=np.ones((3, 7), dtype=bool))  # BAD


def m_iterate_tile(x):
    t = nl.load(x)
    for _row in t:  # BAD
        pass


def m_reshape_sizes_differ(x):
    t = nl.load(x)
    return t.reshape((3, 5))  # BAD


def m_reshape_string(x):
    t = nl.load(x)
    return t.reshape(("a", 5))  # BAD


def m_program_id_axis(x):
    return nl.program_id(3)  # BAD


def m_num_programs_axis(x):
    return nl.num_programs(3)  # BAD


def m_num_programs_axes(x):
    return nl.num_programs([0, 2])  # BAD


def m_add_string(x):
    t = nl.load(x)
    return t + "one"  # BAD


def m_where_scalar_condition(x):
    t = nl.load(x)
    return nl.where(1.0, t, 0.0)  # BAD


def m_activation_scale_full_tile(x):
    t = nl.load(x)
    d = nl.ndarray((128, 512), nl.float32)
    nisa.activation(dst=d, op=nl.exp, data=t, scale=t)  # BAD


def m_psum_accumulate_mismatch(x):
    p = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
    a = nl.zeros((128, 128), nl.bfloat16)
    b = nl.zeros((128, 256), nl.bfloat16)
    p += nl.matmul(a, b, transpose_x=True)  # BAD


SWEEP = [
    m_list_as_tile_isa,
    m_list_as_tile_dma,
    m_list_as_tile_exp,
    m_scalar_as_tile_exp,
    m_list_as_tile_matmul,
    m_list_as_tile_transpose,
    m_list_as_tile_copy,
    m_list_as_tile_sum,
    m_list_as_tile_mean,
    m_list_as_tile_softmax,
    m_list_as_tile_broadcast,
    m_list_as_tile_store,
    m_list_as_store_dst,
    m_list_as_load_src,
    m_list_legacy_isa_matmul,
    m_list_legacy_isa_activation,
    m_list_legacy_isa_tensor_tensor,
    m_list_legacy_isa_tensor_scalar,
    m_list_legacy_isa_tensor_copy,
    m_list_legacy_isa_transpose,
    m_list_legacy_isa_reduce,
    m_list_legacy_isa_bn_stats,
    m_list_legacy_isa_affine_select,
    m_reduce_axis0_isa,
    m_reduce_axis0_nl,
    m_reduce_axis0_legacy_isa,
    m_reduce_axis_none,
    m_reduce_axis_str,
    m_gpsimd_on_psum,
    m_gpsimd_on_psum_legacy,
    m_tensor_tensor_both_psum,
    m_tensor_tensor_both_psum_legacy,
    m_dma_from_psum,
    m_dma_to_psum_legacy,
    m_matmul_dst_in_sbuf,
    m_matmul_input_in_psum,
    m_matmul_int_inputs,
    m_unknown_activation,
    m_binary_op_as_activation,
    m_activation_as_alu_op,
    m_unknown_cmp_op,
    m_activation_cmp_op,
    m_unknown_engine,
    m_engine_as_string,
    m_wrong_engine,
    m_dma_engine_for_copy,
    m_memset_string,
    m_memset_string_legacy,
    m_iota_bad_pattern,
    m_iota_pattern_not_list,
    m_iota_pattern_too_long,
    m_legacy_iota_string,
    m_mgrid_string,
    m_tensor_scalar_string_operand,
    m_unknown_dtype,
    m_string_in_shape,
    m_negative_shape,
    m_none_shape,
    m_unknown_buffer,
    m_full_in_hbm,
    m_string_index,
    m_float_index,
    m_list_index,
    m_too_many_indices,
    m_negative_step,
    m_string_ds,
    m_mixed_index_expr_and_slice,
    m_bad_mask_shape,
    m_iterate_tile,
    m_reshape_sizes_differ,
    m_reshape_string,
    m_program_id_axis,
    m_num_programs_axis,
    m_num_programs_axes,
    m_add_string,
    m_where_scalar_condition,
    m_activation_scale_full_tile,
    m_psum_accumulate_mismatch,
]

# The class each misuse must raise (UsageError unless listed).
SWEEP_CLASS: dict[Callable[..., Any], type[KernelError]] = {
    m_matmul_int_inputs: DtypeError,
    m_unknown_dtype: DtypeError,
    m_iota_pattern_too_long: ShapeMismatchError,
    m_too_many_indices: BoundsError,
    m_activation_scale_full_tile: ShapeMismatchError,
    m_psum_accumulate_mismatch: ShapeMismatchError,
}


@pytest.mark.parametrize("misuse", SWEEP, ids=[f.__name__[2:] for f in SWEEP])
def test_misuse_raises_project_error_at_the_line(misuse: Callable[..., Any]) -> None:
    x = np.ones((128, 512), dtype=np.float32)
    with pytest.raises(KernelError) as info:  # a bare TypeError/ValueError/... would fail the test here
        run(nki.jit(misuse), x)
    err = info.value
    assert isinstance(err, SWEEP_CLASS.get(misuse, UsageError)), repr(err)
    assert err.location == where(misuse, "BAD"), str(err)
    assert str(err).startswith(f"{err.location}: ")
    assert len(err.bare_message) > 20  # says what was wrong, not just a type name


def test_sweep_covers_every_misuse_kernel() -> None:
    defined = {name for name, obj in globals().items() if name.startswith("m_") and callable(obj)}
    assert defined == {f.__name__ for f in SWEEP}


def _passthrough(x):
    return x


@pytest.mark.parametrize("grid", [0, -1, (), (2, 0), [0], "two", None, 1.5, (1, "a")])
def test_bad_grid(grid: Any) -> None:
    kernel = nki.jit(_passthrough)
    with pytest.raises(UsageError, match="launch grid") as info:
        kernel[grid]  # GRID
    assert info.value.location == where(test_bad_grid, "GRID")


def test_tensor_spec_argument_in_functional_mode() -> None:
    spec = nki.TensorSpec((128, 512), "float32")
    with pytest.raises(UsageError, match=r"TensorSpec.*mode='timing'") as info:
        nki.simulate(_passthrough, target=TARGET)(spec)  # SPEC
    assert info.value.location == where(test_tensor_spec_argument_in_functional_mode, "SPEC")
    # the same argument is fine in timing mode
    prof = nki.profile(nki.jit(_passthrough), target=TARGET, mode="timing")(spec)
    assert prof.outputs == spec


@pytest.mark.parametrize(
    "launch",
    [
        lambda: nki.simulate(_passthrough, target="trn9")(np.ones(4)),
        lambda: nki.profile(_passthrough, target="gen7")(np.ones(4)),
        lambda: nki.set_target("no-such-chip"),
    ],
    ids=["simulate", "profile", "set_target"],
)
def test_unknown_target_name(launch: Callable[[], Any]) -> None:
    with pytest.raises(SpecError, match="unknown hardware preset") as info:
        launch()
    assert "trn2" in str(info.value)  # lists the known presets


@pytest.mark.parametrize(
    "launch",
    [
        lambda: nki.profile(_passthrough, target=TARGET, mode="fast")(np.ones(4)),
        lambda: nki.simulate(42)(np.ones(4)),
        lambda: nl.ndarray((128, 4), nl.float32),
        lambda: nisa.memset(None, 0.0),
    ],
    ids=["mode", "not-a-kernel", "nl-outside-kernel", "isa-outside-kernel"],
)
def test_launcher_misuse(launch: Callable[[], Any]) -> None:
    with pytest.raises(TrnsimError):
        launch()

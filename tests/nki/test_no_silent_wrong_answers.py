"""Issue 14: cases that used to give silently wrong numbers now compute right or say what is wrong.

Each test runs a kernel on fresh random inputs against numpy; the cases are a masked write into an existing
tile, an assignment of a differently shaped value, arguments of dtypes NKI has no type for, reads of memory
nobody wrote (surfaced by `nki.simulate` as warnings), and a PSUM tile reused across loop iterations.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError, ShapeMismatchError, UninitialisedMemoryWarning

TARGET = "trn2"


def marked_line(kernel, marker: str) -> str:
    """'file:line' of the line of `kernel`'s source that ends with `# marker`."""
    lines, start = inspect.getsourcelines(kernel.fn)
    line = next(start + i for i, s in enumerate(lines) if s.rstrip().endswith(f"# {marker}"))
    return f"{kernel.fn.__code__.co_filename}:{line}"


def simulate(kernel, *args):
    """Outputs of `kernel`, with trnsim's warnings as a list of messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = nki.simulate(kernel, target=TARGET)(*args)
    return out, [str(w.message) for w in caught if issubclass(w.category, UninitialisedMemoryWarning)]


# -- a masked write into an existing tile keeps the masked-out lanes ----------------------------------
@nki.jit
def masked_load_into_zeros(a, rows):
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    t = nl.zeros(a.shape, a.dtype)
    ix, iy = nl.mgrid[0 : a.shape[0], 0 : a.shape[1]]
    t[ix, iy] = nl.load(a[ix, iy], mask=(ix < rows))
    nl.store(out[ix, iy], t[ix, iy])
    return out


@pytest.mark.parametrize("rows", [1, 100, 128])
def test_masked_write_leaves_masked_out_lanes(rows: int, rng: np.random.Generator) -> None:
    a = rng.standard_normal((128, 64)).astype(np.float32)
    out, warned = simulate(masked_load_into_zeros, a, rows)
    expected = np.zeros_like(a)
    expected[:rows] = a[:rows]
    np.testing.assert_array_equal(out, expected)
    assert warned == []


@nki.jit
def masked_compute_into_tile(a):
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    t = nl.load(a)
    ix, iy = nl.mgrid[0 : a.shape[0], 0 : a.shape[1]]
    t[ix, iy] = nl.exp(t, mask=(iy < 16))
    nl.store(out, t)
    return out


def test_masked_compute_assigned_into_its_input_keeps_other_lanes(rng: np.random.Generator) -> None:
    a = rng.standard_normal((128, 32)).astype(np.float32)
    out, _ = simulate(masked_compute_into_tile, a)
    expected = a.copy()
    expected[:, :16] = np.exp(a[:, :16])
    np.testing.assert_allclose(out, expected, rtol=1e-6)


# -- a value of another shape is not silently reshaped ------------------------------------------------
@nki.jit
def assign_transposed_shape(x):
    out = nl.ndarray((x.shape[1], x.shape[0]), nl.float32, buffer=nl.shared_hbm)
    t = nl.ndarray((x.shape[1], x.shape[0]), nl.float32, buffer=nl.sbuf)
    t[...] = nl.exp(nl.load(x))  # ERR
    nl.store(out, t)
    return out


def test_assigning_same_size_other_shape_raises_shape_mismatch(rng: np.random.Generator) -> None:
    x = rng.standard_normal((64, 128)).astype(np.float32)
    with pytest.raises(ShapeMismatchError) as err:
        nki.simulate(assign_transposed_shape, target=TARGET)(x)
    assert "[128, 64]" in str(err.value) and "[64, 128]" in str(err.value)
    assert err.value.location == marked_line(assign_transposed_shape, "ERR")


@nki.jit
def assign_unit_dims(x):
    out = nl.ndarray((x.shape[0],), x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((x.shape[0], 1), x.dtype, buffer=nl.sbuf)
    t[...] = nl.exp(nl.load(x))
    nl.store(out, t)
    return out


def test_assigning_with_only_unit_dims_different_still_works(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 1)).astype(np.float32)
    out, _ = simulate(assign_unit_dims, x)
    np.testing.assert_allclose(out, np.exp(x[:, 0]), rtol=1e-6)


# -- arguments of dtypes NKI has no type for -----------------------------------------------------------
@nki.jit
def double_it(x):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    nl.store(out, nl.add(t, t))
    return out


@pytest.mark.parametrize("dtype", [np.complex64, np.float64, np.complex128])
def test_argument_without_nki_type_is_refused_with_the_allowed_list(dtype: type, rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 4)).astype(dtype)
    with pytest.raises(DtypeError) as err:
        nki.simulate(double_it, target=TARGET)(x)
    msg = str(err.value)
    assert np.dtype(dtype).name in msg and "bfloat16" in msg and "int32" in msg and err.value.rule == "argument-dtype"
    assert err.value.location is not None and err.value.location.startswith(__file__)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_large_64_bit_integers_are_refused(dtype: type, rng: np.random.Generator) -> None:
    x = rng.integers(1 << 25, 1 << 30, size=(128, 4)).astype(dtype)
    with pytest.raises(DtypeError, match=r"2\^24"):
        nki.simulate(double_it, target=TARGET)(x)


def test_small_64_bit_integers_compute_exactly(rng: np.random.Generator) -> None:
    x = rng.integers(-(1 << 23), 1 << 23, size=(128, 4), dtype=np.int64)
    out, _ = simulate(double_it, x)
    assert out.dtype == np.int32  # narrowed at the boundary, every value exact
    np.testing.assert_array_equal(out.astype(np.int64), x + x)


# -- reads of memory nobody wrote are reported by nki.simulate ----------------------------------------
@nki.jit
def read_unwritten_int(x):
    t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nl.store(out, t)  # UNINIT
    return out


def test_simulate_warns_on_a_read_of_unwritten_sbuf(rng: np.random.Generator) -> None:
    x = rng.integers(-100, 100, size=(128, 8), dtype=np.int32)
    out, warned = simulate(read_unwritten_int, x)
    assert (out == 4).all()
    loc = marked_line(read_unwritten_int, "UNINIT")
    assert len(warned) == 1 and warned[0].startswith(f"{loc}: read of uninitialised")


@nki.jit
def write_top_half(x):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out[0 : x.shape[0] // 2, :], src=x[0 : x.shape[0] // 2, :])
    return out


def test_simulate_warns_on_an_output_only_partly_written(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 64)).astype(np.float32)
    out, warned = simulate(write_top_half, x)
    np.testing.assert_array_equal(out[:64], x[:64])
    assert np.isnan(out[64:]).all()
    assert len(warned) == 1 and "write_top_half" in warned[0] and "4096 of 8192 elements" in warned[0]
    prof = nki.profile(write_top_half, target=TARGET)(x)
    assert prof.warnings == warned  # the same message on the profile


def test_warnings_can_be_made_errors(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 64)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UninitialisedMemoryWarning)
        with pytest.raises(UninitialisedMemoryWarning):
            nki.simulate(write_top_half, target=TARGET)(x)


def test_fully_written_kernel_warns_nothing(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 64)).astype(np.float32)
    out, warned = simulate(double_it, x)
    np.testing.assert_allclose(out, x + x)
    assert warned == []


# -- a PSUM tile reused across loop iterations starts each accumulation over ---------------------------
@nki.jit
def reused_psum(a_t, b, k_tiles):
    """out[i] = sum over k of a_t[k].T @ b[k], for each i, through one PSUM tile allocated outside the loops."""
    n_out = b.shape[0] // (k_tiles * 128)
    out = nl.ndarray((n_out, a_t.shape[1], b.shape[1]), nl.float32, buffer=nl.shared_hbm)
    ps = nl.ndarray((a_t.shape[1], b.shape[1]), nl.float32, buffer=nl.psum)
    for i in nl.affine_range(n_out):
        for k in nl.affine_range(k_tiles):
            st = nl.ndarray((128, a_t.shape[1]), nl.float32, buffer=nl.sbuf)
            mv = nl.ndarray((128, b.shape[1]), nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=st, src=a_t[k * 128 : (k + 1) * 128, :])
            nisa.dma_copy(dst=mv, src=b[(i * k_tiles + k) * 128 : (i * k_tiles + k + 1) * 128, :])
            nisa.nc_matmul(ps, st, mv)
        sb = nl.ndarray(ps.shape, nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=sb, src=ps)
        nisa.dma_copy(dst=out[i], src=sb)
    return out


def test_psum_tile_reused_across_iterations_restarts_accumulation(rng: np.random.Generator) -> None:
    k_tiles, n_out = 2, 3
    a_t = rng.standard_normal((k_tiles * 128, 64)).astype(np.float32)
    b = rng.standard_normal((n_out * k_tiles * 128, 96)).astype(np.float32)
    out, warned = simulate(reused_psum, a_t, b, k_tiles)
    for i in range(n_out):
        expected = a_t.T @ b[i * k_tiles * 128 : (i + 1) * k_tiles * 128]
        np.testing.assert_allclose(out[i], expected, rtol=1e-4, atol=1e-3)
    assert warned == []


@nki.jit
def explicit_accumulate_flag(a_t, b, k_tiles):
    out = nl.ndarray((2, a_t.shape[1], b.shape[1]), nl.float32, buffer=nl.shared_hbm)
    ps = nl.ndarray((a_t.shape[1], b.shape[1]), nl.float32, buffer=nl.psum)
    st = nl.ndarray(a_t.shape, nl.float32, buffer=nl.sbuf)
    mv = nl.ndarray(b.shape, nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=st, src=a_t)
    nisa.dma_copy(dst=mv, src=b)
    for i in nl.affine_range(2):
        for k in nl.affine_range(k_tiles):
            nisa.nc_matmul(ps, st, mv, accumulate=True if i == 1 else k > 0)
        sb = nl.ndarray(ps.shape, nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=sb, src=ps)
        nisa.dma_copy(dst=out[i], src=sb)
    return out


def test_explicit_accumulate_true_keeps_adding_after_a_read(rng: np.random.Generator) -> None:
    a_t = rng.standard_normal((128, 32)).astype(np.float32)
    b = rng.standard_normal((128, 64)).astype(np.float32)
    out, _ = simulate(explicit_accumulate_flag, a_t, b, 3)
    np.testing.assert_allclose(out[0], 3 * a_t.T @ b, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out[1], 6 * a_t.T @ b, rtol=1e-4, atol=1e-3)


@nki.jit
def accumulate_transposed_shape(a, b):
    out = nl.ndarray((a.shape[0], b.shape[1] // 2), nl.float32, buffer=nl.shared_hbm)
    ps = nl.zeros((a.shape[0], b.shape[1] // 2), nl.float32, buffer=nl.psum)
    ps += nl.matmul(nl.load(a), nl.load(b), transpose_x=True)  # ERR
    nl.store(out, nl.copy(ps))
    return out


def test_accumulating_a_same_size_other_shape_product_raises(rng: np.random.Generator) -> None:
    a = rng.standard_normal((128, 64)).astype(np.float32)
    b = rng.standard_normal((128, 128)).astype(np.float32)  # a.T @ b is [64, 128]; ps is [128, 64]
    with pytest.raises(ShapeMismatchError) as err:
        nki.simulate(accumulate_transposed_shape, target=TARGET)(a, b)
    assert err.value.location == marked_line(accumulate_transposed_shape, "ERR")

"""NKI API surface beyond the basics, checked against numpy: nl.nc launch grids, nl.expand_dims,
nl.load_transpose2d, nl.shared_identity_matrix, nl.fp32 / nl.finfo, nl.all / invert / logical_not,
NkiTensor itemsize / astype / view / expand_dims / assert_shape, nisa.tensor_tensor_scan,
nisa.scalar_tensor_tensor and nisa.reciprocal (current and legacy), legacy activation_reduce, and
kernel call binding.

References never call trnsim: inputs are rounded to their stored dtype with ml_dtypes and the math is
redone in numpy (float32 step by step where the ISA defines fp32 math).
"""

from __future__ import annotations

import inspect
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
import trnsim.nki.legacy_isa as lisa
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.isa.opcodes import Engine, Opcode

BF16 = ml_dtypes.bfloat16
F32 = np.float32
FEW = settings(max_examples=12, deadline=None)
SOME = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**32 - 1)
parts = st.integers(1, 128)
TARGET = "trn2"
SPEC = nki.get_target_spec(TARGET)
MIN_II = SPEC.core.vector.min_ii_cycles


def rounded(x: np.ndarray, dt: Any) -> np.ndarray:
    """x as stored in dtype dt, read back as float32."""
    return np.asarray(x, dtype=F32).astype(dt).astype(F32)


def line_of(marker: str) -> str:
    """'file:line' of the single line of this file that ends with `# marker`."""
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()  # type: ignore[arg-type]
    hits = [i + 1 for i, text in enumerate(lines) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, marker
    return f"{__file__}:{hits[0]}"


def load(src: Any, dt: Any = None) -> Any:
    t = nl.ndarray(src.shape, dt or src.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=src)
    return t


def store(t: Any, dt: Any = None) -> Any:
    out = nl.ndarray(t.shape, dt or t.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out


def run(kernel: Any, *args: Any, **kwargs: Any) -> Any:
    return nki.simulate(kernel, target=TARGET)(*args, **kwargs)


def profile(kernel: Any, *args: Any, target: str = TARGET, **kwargs: Any) -> Any:
    return nki.profile(kernel, target=target)(*args, **kwargs)


def of(prof: Any, op: Opcode) -> list[Any]:
    return [i for i in prof.instructions if i.opcode is op]


# == nl.nc launch grids ===============================================================================
@nki.jit
def nc_kernel(x):
    """Program (i, j) scales row block i*J+j by (i+1) and issues i+1 memsets, so its core shows."""
    i, j = nl.program_id(0), nl.program_id(1) if nl.program_ndim() > 1 else 0
    n_j = nl.num_programs(1) if nl.program_ndim() > 1 else 1
    rows = x.shape[0] // (nl.num_programs(0) * n_j)
    r0 = (i * n_j + j) * rows
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    t = load(x[r0 : r0 + rows, :])
    for _ in range(i + 1):
        scratch = nl.ndarray((rows, 4), nl.float32, buffer=nl.sbuf)
        nisa.memset(scratch, 0.0)
    y = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(y, t, nl.multiply, float(i + 1))
    nisa.dma_copy(dst=out[r0 : r0 + rows, :], src=y)
    return out


@pytest.mark.parametrize(("grid", "target"), [((2, 3), "trn2"), ((2, 1), "trn1"), ((2,), "trn1")])
def test_nc_grid_places_programs_on_cores(rng: np.random.Generator, grid: tuple[int, ...], target: str) -> None:
    n_prog = int(np.prod(grid))
    x = rng.standard_normal((8 * n_prog, 16)).astype(F32)
    launch = nc_kernel[(nl.nc(grid[0]), *grid[1:])]
    prof = profile(launch, x, target=target)
    n_j = grid[1] if len(grid) > 1 else 1
    scale = np.repeat(np.arange(grid[0]) + 1.0, 8 * n_j)[:, None]
    np.testing.assert_array_equal(prof.outputs, (x * scale).astype(F32))
    # Every program with grid index i runs on core i: core i issues i+1 memsets per program.
    per_core = {c: sum(1 for ins in of(prof, Opcode.MEMSET) if ins.core == c) for c in range(grid[0])}
    assert per_core == {i: (i + 1) * n_j for i in range(grid[0])}
    assert prof.grid == grid


def test_nc_marker_is_the_grid_size() -> None:
    assert nl.nc(4) == 4 and isinstance(nl.nc(4), int)
    launch = nc_kernel[nl.nc(2), 4]
    assert launch.grid == (2, 4)


@pytest.mark.parametrize("bad", [0, -1, 2.0, "2", True])
def test_nc_rejects_non_positive_ints(bad: Any) -> None:
    with pytest.raises(UsageError, match=r"nl\.nc"):
        nl.nc(bad)


def test_nc_beyond_physical_cores(rng: np.random.Generator) -> None:
    x = rng.standard_normal((24, 4)).astype(F32)
    with pytest.raises(UsageError, match="physical cores"):
        profile(nc_kernel[nl.nc(3)], x, target="trn1")  # trn1 has 2


# == nl.expand_dims and NkiTensor.expand_dims =========================================================
@nki.jit
def expand_kernel(x, axis, lo, hi):
    """Read through an expanded view of a slice, and write through an expanded view of the output."""
    t = load(x)
    v = nl.expand_dims(t[:, lo:hi], axis)
    res = nl.ndarray(v.shape, x.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=v)
    out_tile = nl.ndarray((x.shape[0], hi - lo), x.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=out_tile.expand_dims(axis), src=res)
    return store(res), store(out_tile)


@FEW
@given(p=parts, f=st.integers(2, 64), axis=st.sampled_from([1, 2, -1]), data=st.data())
def test_expand_dims_views(p: int, f: int, axis: int, data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, f - 1))
    hi = data.draw(st.integers(lo + 1, f))
    x = np.random.default_rng(data.draw(seeds)).standard_normal((p, f)).astype(F32)
    expanded, back = run(expand_kernel, x, axis, lo, hi)
    np.testing.assert_array_equal(expanded, np.expand_dims(x[:, lo:hi], axis))
    np.testing.assert_array_equal(back, x[:, lo:hi])


@nki.jit
def expand_hbm_kernel(x):
    """expand_dims(axis=0) of an HBM tensor, then a store through it."""
    out = nl.ndarray((1, *x.shape), x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=nl.expand_dims(out[0], 0), src=load(x))
    return out


def test_expand_dims_hbm_axis0(rng: np.random.Generator) -> None:
    x = rng.standard_normal((16, 8)).astype(F32)
    np.testing.assert_array_equal(run(expand_hbm_kernel, x), x[None])


@nki.jit
def expand_partition_kernel(x):
    nl.expand_dims(load(x), 0)  # BAD-EXPAND
    return x


def test_expand_dims_rejects_partition_axis(rng: np.random.Generator) -> None:
    with pytest.raises(UsageError, match="partition dim") as exc:
        run(expand_partition_kernel, rng.standard_normal((4, 4)).astype(F32))
    assert exc.value.location == line_of("BAD-EXPAND")


# == nl.load_transpose2d ==============================================================================
@nki.jit
def load_t_kernel(x, dt):
    t = nl.load_transpose2d(x) if dt is None else nl.load_transpose2d(x, dtype=dt)
    return store(t)


@FEW
@given(f=st.integers(1, 512), p=parts, dt=st.sampled_from([None, BF16]), seed=seeds)
def test_load_transpose2d(f: int, p: int, dt: Any, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((f, p)).astype(F32)
    prof = profile(load_t_kernel, x, dt=None if dt is None else nl.bfloat16)
    out = prof.outputs
    assert out.shape == (p, f)
    np.testing.assert_array_equal(out.astype(F32), x.T if dt is None else rounded(x.T, dt))
    loads = [i for i in of(prof, Opcode.DMA_COPY) if i.label == "dma hbm->sbuf"]
    assert len(loads) == 1 and loads[0].dma_bytes == x.size * 4  # bytes of the wider (fp32) side


@nki.jit
def load_t_sbuf_kernel(x):
    nl.load_transpose2d(load(x))  # BAD-LT
    return x


def test_load_transpose2d_needs_hbm(rng: np.random.Generator) -> None:
    with pytest.raises(UsageError, match="HBM") as exc:
        run(load_t_sbuf_kernel, rng.standard_normal((4, 4)).astype(F32))
    assert exc.value.location == line_of("BAD-LT")


# == nl.shared_identity_matrix ========================================================================
@nki.jit
def identity_kernel(x, n, dt):
    eye = nl.shared_identity_matrix(n) if dt is None else nl.shared_identity_matrix(n, dtype=dt)
    if x is None:
        return store(eye)
    ps = nl.ndarray((n, x.shape[1]), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, eye, load(x, nl.bfloat16))  # I.T @ x == x
    sb = nl.ndarray(ps.shape, nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=sb, src=ps)
    return store(eye), store(sb)


@FEW
@given(n=parts, dt=st.sampled_from([None, "bfloat16", "float32"]))
def test_shared_identity_matrix(n: int, dt: Any) -> None:
    prof = profile(identity_kernel, None, n, dt)
    out = prof.outputs
    assert out.dtype == np.dtype(np.uint8 if dt is None else ml_dtypes.bfloat16 if dt == "bfloat16" else F32)
    np.testing.assert_array_equal(out.astype(F32), np.eye(n, dtype=F32))
    built = of(prof, Opcode.MEMSET) + of(prof, Opcode.AFFINE_SELECT)
    assert len(built) == 2 and all(i.cycles > 0 for i in built)


def test_identity_matrix_feeds_matmul(rng: np.random.Generator) -> None:
    x = rng.standard_normal((96, 200)).astype(F32)
    _, y = run(identity_kernel, x, 96, nl.bfloat16)
    np.testing.assert_array_equal(y, rounded(x, BF16))


# == nl.fp32, nl.finfo ================================================================================
def test_fp32_limits() -> None:
    assert nl.fp32.min == float(np.finfo(F32).min) == -3.4028234663852886e38
    assert nl.fp32.max == float(np.finfo(F32).max)
    assert np.array(nl.fp32.min, dtype=F32).view(np.uint32) == 0xFF7FFFFF


@pytest.mark.parametrize("dt", [nl.float32, nl.bfloat16, nl.float16, nl.float8_e4m3, nl.float8_e5m2, "bfloat16"])
def test_finfo_matches_ml_dtypes(dt: Any) -> None:
    ref = ml_dtypes.finfo(np.dtype(BF16) if dt == "bfloat16" else np.dtype(dt))
    got = nl.finfo(dt)
    assert float(got.max) == float(ref.max) and float(got.eps) == float(ref.eps) and got.bits == ref.bits


def test_finfo_rejects_ints() -> None:
    with pytest.raises(DtypeError, match="float dtype"):
        nl.finfo(nl.int32)


# == nl.all, nl.invert, nl.logical_not ================================================================
@nki.jit
def all_kernel(x, axis):
    return store(nl.all(load(x), axis=axis))


@FEW
@given(p=parts, a=st.integers(1, 6), b=st.integers(1, 8), axis=st.sampled_from([2, (1, 2), -1]), seed=seeds)
def test_all(p: int, a: int, b: int, axis: Any, seed: int) -> None:
    r = np.random.default_rng(seed)
    x = r.standard_normal((p, a, b)).astype(F32)
    x[r.random(x.shape) < 0.5 / (a * b)] = 0.0  # some rows hold a zero, most do not
    out = run(all_kernel, x, axis=list(axis) if isinstance(axis, tuple) else axis)
    ref = np.all(x != 0, axis=axis)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out.reshape(ref.shape), ref.astype(np.uint8))


@nki.jit
def invert_kernel(x):
    t = load(x)
    return store(nl.invert(t)), store(nl.logical_not(t))


@pytest.mark.parametrize("dt", [np.int8, np.uint8, np.int16, np.uint16, np.int32])
def test_invert_and_logical_not(rng: np.random.Generator, dt: Any) -> None:
    info = np.iinfo(dt)
    x = rng.integers(max(info.min, -1000), min(info.max, 1000), size=(64, 40), endpoint=True).astype(dt)
    x[rng.random(x.shape) < 0.2] = 0
    inv, lnot = run(invert_kernel, x)
    assert inv.dtype == np.dtype(dt)
    np.testing.assert_array_equal(inv, np.invert(x))
    np.testing.assert_array_equal(lnot, (x == 0).astype(np.uint8))


def test_logical_not_of_floats(rng: np.random.Generator) -> None:
    x = rng.standard_normal((32, 16)).astype(F32)
    x[::3] = 0.0

    @nki.jit
    def k(x):
        return store(nl.logical_not(load(x), dtype=nl.float32))

    np.testing.assert_array_equal(run(k, x), (x == 0).astype(F32))


@nki.jit
def invert_float_kernel(x):
    nl.invert(load(x))  # BAD-INV
    return x


def test_invert_rejects_floats(rng: np.random.Generator) -> None:
    with pytest.raises(DtypeError, match="integer") as exc:
        run(invert_float_kernel, rng.standard_normal((4, 4)).astype(F32))
    assert exc.value.location == line_of("BAD-INV")


# == NkiTensor: itemsize, astype, view, assert_shape ==================================================
@nki.jit
def itemsize_kernel(x):
    sizes = [nl.ndarray((2, 2), d, buffer=nl.sbuf).itemsize for d in (nl.float32, nl.bfloat16, nl.int8, nl.int32)]
    return sizes, x.itemsize


def test_itemsize() -> None:
    sizes, hbm = run(itemsize_kernel, np.zeros((2, 2), np.float16))
    assert sizes == [4, 2, 1, 4] and hbm == 2


@nki.jit
def astype_kernel(x, dt, via_psum):
    t = load(x)
    if via_psum:
        ps = nl.ndarray(t.shape, t.dtype, buffer=nl.psum)
        nisa.tensor_copy(dst=ps, src=t)
        t = ps
    y = t.astype(dt)
    return store(y), y.buffer


@FEW
@given(p=parts, f=st.integers(1, 64), src=st.sampled_from([F32, BF16]), via_psum=st.booleans(), seed=seeds)
def test_astype(p: int, f: int, src: Any, via_psum: bool, seed: int) -> None:
    x = (np.random.default_rng(seed).standard_normal((p, f)) * 50).astype(F32).astype(src)
    for dt, ref_dt in ((nl.bfloat16, BF16), (nl.float32, F32), (nl.float16, np.float16)):
        out, buf = run(astype_kernel, x, dt, via_psum)
        assert out.dtype == np.dtype(ref_dt) and buf == nl.sbuf
        np.testing.assert_array_equal(out.astype(F32), rounded(x.astype(F32), ref_dt))


@nki.jit
def astype_hbm_kernel(x):
    x.astype(nl.bfloat16)  # BAD-ASTYPE
    return x


def test_astype_of_hbm_is_a_usage_error(rng: np.random.Generator) -> None:
    with pytest.raises(UsageError, match=r"nl\.load") as exc:
        run(astype_hbm_kernel, rng.standard_normal((4, 4)).astype(F32))
    assert exc.value.location == line_of("BAD-ASTYPE")


@nki.jit
def view_kernel(x, dt):
    """Reinterpret a loaded tile's bits, copy them out bit-exactly through the view."""
    t = load(x)
    v = t.view(dt)
    out = nl.ndarray(v.shape, v.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=out, src=v, engine=nisa.vector_engine)
    return store(out)


@FEW
@given(
    p=parts,
    f=st.integers(1, 32),
    pair=st.sampled_from(
        [
            (F32, nl.int32),
            (F32, nl.bfloat16),
            (F32, nl.uint8),
            (BF16, nl.float32),
            (BF16, nl.int16),
            (np.int32, nl.float32),
        ]
    ),
    seed=seeds,
)
def test_view_reinterprets_bits(p: int, f: int, pair: tuple[Any, Any], seed: int) -> None:
    src, dt = pair
    if np.dtype(dt).itemsize > np.dtype(src).itemsize:
        f *= np.dtype(dt).itemsize // np.dtype(src).itemsize
    r = np.random.default_rng(seed)
    if src is np.int32:  # int bit patterns that are normal floats
        x = r.integers(0, 1 << 20, size=(p, f)).astype(np.int32) | 0x3F000000
    else:
        x = (r.standard_normal((p, f)) * 10).astype(F32).astype(src)
    out = run(view_kernel, x, dt)
    ref = np.ascontiguousarray(x).view(np.dtype(dt))
    assert out.dtype == ref.dtype and out.shape == ref.shape
    np.testing.assert_array_equal(out.view(np.uint8), ref.view(np.uint8))


@nki.jit
def view_write_kernel(bits):
    """Write int32 bit patterns through an int32 view, read the fp32 tile; and the view's regions."""
    t = nl.ndarray(bits.shape, nl.float32, buffer=nl.sbuf)
    v = t.view(nl.int32)
    nisa.dma_copy(dst=v, src=bits)
    half = t.view(nl.bfloat16)[:, 4:8]
    return store(t), half.region()[1:], t.region()[0] == half.region()[0]


def test_view_writes_alias_the_tile(rng: np.random.Generator) -> None:
    x = rng.standard_normal((16, 8)).astype(F32)
    out, box, same_alloc = run(view_write_kernel, x.view(np.int32))
    np.testing.assert_array_equal(out, x)
    # bf16 columns 4..7 of a [16, 16] view are fp32 columns 2..3 of the tile
    assert box == (0, 16, 2, 4, 0, 1) and same_alloc


@nki.jit
def view_slice_kernel(x):
    load(x)[:, 0:2].view(nl.int32)  # BAD-VIEW
    return x


@nki.jit
def view_odd_kernel(x):
    load(x).view(nl.float32)  # BAD-ODD
    return x


def test_view_errors(rng: np.random.Generator) -> None:
    with pytest.raises(UsageError, match="whole on-chip tile") as exc:
        run(view_slice_kernel, rng.standard_normal((4, 4)).astype(F32))
    assert exc.value.location == line_of("BAD-VIEW")
    with pytest.raises(ShapeMismatchError, match="multiple of 4") as exc2:
        run(view_odd_kernel, rng.standard_normal((4, 3)).astype(F32).astype(BF16))
    assert exc2.value.location == line_of("BAD-ODD")


@nki.jit
def assert_shape_kernel(x, shape):
    t = load(x)
    assert t.assert_shape(x.shape) is t
    t.assert_shape(shape)  # BAD-SHAPE
    return x


def test_assert_shape(rng: np.random.Generator) -> None:
    x = rng.standard_normal((8, 4)).astype(F32)
    np.testing.assert_array_equal(run(assert_shape_kernel, x, (8, 4)), x)
    with pytest.raises(ShapeMismatchError, match=r"\[8, 4\], expected \[4, 8\]") as exc:
        run(assert_shape_kernel, x, (4, 8))
    assert exc.value.location == line_of("BAD-SHAPE")


# == tensor_tensor_scan ===============================================================================
ARITH = ["add", "subtract", "multiply", "maximum", "minimum"]
NP_OPS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "maximum": np.maximum}
NP_OPS |= {"minimum": np.minimum, "divide": np.divide}


def scan_ref(d0: np.ndarray, d1: np.ndarray, init: Any, op0: str, op1: str, rev0: bool, rev1: bool) -> np.ndarray:
    """Float32 recurrence, one column at a time."""
    f0, f1 = NP_OPS[op0], NP_OPS[op1]
    prev = np.broadcast_to(np.asarray(init, F32).reshape(-1, 1), (d0.shape[0], 1)).astype(F32)
    out = np.empty_like(d0, dtype=F32)
    for i in range(d0.shape[1]):
        x, y = d0[:, i : i + 1], d1[:, i : i + 1]
        t = (f0(prev, x) if rev0 else f0(x, prev)).astype(F32)
        prev = (f1(y, t) if rev1 else f1(t, y)).astype(F32)
        out[:, i : i + 1] = prev
    return out


@nki.jit
def scan_kernel(d0, d1, init_t, init, op0, op1, rev0, rev1, dt, legacy):
    a, b = load(d0, dt), load(d1, dt)
    initial = load(init_t) if init is None else init
    if legacy:
        y = lisa.tensor_tensor_scan(a, b, initial, getattr(nl, op0), getattr(nl, op1), rev0, rev1, dtype=dt)
    else:
        y = nl.ndarray(a.shape, dt, buffer=nl.sbuf)
        nisa.tensor_tensor_scan(y, a, b, initial, getattr(nl, op0), getattr(nl, op1), reverse0=rev0, reverse1=rev1)
    return store(y, nl.float32)


@SOME
@given(
    p=parts,
    a=st.integers(1, 4),
    b=st.integers(1, 32),
    op0=st.sampled_from(ARITH),
    op1=st.sampled_from(ARITH),
    rev=st.tuples(st.booleans(), st.booleans()),
    tile_init=st.booleans(),
    bf16=st.booleans(),
    legacy=st.booleans(),
    seed=seeds,
)
def test_tensor_tensor_scan(
    p: int, a: int, b: int, op0: str, op1: str, rev: Any, tile_init: bool, bf16: bool, legacy: bool, seed: int
) -> None:
    r = np.random.default_rng(seed)
    d0 = r.uniform(0.0, 1.0, (p, a, b)).astype(F32)  # |r| stays bounded for products and sums alike
    d1 = r.uniform(-1.0, 1.0, (p, a, b)).astype(F32)
    init_t = r.uniform(-1.0, 1.0, (p, 1)).astype(F32)
    init = None if tile_init else float(r.uniform(-1, 1))
    dt = nl.bfloat16 if bf16 else nl.float32
    out = run(scan_kernel, d0, d1, init_t, init, op0, op1, rev[0], rev[1], dt, legacy)
    ref_dt = BF16 if bf16 else F32
    q0, q1 = rounded(d0, ref_dt).reshape(p, -1), rounded(d1, ref_dt).reshape(p, -1)
    ref = rounded(scan_ref(q0, q1, init_t if tile_init else init, op0, op1, *rev), ref_dt).reshape(p, a, b)
    atol = 1e-5 * a * b if not bf16 else 1e-2 * a * b
    np.testing.assert_allclose(out, ref, rtol=1e-5 if not bf16 else 1e-2, atol=atol)


def test_cumsum_by_scan(rng: np.random.Generator) -> None:
    """The documented cumulative-sum idiom: r = (1 * r) + x, i.e. op0=multiply with ones, op1=add."""
    x = rng.standard_normal((128, 300)).astype(F32)

    @nki.jit
    def k(x):
        t = load(x)
        ones = nl.ndarray(t.shape, nl.float32, buffer=nl.sbuf)
        nisa.memset(ones, 1.0)
        y = nl.ndarray(t.shape, nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor_scan(y, ones, t, 0.0, nl.multiply, nl.add)
        return store(y)

    np.testing.assert_allclose(run(k, x), np.cumsum(x.astype(np.float64), axis=1), rtol=1e-4, atol=1e-4)


# == scalar_tensor_tensor =============================================================================
@nki.jit
def stt_kernel(x, s_t, y_in, s, op0, op1, rev0, rev1, dt, legacy):
    a, b = load(x, dt), load(y_in, dt)
    operand0 = load(s_t) if s is None else s
    o0, o1 = getattr(nl, op0), getattr(nl, op1)
    if legacy:
        y = lisa.scalar_tensor_tensor(
            data=a, op0=o0, operand0=operand0, op1=o1, operand1=b, reverse0=rev0, reverse1=rev1, dtype=dt
        )
    else:
        y = nl.ndarray(a.shape, dt, buffer=nl.sbuf)
        nisa.scalar_tensor_tensor(y, a, o0, operand0, o1, b, reverse0=rev0, reverse1=rev1)
    return store(y, nl.float32)


@SOME
@given(
    p=parts,
    f=st.integers(1, 96),
    op0=st.sampled_from([*ARITH, "divide"]),
    op1=st.sampled_from([*ARITH, "divide"]),
    rev=st.tuples(st.booleans(), st.booleans()),
    tile_s=st.booleans(),
    bf16=st.booleans(),
    legacy=st.booleans(),
    seed=seeds,
)
def test_scalar_tensor_tensor(
    p: int, f: int, op0: str, op1: str, rev: Any, tile_s: bool, bf16: bool, legacy: bool, seed: int
) -> None:
    r = np.random.default_rng(seed)

    def away(shape: Any) -> np.ndarray:  # magnitudes in [0.5, 2]: divisions stay well defined
        return (r.uniform(0.5, 2.0, shape) * r.choice([-1.0, 1.0], shape)).astype(F32)

    x, y, s_t = away((p, f)), away((p, f)), away((p, 1))
    s = None if tile_s else float(away(()))
    dt, ref_dt = (nl.bfloat16, BF16) if bf16 else (nl.float32, F32)
    out = run(stt_kernel, x, s_t, y, s, op0, op1, rev[0], rev[1], dt, legacy)
    qx, qy = rounded(x, ref_dt), rounded(y, ref_dt)
    sv = s_t if tile_s else F32(s)
    t = (NP_OPS[op0](sv, qx) if rev[0] else NP_OPS[op0](qx, sv)).astype(F32)
    ref = rounded(NP_OPS[op1](qy, t) if rev[1] else NP_OPS[op1](t, qy), ref_dt)
    np.testing.assert_allclose(out, ref, rtol=1e-6 if not bf16 else 1e-2, atol=1e-6)


# == reciprocal ======================================================================================
@nki.jit
def recip_kernel(x, legacy):
    t = load(x)
    if legacy:
        return store(lisa.reciprocal(t, dtype=nl.float32))
    y = nl.ndarray(t.shape, nl.float32, buffer=nl.sbuf)
    nisa.reciprocal(y, t)
    return store(y)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("dt", [F32, BF16])
def test_reciprocal(rng: np.random.Generator, legacy: bool, dt: Any) -> None:
    x = (rng.uniform(0.01, 100.0, (128, 77)) * rng.choice([-1.0, 1.0], (128, 77))).astype(F32).astype(dt)
    prof = profile(recip_kernel, x, legacy)
    np.testing.assert_allclose(prof.outputs, 1.0 / x.astype(np.float64), rtol=1e-6)
    (ins,) = of(prof, Opcode.RECIPROCAL)
    assert ins.engine is Engine.VECTOR and ins.cycles == max(MIN_II, 8 * 77)


# == costs of the compound instructions ==============================================================
@nki.jit
def cost_kernel(x, dt, op0, op1):
    t = load(x, dt)
    y = nl.ndarray(t.shape, dt, buffer=nl.sbuf)
    nisa.scalar_tensor_tensor(y, t, getattr(nl, op0), 2.0, getattr(nl, op1), t)
    z = nl.ndarray(t.shape, dt, buffer=nl.sbuf)
    nisa.tensor_tensor_scan(z, t, y, 0.0, nl.multiply, nl.add)
    return store(z, nl.float32)


@pytest.mark.parametrize(
    ("n", "dt", "ops", "stt_cycles"),
    [
        (64, nl.bfloat16, ("subtract", "multiply"), 64),  # bf16 subtract-then-multiply, N even: N
        (63, nl.bfloat16, ("subtract", "multiply"), 126),  # odd N: 2N
        (64, nl.bfloat16, ("add", "multiply"), 128),  # other ops: 2N
        (64, nl.float32, ("subtract", "multiply"), 128),  # fp32: 2N
        (16, nl.bfloat16, ("subtract", "multiply"), 16),  # no MIN_II floor in the documented estimate
    ],
)
def test_compound_costs(rng: np.random.Generator, n: int, dt: Any, ops: tuple[str, str], stt_cycles: int) -> None:
    x = rng.uniform(0.5, 1.0, (32, n)).astype(F32)
    prof = profile(cost_kernel, x, dt, *ops)
    (stt,) = of(prof, Opcode.SCALAR_TENSOR_TENSOR)
    (scan,) = of(prof, Opcode.TENSOR_TENSOR_SCAN)
    assert stt.engine is Engine.VECTOR and scan.engine is Engine.VECTOR
    assert stt.cycles == stt_cycles
    assert scan.cycles == max(MIN_II, 2 * n)
    assert len(scan.reads) == 2 and len(stt.reads) == 2


# == compound-instruction errors =====================================================================
@nki.jit
def compound_errors_kernel(x, case):
    t = load(x)
    ps = nl.ndarray(t.shape, nl.float32, buffer=nl.psum)
    nisa.tensor_copy(dst=ps, src=t)
    ps2 = nl.ndarray(t.shape, nl.float32, buffer=nl.psum)
    nisa.tensor_copy(dst=ps2, src=t)
    y = nl.ndarray(t.shape, nl.float32, buffer=nl.sbuf)
    if case == "psum":
        nisa.tensor_tensor_scan(y, ps, ps2, 0.0, nl.add, nl.add)  # ERR-psum
    elif case == "bitvec":
        nisa.scalar_tensor_tensor(y, t, nl.bitwise_and, 1.0, nl.add, t)  # ERR-bitvec
    elif case == "operand0":
        nisa.scalar_tensor_tensor(y, t, nl.add, t, nl.add, t)  # ERR-operand0
    elif case == "operand1":
        nisa.scalar_tensor_tensor(y, t, nl.add, 1.0, nl.add, t[:, 0:1])  # ERR-operand1
    elif case == "initial":
        nisa.tensor_tensor_scan(y, t, t, "zero", nl.add, nl.add)  # ERR-initial
    return x


@pytest.mark.parametrize(
    ("case", "cls", "rule"),
    [
        ("psum", UsageError, "buffer"),
        ("bitvec", UsageError, "op"),
        ("operand0", ShapeMismatchError, "shape"),
        ("operand1", ShapeMismatchError, "shape"),
        ("initial", UsageError, None),
    ],
)
def test_compound_errors(rng: np.random.Generator, case: str, cls: type, rule: str | None) -> None:
    with pytest.raises(cls) as exc:
        run(compound_errors_kernel, rng.standard_normal((8, 6)).astype(F32), case)
    assert type(exc.value) is cls and exc.value.rule == rule
    assert exc.value.location == line_of(f"ERR-{case}")


# == legacy activation_reduce ========================================================================
@nki.jit
def act_reduce_kernel(x, bias):
    t = load(x)
    b = load(bias)
    res = nl.ndarray((x.shape[0], 1), nl.float32, buffer=nl.sbuf)
    y = lisa.activation_reduce(op=nl.exp, data=t, reduce_op=nl.add, reduce_res=res, bias=b, scale=0.5)
    return store(y), store(res)


@pytest.mark.parametrize("dt", [F32, BF16])
def test_legacy_activation_reduce(rng: np.random.Generator, dt: Any) -> None:
    x = rng.uniform(-2, 2, (100, 70)).astype(F32).astype(dt)
    bias = rng.uniform(-1, 1, (100, 1)).astype(F32)
    y, res = run(act_reduce_kernel, x, bias)
    e = np.exp(x.astype(np.float64) * 0.5 + bias)
    assert y.dtype == np.dtype(dt)
    np.testing.assert_allclose(y.astype(F32), rounded(e, dt), rtol=1e-5 if dt is F32 else 1e-2)
    np.testing.assert_allclose(res, e.sum(axis=1, keepdims=True), rtol=1e-5)  # summed before the cast


# == kernel call binding ==============================================================================
@nki.jit
def two_arg_kernel(a, b, scale=1.0):
    return store(load(a))


def test_call_binding_errors_name_the_kernel(rng: np.random.Generator) -> None:
    a = rng.standard_normal((4, 4)).astype(F32)
    with pytest.raises(UsageError, match=r"two_arg_kernel\(a, b, scale=1\.0\).*missing") as exc:
        nki.simulate(two_arg_kernel)(a)  # CALL-MISSING
    assert exc.value.location == line_of("CALL-MISSING") and exc.value.rule == "signature"
    with pytest.raises(UsageError, match="unexpected keyword") as exc:
        two_arg_kernel(a, a, sclae=2.0)  # CALL-TYPO
    assert exc.value.location == line_of("CALL-TYPO")
    with pytest.raises(UsageError, match="too many"):
        two_arg_kernel[2](a, a, 1.0, 2.0)
    np.testing.assert_array_equal(two_arg_kernel(a, b=a, scale=3.0), a)

"""nki.language additions against numpy: spmd_dim launches, loop_reduce, dynamic loops with tile trip
counts, memory-region queries, nki.compiler placements on nl.ndarray, nl.matmul of a PSUM operand, and
nisa.tensor_copy(dtype=) from NKI Beta (runs, warns once naming the release); plus their error rules.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import TileShapeError, UsageError
from trnsim.nki import compiler as ncc
from trnsim.nki import versions


@nki.jit
def add_tiles(a, b):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    i, j = nl.program_id(0), nl.program_id(1)
    rows, cols = slice(i * 128, (i + 1) * 128), slice(j * 64, (j + 1) * 64)
    nl.store(out[rows, cols], nl.add(nl.load(a[rows, cols]), nl.load(b[rows, cols])))
    return out


def test_spmd_dim_launches_every_program_over_the_cores(rng: np.random.Generator) -> None:
    gx, gy = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    a = rng.standard_normal((gx * 2 * 128, gy * 64)).astype(np.float32)
    b = rng.standard_normal(a.shape).astype(np.float32)
    prof = nki.profile(add_tiles[nl.spmd_dim(gx, nl.nc(2)), gy])(a, b)
    np.testing.assert_allclose(prof.outputs, a + b, rtol=1e-6)
    cores = {i.core for i in prof.instructions}
    assert cores == {0, 1}  # program n of the sharded dim runs on core n % 2
    with pytest.raises(UsageError, match="positive ints"):
        nl.spmd_dim(0, nl.nc(2))


@nki.jit
def loop_sum(x):
    k = x.shape[0] // 128
    acc = nl.zeros((128, x.shape[1]), dtype=nl.float32, buffer=nl.sbuf)
    for i in nl.affine_range(k):
        t = nl.load(x[i * 128 : (i + 1) * 128, :])
        acc[...] = nl.loop_reduce(t, op=np.add, loop_indices=[i], dtype=nl.float32)
    out = nl.ndarray((128, x.shape[1]), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, acc)
    return out


def test_loop_reduce_accumulates_into_its_destination(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128 * int(rng.integers(1, 5)), 32)).astype(np.float32)
    np.testing.assert_allclose(loop_sum(x), x.reshape(-1, 128, 32).sum(axis=0), rtol=1e-5, atol=1e-5)


@nki.jit
def count_loop(n_tile, x):
    n = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=n, src=n_tile)
    acc = nl.zeros(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    t = nl.load(x)
    for _ in nl.dynamic_range(n):
        nisa.tensor_tensor(dst=acc, data1=acc, data2=t, op=nl.add)
    hits = []
    nl.fori_loop(1, n, lambda i: hits.append(i))
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, acc)
    return out, len(hits)


def test_dynamic_loops_read_their_trip_count_from_a_tile(rng: np.random.Generator) -> None:
    n = int(rng.integers(0, 6))
    x = rng.standard_normal((16, 8)).astype(np.float32)
    out, hits = nki.simulate(count_loop)(np.array([[n]], dtype=np.int32), x)
    np.testing.assert_allclose(out, x * n, rtol=1e-5, atol=1e-6)
    assert hits == max(0, n - 1)
    with pytest.raises(UsageError, match="timing mode"):
        nki.profile(count_loop, mode="timing")(nki.TensorSpec((1, 1), "int32"), nki.TensorSpec((16, 8)))


@nki.jit
def regions(a):
    s = nl.ndarray((4, 4), dtype=nl.float32, buffer=nl.sbuf)
    p = nl.ndarray((4, 4), dtype=nl.float32, buffer=nl.psum)
    return [
        (nl.is_hbm(t), nl.is_on_chip(t), nl.is_sbuf(t), nl.is_psum(t))
        for t in (a, s, p, nl.shared_hbm, nl.MemoryRegion.psum)
    ]


def test_memory_region_queries() -> None:
    got = nki.simulate(regions)(np.zeros((2, 2), np.float32))
    want = [(True, False, False, False), (False, True, True, False), (False, True, False, True)]
    assert got == [*want, (True, False, False, False), (False, True, False, True)]


@nki.jit
def placed(a, which):
    if which == "psum-fn":
        t = nl.ndarray((2, nl.par_dim(128), 512), dtype=nl.float32, buffer=ncc.psum.alloc(lambda i, p, f: (i[0], 0, 0)))
    elif which == "psum-bad-bank":
        t = nl.ndarray((2, nl.par_dim(128), 512), dtype=nl.float32, buffer=ncc.psum.alloc(lambda i, p, f: (9, 0, 0)))
    elif which == "sbuf-bad-addr":
        t = nl.ndarray((nl.par_dim(128), 512), dtype=nl.float32, buffer=ncc.sbuf.alloc(lambda i, p, f: (0, 10**7)))
    elif which == "sbuf-bad-return":
        t = nl.ndarray((nl.par_dim(128), 512), dtype=nl.float32, buffer=ncc.sbuf.alloc(lambda i, p, f: 0))
    else:
        t = nl.ndarray((128, 64), dtype=nl.float32, buffer=ncc.sbuf.mod_alloc(base_addr=0, num_free_tiles=(2,)))
    return t.buffer


def test_compiler_placements_allocate_in_their_memory_and_are_checked() -> None:
    z = np.zeros((1, 1), np.float32)
    assert nki.simulate(placed)(z, "psum-fn") is nl.psum
    assert nki.simulate(placed)(z, "sbuf-mod") is nl.sbuf
    with pytest.raises(TileShapeError, match="outside PSUM"):
        nki.simulate(placed)(z, "psum-bad-bank")
    with pytest.raises(TileShapeError, match="outside SBUF"):
        nki.simulate(placed)(z, "sbuf-bad-addr")
    with pytest.raises(UsageError, match=r"must return \(start_partition, byte_addr\)"):
        nki.simulate(placed)(z, "sbuf-bad-return")


@nki.jit
def matmul_of_transposed(a, b):
    at = nl.transpose(nl.load(a))  # lands in PSUM
    out = nl.ndarray((a.shape[0], b.shape[1]), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, nl.matmul(at, nl.load(b), transpose_x=True))
    return out


def test_matmul_of_a_psum_operand(rng: np.random.Generator) -> None:
    a = rng.standard_normal((64, 128)).astype(np.float32)
    b = rng.standard_normal((128, 32)).astype(np.float32)
    np.testing.assert_allclose(matmul_of_transposed(a, b), a @ b, rtol=2e-2, atol=5e-2)


@nki.jit
def beta_copy(a, dtype):
    t = nl.load(a)
    s = nl.ndarray(a.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=s, src=t, dtype=dtype)
    out = nl.ndarray(a.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, s)
    return out


def test_tensor_copy_dtype_from_nki_beta_runs_and_warns_once(rng: np.random.Generator) -> None:
    a = rng.standard_normal((8, 8)).astype(np.float32)
    versions._warned.clear()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(beta_copy(a, nl.float32), a)
        np.testing.assert_array_equal(beta_copy(a, nl.float32), a)
    old = [w for w in seen if issubclass(w.category, versions.NkiVersionWarning)]
    assert len(old) == 1 and "NKI 0.1.0 (Neuron 2.27)" in str(old[0].message)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(beta_copy(a, nl.bfloat16), a)  # dst's fp32 wins: no rounding
    assert any("written as dst's dtype" in str(w.message) for w in seen)
    versions.set_api_version("beta")
    versions._warned.clear()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            beta_copy(a, nl.float32)
        assert not [w for w in seen if issubclass(w.category, versions.NkiVersionWarning)]
    finally:
        versions.set_api_version(versions.CURRENT)
    with pytest.raises(UsageError, match="unknown NKI version"):
        versions.set_api_version("0.9")


HOST_CONSTANTS: dict[str, np.ndarray] = {}  # host arrays the kernel embeds (as kernels use module globals)


@nki.jit
def add_constant(x, key, dtype):
    c = nl.shared_constant(HOST_CONSTANTS[key], dtype=dtype)
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, nl.add(nl.load(x), nl.load(c), dtype=nl.float32))
    return out


def test_shared_constant_is_in_hbm_before_the_kernel_runs(rng: np.random.Generator) -> None:
    x = rng.standard_normal((32, 16)).astype(np.float32)
    const = rng.integers(-5, 5, size=(32, 16)).astype(np.int8)
    HOST_CONSTANTS.update(table=const, scalar=np.array(3))
    prof = nki.profile(add_constant)(x, "table", nl.float32)
    np.testing.assert_allclose(prof.outputs, x + const.astype(np.float32), rtol=1e-6)
    assert sum(i.opcode.key == "dma_copy" for i in prof.instructions) == 3  # two loads and a store: no upload
    with pytest.raises(UsageError, match="numeric array"):
        nki.simulate(add_constant)(x, "scalar", None)


# Public parameter names of NKI 0.6 (aws-neuron-sdk nki/api/nki/language/__init__.py), as kernels pass them.
NKI_06_PARAMETERS = {
    "zeros_like": ["x", "dtype", "buffer", "name"],
    "empty_like": ["x", "dtype", "buffer", "name"],
    "copy": ["x", "dtype"],
    "expand_dims": ["x", "axis"],
    "broadcast_to": ["x", "shape", "dtype"],
    "affine_range": ["start", "stop", "step"],
    "sequential_range": ["start", "stop", "step"],
    "static_range": ["start", "stop", "step"],
    "ndarray": ["shape", "dtype", "buffer", "name", "address"],
    "device_print": ["print_prefix", "tensor"],
}


def test_language_functions_take_the_nki_parameter_names() -> None:
    import inspect

    for fn, names in NKI_06_PARAMETERS.items():
        params = inspect.signature(getattr(nl, fn)).parameters
        assert [n for n in names if n not in params] == [], fn
    assert list(nl.affine_range(3)) == [0, 1, 2] and list(nl.sequential_range(1, 7, 2)) == [1, 3, 5]


@nki.jit
def broadcast_cast(x, address):
    t = nl.ndarray((1, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf, address=address)
    nisa.dma_copy(dst=t, src=x)
    b = nl.broadcast_to(t, shape=(16, x.shape[1]), dtype=nl.bfloat16)
    out = nl.ndarray((16, x.shape[1]), dtype=nl.bfloat16, buffer=nl.shared_hbm)
    nl.store(out, b)
    return out


def test_broadcast_to_casts_and_ndarray_checks_its_address(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 8)).astype(np.float32)
    got = broadcast_cast(x, (0, 0)).astype(np.float32)
    np.testing.assert_array_equal(got, np.broadcast_to(x.astype(nl.bfloat16).astype(np.float32), (16, 8)))
    with pytest.raises(UsageError, match="address must be non-negative ints"):
        broadcast_cast(x, (-1, 0))

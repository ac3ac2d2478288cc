"""A replay's steps compiled once (nki/functional_replay_steps.py): operand views taken at recording, in-place PSUM
accumulation, transposes stored without a contiguous copy, input arguments read in place. On fresh random inputs, a
replay with these shortcuts gives the same bits as a replay without them (each step run as recorded) and as a full
functional trace, and is close to an independent numpy reference; the caller's arrays are never written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from trnsim import dtypes, kernels
from trnsim.compiler import kernel_replay
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.hw.presets import get_spec
from trnsim.nki import functional_replay_steps
from trnsim.nki import isa as nisa
from trnsim.nki import language as nl
from trnsim.nki.kernel import jit, trace

SPEC = get_spec("trn2")
BF16 = dtypes.bfloat16


@pytest.fixture(autouse=True)
def _fresh_store(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(kernel_replay.ENV, raising=False)
    monkeypatch.delenv(kernel_replay.ENV_MB, raising=False)
    kernel_replay.store().clear()
    yield
    kernel_replay.store().clear()


@jit
def _mixed(x, w):
    """Every shortcut and its variants: DMAs read as stored and through fp32, tensor copies on ScalarE (through
    fp32) and VectorE (bf16 -> fp32), bf16 and fp32 matmuls accumulating in PSUM, transposes of fp32 and bf16."""
    xf = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=xf, src=x)  # bf16 HBM -> fp32 SBUF: through fp32
    xb = nl.ndarray(x.shape, dtype=nl.bfloat16, buffer=nl.sbuf)
    nisa.dma_copy(dst=xb, src=x)  # as stored
    wf = nl.ndarray(w.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=wf, src=w)
    wb = nl.ndarray(w.shape, dtype=nl.bfloat16, buffer=nl.sbuf)
    nisa.tensor_copy(dst=wb, src=wf, engine=nisa.scalar_engine)  # fp32 -> bf16 on ScalarE
    wv = nl.ndarray(w.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=wv, src=wb, engine=nisa.vector_engine)  # bf16 -> fp32: read through fp32
    acc = nl.ndarray((x.shape[1], w.shape[1]), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul(acc, xb, wb)  # bf16 operands, overwrites
    nisa.nc_matmul(acc, xf, wv, accumulate=True)  # adds in place
    nisa.nc_matmul(acc, xf, wf, accumulate=True)
    tf = nl.ndarray((x.shape[1], x.shape[0]), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_transpose(dst=tf, data=xf)
    tb = nl.ndarray((x.shape[1], x.shape[0]), dtype=nl.bfloat16, buffer=nl.psum)
    nisa.nc_transpose(dst=tb, data=xb)
    outs = []
    for tile in (acc, tf, tb):
        s = nl.ndarray(tile.shape, dtype=tile.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=s, src=tile)
        out = nl.ndarray(tile.shape, dtype=tile.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=s)
        outs.append(out)
    return tuple(outs)


@jit
def _elementwise(w, k1, k2):
    """tensor_tensor with an fp32 op on fp32 and bf16 tiles and with an integer op, tensor_scalar with a [P, 1]
    tile operand and a scalar one, on tiles that are column slices of wider ones (reshaped to dst's shape)."""
    wide = nl.ndarray((w.shape[0], 2 * w.shape[1]), dtype=nl.float32, buffer=nl.sbuf)
    n = w.shape[1]
    nisa.dma_copy(dst=wide[:, n : 2 * n], src=w)
    wb = nl.ndarray(w.shape, dtype=nl.bfloat16, buffer=nl.sbuf)
    nisa.tensor_copy(dst=wb, src=wide[:, n : 2 * n])
    prod = nl.ndarray(w.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=prod, data1=wide[:, n : 2 * n], data2=wb, op=nl.multiply)
    col = nl.ndarray((w.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=col, src=wide[:, n : n + 1])
    sc = nl.ndarray(w.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=sc, data=prod, op0=nl.subtract, operand0=col, op1=nl.multiply, operand1=0.5)
    a = nl.ndarray(k1.shape, dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=a, src=k1)
    b = nl.ndarray(k2.shape, dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=b, src=k2)
    c = nl.ndarray(k1.shape, dtype=nl.int32, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=c, data1=a, data2=b, op=nl.bitwise_and)
    outs = []
    for tile in (prod, sc, c):
        out = nl.ndarray(tile.shape, dtype=tile.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=tile)
        outs.append(out)
    return tuple(outs)


def _elementwise_ref(w: np.ndarray, k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, ...]:
    prod = w.astype(np.float64) * w.astype(BF16).astype(np.float64)
    return prod, (prod - w[:, :1]) * 0.5, k1 & k2


def _mixed_ref(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    xf, wf = x.astype(np.float64), w.astype(np.float64)
    wb = w.astype(BF16).astype(np.float64)
    return xf.T @ wb + 2 * xf.T @ wf, xf.T, xf.T


def _f32(r: np.random.Generator, *shape: int) -> np.ndarray:
    return r.standard_normal(shape).astype(np.float32)


# name -> (kernel, fresh arguments, numpy reference of each output, relative tolerance)
CASES: dict[str, tuple[Any, Callable[[np.random.Generator], tuple[Any, ...]], Callable[..., Any], float]] = {
    "mixed": (_mixed, lambda r: (_f32(r, 128, 64).astype(BF16), _f32(r, 128, 96)), _mixed_ref, 2e-2),
    "elementwise": (
        _elementwise,
        lambda r: (
            _f32(r, 96, 40),
            r.integers(0, 2**20, size=(96, 40)).astype(np.int32),
            r.integers(0, 2**20, size=(96, 40)).astype(np.int32),
        ),
        _elementwise_ref,
        1e-6,
    ),
    "matmul_k_tiles": (kernels.matmul, lambda r: (_f32(r, 70, 300), _f32(r, 300, 530)), lambda a, b: a @ b, 1e-4),
    "linear_bf16": (
        kernels.linear,
        lambda r: (_f32(r, 64, 256).astype(BF16), _f32(r, 192, 256).astype(BF16)),
        lambda x, w: x.astype(np.float32) @ w.astype(np.float32).T,
        3e-2,
    ),
    "flash_attention": (
        kernels.flash_attention,
        lambda r: (_f32(r, 1, 2, 140, 64), _f32(r, 1, 2, 140, 64), _f32(r, 1, 2, 140, 64)),
        lambda q, k, v: _attention(q, k, v),
        1e-4,
    ),
}


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal, as the kernel's default."""
    s = q.astype(np.float64) @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    s = s + np.triu(np.full(s.shape[-2:], -np.inf), 1)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def _bits(x: Any) -> list[bytes]:
    xs = x if isinstance(x, tuple | list) else (x,)
    return [np.asarray(a).dtype.str.encode() + repr(np.asarray(a).shape).encode() + np.asarray(a).tobytes() for a in xs]


def _replayed(kernel: Any, make: Callable[[np.random.Generator], tuple[Any, ...]], seed: int) -> tuple[Any, Any, int]:
    """(outputs of a replay on fresh inputs of `seed`, those inputs, the replay's fast steps), recorded afresh."""
    kernel_replay.store().clear()
    cache = KernelCache(use_disk=False)
    rng = np.random.default_rng(seed)
    for _ in range(2):  # traced in full (cost cached), then recorded
        run_kernel(kernel, make(rng), {}, SPEC, True, cache)
    args = make(rng)
    store = kernel_replay.store()
    hits = store.hits
    out = run_kernel(kernel, args, {}, SPEC, True, cache)[0]
    assert store.hits == hits + 1, store.refused
    (replay,) = store.replays.values()
    return out, args, replay.fast_steps


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_steps_give_the_bits_of_steps_run_as_recorded(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, make, reference, tol = CASES[name]
    seed = int(np.random.default_rng().integers(2**32))
    fast, args, n_fast = _replayed(kernel, make, seed)
    assert n_fast > 0  # the shortcuts ran
    full = trace(kernel, args, {}, target=SPEC, mode="functional", cores=1).outputs()
    assert _bits(fast) == _bits(full)
    monkeypatch.setattr(functional_replay_steps, "_FAST", {})  # every step reads its operands as recorded
    slow, slow_args, n_slow = _replayed(kernel, make, seed)
    assert n_slow == 0
    assert all(np.array_equal(a, b) for a, b in zip(args, slow_args))
    assert _bits(fast) == _bits(slow)
    want = reference(*args)
    for got, ref in zip(fast if isinstance(fast, tuple) else (fast,), want if isinstance(want, tuple) else (want,)):
        got64 = np.asarray(got, dtype=np.float64)
        np.testing.assert_allclose(got64, ref, rtol=tol, atol=tol * max(1.0, float(np.abs(ref).max())))


def test_a_view_is_taken_only_of_tiles_indexed_by_slices() -> None:
    """Index-array (pattern) views, and allocations with unwritten elements, are read as recorded."""
    from trnsim.nki.functional_replay_steps import storage_view

    class _Root:
        fully_written = True

    class _Alloc:
        def __init__(self, storage: np.ndarray, written: bool) -> None:
            self.storage = storage
            self.root = _Root() if written else type("R", (), {"fully_written": False})()

    class _Tile:
        def __init__(self, alloc: _Alloc, index: tuple[Any, ...]) -> None:
            self.alloc, self.index = alloc, index

        def np_index(self, clip: bool = False) -> tuple[Any, ...]:
            return self.index

    rng = np.random.default_rng()
    storage = _f32(rng, 8, 16)
    view = storage_view(_Tile(_Alloc(storage, True), (slice(1, 5), slice(0, 16, 2))))
    assert view is not None and np.shares_memory(view, storage)
    assert np.array_equal(view, storage[1:5, ::2])
    assert storage_view(_Tile(_Alloc(storage, True), (np.array([0, 2]), slice(None)))) is None
    assert storage_view(_Tile(_Alloc(storage, False), (slice(1, 5), slice(None)))) is None
    assert storage_view(_Tile(_Alloc(storage, True), (3, 4))) is None  # one element: a scalar, not a view


@jit
def _scaled_sum(x, y):
    """2 * x + y, with x read through a reshape of itself (an alias allocation) and y as it is."""
    flat = x.reshape((x.shape[0] * x.shape[1] // 64, 64))
    a = nl.ndarray(flat.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=a, src=flat)
    b = nl.ndarray(y.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=b, src=y)
    s = nl.ndarray(y.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=s, data1=a, data2=a, op=nl.add)
    nisa.tensor_tensor(dst=s, data1=s, data2=b, op=nl.add)
    out = nl.ndarray(y.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=s)
    return out


@jit
def _accumulate_into_input(x, y):
    """x += y in x's own HBM tensor; returns x + y."""
    a = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=a, src=x)
    b = nl.ndarray(y.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=b, src=y)
    nisa.tensor_tensor(dst=a, data1=a, data2=b, op=nl.add)
    nisa.dma_copy(dst=x, src=a)
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=a)
    return out


def _record(kernel: Any, make: Callable[[], tuple[Any, ...]], cache: KernelCache) -> Any:
    for _ in range(2):  # traced in full (cost cached), then recorded
        run_kernel(kernel, make(), {}, SPEC, True, cache)
    (replay,) = kernel_replay.store().replays.values()
    return replay


def test_inputs_read_in_place_give_the_bits_of_copies_and_leave_the_arguments_alone() -> None:
    """matmul's inputs are read where they are (no copy into the replay's HBM): contiguous, strided and torch
    arguments give a full trace's bits, and the caller's arrays are unchanged and still writeable."""
    import torch

    rng = np.random.default_rng()
    m, k, n = (int(v) for v in rng.integers(20, 300, size=3))
    cache = KernelCache(use_disk=False)
    replay = _record(kernels.matmul, lambda: (_f32(rng, m, k), _f32(rng, k, n)), cache)
    assert len(replay.in_place) == 2
    wide = _f32(rng, k, 2 * n)
    for a, b in [
        (_f32(rng, m, k), _f32(rng, k, n)),
        (_f32(rng, k, m).T, wide[:, ::2]),  # strided views of bigger arrays
        (torch.from_numpy(_f32(rng, m, k)), torch.from_numpy(_f32(rng, k, n))),
    ]:
        a0, b0 = np.array(a), np.array(b)
        hits = kernel_replay.store().hits
        got = run_kernel(kernels.matmul, (a, b), {}, SPEC, True, cache)[0]
        assert kernel_replay.store().hits == hits + 1
        full = trace(kernels.matmul, (a0, b0), {}, target=SPEC, mode="functional", cores=1).outputs()
        assert _bits(np.asarray(got)) == _bits(full)
        np.testing.assert_allclose(np.asarray(got, np.float64), a0.astype(np.float64) @ b0, rtol=1e-4, atol=1e-3)
        for arg, before in ((a, a0), (b, b0)):
            arr: Any = arg.numpy() if isinstance(arg, torch.Tensor) else arg
            assert arr.tobytes() == before.tobytes() and arr.flags.writeable


def test_inputs_read_through_an_alias_or_written_are_copied() -> None:
    rng = np.random.default_rng()
    cache = KernelCache(use_disk=False)
    replay = _record(_scaled_sum, lambda: (_f32(rng, 4, 128), _f32(rng, 8, 64)), cache)
    assert [(p, id(a) in replay.in_place) for p, a in replay.inputs] == [("0", False), ("1", True)]  # x: reshaped
    for _ in range(2):
        x, y = _f32(rng, 4, 128), _f32(rng, 8, 64)
        got = run_kernel(_scaled_sum, (x, y), {}, SPEC, True, cache)[0]
        np.testing.assert_array_equal(got, (x.reshape(8, 64) + x.reshape(8, 64)) + y)
    kernel_replay.store().clear()
    cache = KernelCache(use_disk=False)
    replay = _record(_accumulate_into_input, lambda: (_f32(rng, 16, 40), _f32(rng, 16, 40)), cache)
    assert [(p, id(a) in replay.in_place) for p, a in replay.inputs] == [("0", False), ("1", True)]  # x: written
    for _ in range(2):
        x, y = _f32(rng, 16, 40), _f32(rng, 16, 40)
        x0 = x.copy()
        got = run_kernel(_accumulate_into_input, (x, y), {}, SPEC, True, cache)[0]
        np.testing.assert_array_equal(got, x0 + y)
        assert x.tobytes() == x0.tobytes()

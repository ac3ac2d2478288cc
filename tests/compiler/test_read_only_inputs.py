"""Read-only HBM inputs (nki/kernel.py trace(read_only_inputs=True), used by compiler/kernel_runner.py for full
functional traces): the kernel reads the argument arrays' own memory instead of a copy. On fresh random inputs the
outputs equal a copying trace's bit for bit and numpy's; the caller's arrays are unchanged; a kernel that writes an
input raises InputWrittenError there, and the runner traces it again with copies (right values, caller's array
untouched)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from trnsim import dtypes, kernels
from trnsim.compiler import kernel_replay, kernel_runner
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.errors import InputWrittenError
from trnsim.hw.presets import get_spec
from trnsim.nki import functional_replay
from trnsim.nki import isa as nisa
from trnsim.nki import language as nl
from trnsim.nki.kernel import Kernel, jit, trace

SPEC = get_spec("trn2")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Any:
    kernel_replay.store().clear()
    monkeypatch.setattr(kernel_runner, "_WRITES_INPUTS", set())
    yield
    kernel_replay.store().clear()


@jit
def _add_into_first(x, y):
    """x += y in place (x's own HBM tensor), and returns x + y as a new output too."""
    a = nl.load(x)
    b = nl.load(y)
    s = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=s, data1=a, data2=b, op=nl.add)
    nisa.dma_copy(dst=x, src=s)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=s)
    return out


def _hbm_args(kernel: Any, args: tuple[Any, ...], read_only: bool) -> tuple[Any, tuple[Any, ...]]:
    """(outputs, the HBM tensors the kernel was called with) of a functional trace."""
    sink: list[Any] = []
    wrapped = Kernel(functional_replay.capturing(kernel.fn, sink), kernel.grid)
    out = trace(wrapped, args, {}, target=SPEC, mode="functional", cores=1, read_only_inputs=read_only).outputs()
    return out, sink[0][0]


@pytest.mark.parametrize("table_dtype", ["float32", "bfloat16"])
def test_an_embedding_reads_its_table_in_place_with_the_same_bits(table_dtype: str) -> None:
    rng = np.random.default_rng()
    vocab, d = int(rng.integers(300, 900)), int(rng.integers(8, 96))
    table = rng.standard_normal((vocab, d)).astype(np.float32).astype(dtypes.resolve(table_dtype))
    ids = rng.integers(0, vocab, size=(2, int(rng.integers(5, 40))))
    before = table.copy()
    got, (_, hbm_table) = _hbm_args(kernels.embedding, (ids, table), read_only=True)
    assert np.shares_memory(hbm_table.alloc.storage, table)  # no copy of the table
    want, (_, copied) = _hbm_args(kernels.embedding, (ids, table), read_only=False)
    assert not np.shares_memory(copied.alloc.storage, table)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    assert got.tobytes() == table[ids].tobytes()  # a gather moves rows bit for bit
    assert table.tobytes() == before.tobytes() and table.flags.writeable  # the caller's array as it was


def test_a_torch_table_is_read_in_place_and_a_strided_one_is_copied() -> None:
    rng = np.random.default_rng()
    table = torch.from_numpy(rng.standard_normal((200, 24)).astype(np.float32))
    ids = rng.integers(0, 200, size=(17,))
    got, (_, hbm) = _hbm_args(kernels.embedding, (ids, table), read_only=True)
    assert np.shares_memory(hbm.alloc.storage, table.numpy())
    np.testing.assert_array_equal(got.numpy(), table.numpy()[ids])
    strided = table.t().contiguous().t()  # the same values, column-major: not aliased (its reshapes would copy)
    got2, (_, hbm2) = _hbm_args(kernels.embedding, (ids, strided), read_only=True)
    assert not np.shares_memory(hbm2.alloc.storage, strided.numpy())
    np.testing.assert_array_equal(got2.numpy(), table.numpy()[ids])


def test_a_kernel_that_writes_an_input_is_refused_read_only_and_rerun_with_copies_by_the_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(kernel_replay.ENV, "0")  # every call a full trace
    rng = np.random.default_rng()
    x = rng.standard_normal((64, 48)).astype(np.float32)
    y = rng.standard_normal((64, 48)).astype(np.float32)
    x0 = x.copy()
    with pytest.raises(InputWrittenError, match="writes one of its input arguments"):
        trace(_add_into_first, (x, y), {}, target=SPEC, mode="functional", cores=1, read_only_inputs=True)
    assert x.tobytes() == x0.tobytes()
    cache = KernelCache(use_disk=False)
    for _ in range(2):  # the first call finds the write and traces with copies; the second copies from the start
        out, _ = run_kernel(_add_into_first, (x, y), {}, SPEC, True, cache)
        np.testing.assert_array_equal(out, x0 + y)
        assert x.tobytes() == x0.tobytes()  # the caller's input is never written
    assert len(kernel_runner._WRITES_INPUTS) == 1


def test_a_refused_replay_runs_read_only_through_the_runner() -> None:
    """The embedding (refused by replay: it reads its ids on the host) is traced in full on every call, read-only."""
    rng = np.random.default_rng()
    table = rng.standard_normal((500, 32)).astype(np.float32)
    cache = KernelCache(use_disk=False)
    for _ in range(3):
        ids = rng.integers(0, 500, size=(3, 11))
        out, _ = run_kernel(kernels.embedding, (ids, table), {}, SPEC, True, cache)
        assert out.tobytes() == table[ids].tobytes()
    assert not kernel_runner._WRITES_INPUTS and not kernel_replay.store().replays

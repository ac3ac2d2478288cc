"""Tracing's shortcuts (nki/fast_paths.py) change nothing: the same instruction stream, timeline and values.

Each case traces a library kernel twice in one process, with the shortcuts on and off, and compares a digest
of every instruction's fields (allocation ids renumbered by first use, so the two traces' fresh ids compare)
and of the scheduled timeline; functional cases also compare the outputs byte for byte and against numpy.

Run as a script (`python tests/nki/test_trace_equivalence.py`) it prints one digest per case, so a tree
before a change (a git worktree on PYTHONPATH) can be compared with the tree after it.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim
import trnsim.kernels as K
from trnsim.hw import load_preset
from trnsim.nki import TensorSpec
from trnsim.nki.kernel import trace

BF16 = "bfloat16"
PACKAGE_DIR = str(Path(trnsim.__file__).parent)
TARGETS = ("trn1", "trn2")

# name -> (kernel, argument shapes, keyword arguments); ragged sizes on purpose (no multiple of 128 or 512)
CASES: dict[str, tuple[Any, tuple[tuple[int, ...], ...], dict[str, Any]]] = {
    "matmul_ragged": (K.matmul, ((300, 700), (700, 520)), {}),
    "matmul_grouped_v": (K.matmul, ((512, 2048), (2048, 1024)), {}),
    "linear_bias_gelu": (K.linear, ((200, 384), (300, 384), (300,)), {"activation": "gelu"}),
    "flash_causal": (K.flash_attention, ((1, 2, 384, 64),) * 3, {"causal": True}),
    "rmsnorm": (K.rmsnorm, ((300, 520), (520,)), {}),
    "softmax": (K.softmax, ((200, 1000),), {}),
    "conv2d": (K.conv2d, ((1, 16, 18, 18), (24, 16, 3, 3)), {"padding": 1}),
}


def _renumber(regions: tuple[tuple[int, ...], ...], ids: dict[int, int]) -> tuple[tuple[int, ...], ...]:
    return tuple((ids.setdefault(r[0], len(ids)), *r[1:]) for r in regions)


def stream_digest(traced: Any) -> str:
    """sha256 of every instruction's fields and of the scheduled timeline."""
    h = hashlib.sha256()
    ids: dict[int, int] = {}
    for ins in traced.machine.instructions:
        fields = (
            ins.opcode.name,
            ins.engine.name,
            ins.core,
            _renumber(ins.reads, ids),
            _renumber(ins.writes, ids),
            repr(float(ins.cycles)),
            ins.dma_bytes,
            ins.dma_rows,
            ins.dma_row_bytes,
            ins.hbm_bytes,
            ins.flops,
            ins.accumulate,
            ins.touches_psum,
            ins.touches_sbuf,
            ins.location.replace(PACKAGE_DIR, "trnsim"),  # the same kernel line in another checkout
            ins.label,
        )
        h.update(repr(fields).encode())
    for aid, rec in sorted(traced.machine.allocations.items()):  # where each tensor went, and what it waits on
        h.update(repr((ids.get(aid), rec.kind, rec.core, rec.offset, rec.nbytes, rec.issued_before)).encode())
    for aid, reused in sorted(traced.machine.reuse.items()):
        h.update(repr((ids.get(aid), tuple(ids.get(r) for r in reused))).encode())
    timeline = traced.profile().timeline
    for arr in (
        timeline.instr_start,
        timeline.instr_end,
        timeline.slice_unit,
        timeline.slice_start,
        timeline.slice_end,
    ):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


@contextmanager
def no_automatic_gc() -> Iterator[None]:
    """A tile held only by a reference cycle frees its bytes when the cyclic GC runs, which depends on how many
    objects the tracer allocated: without automatic collection, placement follows the kernel alone."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _timing_trace(name: str, target: str) -> Any:
    kernel, shapes, kwargs = CASES[name]
    specs = tuple(TensorSpec(s, BF16) for s in shapes)
    with no_automatic_gc():
        return trace(kernel, specs, kwargs, target=load_preset(target), mode="timing", cores=1)


def _both(run: Callable[[], Any]) -> tuple[Any, Any]:
    from trnsim.nki import fast_paths

    with no_automatic_gc():
        fast = run()
    with fast_paths.disabled(), no_automatic_gc():
        full = run()
    return fast, full


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_timing_stream_identical(name: str, target: str) -> None:
    fast, full = _both(lambda: _timing_trace(name, target))
    assert len(fast.machine.instructions) == len(full.machine.instructions) > 0
    assert stream_digest(fast) == stream_digest(full)


def test_shortcuts_can_be_switched_off() -> None:
    from trnsim.nki import fast_paths

    assert fast_paths.enabled()
    with fast_paths.disabled():
        assert not fast_paths.enabled()
    assert fast_paths.enabled()


@pytest.mark.parametrize("target", TARGETS)
def test_functional_matmul_identical_and_exact(target: str) -> None:
    """Values through the shortcuts: the grouped-V GEMM (access-pattern loads) against numpy."""
    rng = np.random.default_rng()
    a = rng.standard_normal((256, 1536)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((1536, 640)).astype(ml_dtypes.bfloat16)

    def run() -> Any:
        return trace(K.matmul, (a, b), {}, target=load_preset(target), mode="functional", cores=1)

    fast, full = _both(run)
    got, ref_got = np.asarray(fast.outputs()), np.asarray(full.outputs())
    assert got.tobytes() == ref_got.tobytes()
    assert stream_digest(fast) == stream_digest(full)
    ref = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(got.astype(np.float32), ref, rtol=1e-2, atol=1e-2 * float(np.abs(ref).max()))


def test_functional_flash_attention_identical() -> None:
    rng = np.random.default_rng()
    q, k, v = (rng.standard_normal((1, 2, 256, 64)).astype(ml_dtypes.bfloat16) for _ in range(3))

    def run() -> Any:
        return trace(K.flash_attention, (q, k, v), {"causal": True}, target=load_preset("trn2"), mode="functional")

    fast, full = _both(run)
    got = np.asarray(fast.outputs())
    assert got.tobytes() == np.asarray(full.outputs()).tobytes()
    qf, kf, vf = (x.astype(np.float32) for x in (q, k, v))
    s = qf @ kf.transpose(0, 1, 3, 2) / np.sqrt(64.0)
    s = np.where(np.tril(np.ones((256, 256), dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ vf
    np.testing.assert_allclose(got.astype(np.float32), ref, rtol=2e-2, atol=2e-2)


if __name__ == "__main__":
    for case in sorted(CASES):
        for tgt in TARGETS:
            traced = _timing_trace(case, tgt)
            print(case, tgt, len(traced.machine.instructions), stream_digest(traced))

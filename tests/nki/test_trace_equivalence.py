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
import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
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


# GEMMs whose matmul steps are stamped from loop-body templates (nki/loop_template.py): ragged M, N and K (the
# ragged last k-step and last row/column tiles are bodies of their own), each float dtype, fp8 double-row on trn3,
# several jobs in one pipeline (batched, grouped: ragged groups), linear (V transposed on chip).
GEMM_CASES: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any], str]] = {
    "matmul_ragged_mnk": (K.matmul, ((300, 1100), (1100, 700)), {}, BF16),
    "matmul_fp32": (K.matmul, ((200, 1000), (1000, 600)), {}, "float32"),
    "matmul_fp16_long_k": (K.matmul, ((130, 2600), (2600, 520)), {}, "float16"),
    "matmul_fp8": (K.matmul, ((256, 1400), (1400, 520)), {}, "float8_e4m3"),
    "batched_matmul": (K.batched_matmul, ((2, 200, 700), (2, 700, 300)), {}, BF16),
    "grouped_matmul": (K.grouped_matmul, ((500, 1000), (3, 1000, 300), [130, 130, 500]), {}, BF16),
    "linear_gelu_residual": (
        K.linear,
        ((150, 1000), (600, 1000), (600,)),
        {"activation": "gelu", "residual": TensorSpec((150, 600), BF16)},
        BF16,
    ),
}
GEMM_RUNS = [
    *(("matmul_ragged_mnk", t) for t in ("trn1", "trn2", "trn3")),
    ("matmul_fp32", "trn2"),
    ("matmul_fp16_long_k", "trn1"),
    ("matmul_fp8", "trn2"),
    ("matmul_fp8", "trn3"),  # double-row k-steps
    ("batched_matmul", "trn2"),
    ("grouped_matmul", "trn3"),
    ("linear_gelu_residual", "trn1"),
    ("linear_gelu_residual", "trn2"),
]


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


def _gemm_trace(name: str, target: str) -> Any:
    kernel, shapes, kwargs, dtype = GEMM_CASES[name]
    args = tuple(TensorSpec(s, dtype) if isinstance(s, tuple) else s for s in shapes)
    with no_automatic_gc():
        return trace(kernel, args, kwargs, target=load_preset(target), mode="timing", cores=1)


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


@pytest.mark.parametrize(("name", "target"), GEMM_RUNS)
def test_gemm_templates_stream_identical(name: str, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GEMM's stamped matmul steps give the stream its Python gives (and the templates were used)."""
    import trnsim.kernels._gemm as gemm
    from trnsim.nki.loop_template import Templates

    made: list[Templates] = []

    class Recorded(Templates):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(gemm, "Templates", Recorded)
    fast, full = _both(lambda: _gemm_trace(name, target))
    assert made and made[0].on and not made[-1].on  # shortcuts on, then off
    assert sum(t.stamped for t in made) > 0
    assert len(fast.machine.instructions) == len(full.machine.instructions) > 0
    assert stream_digest(fast) == stream_digest(full)


_MADE: list[Any] = []  # the Templates of the last _column_blocks traces


@nki.jit
def _column_blocks(a, mode="affine"):
    """out = a, 64 columns at a time through SBUF, each block's three instructions one loop body (Templates).

    mode "affine": the body's operands are bound as views, so each call is the last one moved by a constant;
    "squares": a and out are bound whole and block i reads columns 8 i^2 (wrapped) of a: no constant shift;
    "allocating": the body allocates a tile of its own."""
    from trnsim.nki.loop_template import Templates

    rows, n = a.shape
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    ring = [
        (nl.ndarray((rows, 64), a.dtype, buffer=nl.sbuf), nl.ndarray((rows, 64), a.dtype, buffer=nl.sbuf))
        for _ in range(3)
    ]
    templates = Templates()
    _MADE.append(templates)

    def body(src, t1, t2, dst):
        if mode == "allocating":
            t2 = nl.ndarray((rows, 64), a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t1, src=src)
        nisa.tensor_copy(dst=t2, src=t1)
        nisa.dma_copy(dst=dst, src=t2)

    for i in range(n // 64):
        t1, t2 = ring[i % 3]
        if mode == "squares":
            c = (8 * i * i) % (n - 63)
            templates.run("block", (a, t1, t2, out), body, a[:, c : c + 64], t1, t2, out[:, 64 * i : 64 * i + 64])
        else:
            c = 64 * i
            src, dst = a[:, c : c + 64], out[:, c : c + 64]
            templates.run("block", (src, t1, t2, dst), body, src, t1, t2, dst)
    return out


@pytest.mark.parametrize("mode", ["affine", "squares", "allocating"])
def test_templates_stamp_only_affine_bodies(mode: str) -> None:
    """A body that repeats with a constant shift is stamped; one that does not (or allocates) falls back to its
    Python every time; either way the stream is the one its Python gives, and the values are a's."""
    _MADE.clear()
    fast, full = _both(
        lambda: trace(
            _column_blocks, (TensorSpec((128, 1024), BF16),), {"mode": mode}, target=load_preset("trn2"), mode="timing"
        )
    )
    assert [t.on for t in _MADE] == [True, False]
    assert (_MADE[0].stamped > 0) == (mode == "affine")
    assert _MADE[0].stamped + _MADE[0].real == 16
    assert len(fast.machine.instructions) == len(full.machine.instructions) == 48
    assert stream_digest(fast) == stream_digest(full)
    a = np.random.default_rng().standard_normal((128, 1024)).astype(ml_dtypes.bfloat16)
    got = trace(_column_blocks, (a,), {"mode": mode}, target=load_preset("trn2"), mode="functional").outputs()
    if mode == "squares":  # block i holds columns 8 i^2 (wrapped) of a
        ref = np.concatenate([a[:, (8 * i * i) % 961 : (8 * i * i) % 961 + 64] for i in range(16)], axis=1)
    else:
        ref = a
    assert np.asarray(got).tobytes() == ref.tobytes()


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

"""Loop templates of bodies that allocate (nki/loop_template.py): stamped traces equal the traced ones.

Each case traces twice in one process, tracing shortcuts on and off, and compares the sha256 digest of every
instruction, allocation (offset, size, issued_before), reuse entry and the scheduled timeline
(test_trace_equivalence.stream_digest). Flash attention's steps (scores, exp, P^T transposes and copies, P V)
are such bodies; the unit cases below check what a body may and may not do, and the values against numpy.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.kernels as K
import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.hw import load_preset
from trnsim.nki import TensorSpec
from trnsim.nki.kernel import trace
from trnsim.nki.loop_template import Templates

from .test_trace_equivalence import _both, no_automatic_gc, stream_digest

# name -> (q shape, kv shape, causal, dtype, target); ragged S (no multiple of 128 or 512) on purpose
FLASH: dict[str, tuple[tuple[int, ...], tuple[int, ...], bool, str, str]] = {
    "causal_trn2": ((1, 2, 1024, 64), (1, 2, 1024, 64), True, "bfloat16", "trn2"),
    "noncausal_ragged_trn2": ((1, 2, 900, 64), (1, 2, 900, 64), False, "bfloat16", "trn2"),
    "causal_ragged_gqa_trn1": ((1, 4, 700, 64), (1, 1, 700, 64), True, "bfloat16", "trn1"),
    "causal_gqa_trn3": ((1, 4, 1024, 128), (1, 2, 1024, 128), True, "bfloat16", "trn3"),
    "noncausal_fp32_trn2": ((1, 1, 1100, 128), (1, 1, 1100, 128), False, "float32", "trn2"),
    "causal_fp16_trn1": ((1, 2, 1024, 64), (1, 2, 1024, 64), True, "float16", "trn1"),
}


def _recording(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Templates]:
    made: list[Templates] = []

    class Recorded(Templates):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(module, "Templates", Recorded)
    return made


@pytest.mark.parametrize("name", sorted(FLASH))
def test_flash_attention_stamped_stream_identical(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import trnsim.kernels.attention as attention

    q, kv, causal, dtype, target = FLASH[name]
    made = _recording(monkeypatch, attention)
    args = (TensorSpec(q, dtype), TensorSpec(kv, dtype), TensorSpec(kv, dtype))
    fast, full = _both(
        lambda: trace(K.flash_attention, args, {"causal": causal}, target=load_preset(target), mode="timing", cores=1)
    )
    assert made[0].on and not made[-1].on
    assert made[0].stamped > 0  # the steps were stamped, allocations included
    assert len(fast.machine.instructions) == len(full.machine.instructions) > 0
    assert stream_digest(fast) == stream_digest(full)


@nki.jit
def _kernel(a: Any, mode: str = "returns") -> Any:
    """out = 2 * a + 1, 64 columns per loop body through SBUF tiles the body allocates.

    "returns": the body allocates a scratch tile (freed when it returns) and its result tile, which it returns
    (stored by the caller); "keeps": it also keeps its result tile in a list, which templates must not stamp."""
    rows, n = a.shape
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    templates = Templates()
    _MADE.append(templates)
    kept: list[Any] = []

    def body(src: Any) -> tuple[Any, int]:
        scratch = nl.ndarray((rows, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=scratch, src=src)
        res = nl.ndarray((rows, 64), a.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=res, data=scratch, op0=nl.multiply, operand0=2.0, op1=nl.add, operand1=1.0)
        if mode == "keeps":
            kept.append(res)
        return res[:, :64], 64

    for i in range(n // 64):
        src = a[:, 64 * i : 64 * i + 64]
        res, width = templates.run("block", (src,), body, src)
        nisa.dma_copy(dst=out[:, 64 * i : 64 * i + width], src=res)
    return out


_MADE: list[Templates] = []


@pytest.mark.parametrize("mode", ["returns", "keeps"])
def test_allocating_body(mode: str) -> None:
    """A body whose tiles are freed or returned is stamped (allocations replayed, its result rebuilt); one that
    keeps a tile elsewhere runs its Python every time. Either way the stream is the one its Python gives."""
    _MADE.clear()
    fast, full = _both(
        lambda: trace(
            _kernel, (TensorSpec((128, 1024), "bfloat16"),), {"mode": mode}, target=load_preset("trn2"), mode="timing"
        )
    )
    assert [t.on for t in _MADE] == [True, False]
    assert (_MADE[0].stamped > 0) == (mode == "returns")
    assert _MADE[0].stamped + _MADE[0].real == 16
    assert len(fast.machine.instructions) == len(full.machine.instructions) == 48
    assert len(fast.machine.allocations) == len(full.machine.allocations)
    assert stream_digest(fast) == stream_digest(full)
    a = np.random.default_rng().standard_normal((128, 1024)).astype(ml_dtypes.bfloat16)
    got = trace(_kernel, (a,), {"mode": mode}, target=load_preset("trn2"), mode="functional").outputs()
    ref = (2 * a.astype(np.float32) + 1).astype(ml_dtypes.bfloat16)
    np.testing.assert_allclose(np.asarray(got, np.float32), ref.astype(np.float32), rtol=1e-2, atol=1e-2)


def test_allocating_body_runs_while_spilling(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the compiler-spill model on, bodies that allocate run their Python (the stream is still identical)."""
    monkeypatch.setenv("TRNSIM_SPILL", "compiler")
    _MADE.clear()
    fast, full = _both(
        lambda: trace(_kernel, (TensorSpec((128, 512), "bfloat16"),), {}, target=load_preset("trn2"), mode="timing")
    )
    assert _MADE[0].on and _MADE[0].stamped == 0
    assert stream_digest(fast) == stream_digest(full)


def test_flash_attention_values_unchanged() -> None:
    """Flash attention (templates only act in timing runs) still matches a numpy reference."""
    rng = np.random.default_rng()
    q, k, v = (rng.standard_normal((1, 2, 300, 64)).astype(np.float32) for _ in range(3))
    with no_automatic_gc():
        got = np.asarray(trace(K.flash_attention, (q, k, v), {"causal": True}, target=load_preset("trn2")).outputs())
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(64)
    s = np.where(np.tril(np.ones((300, 300), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ v
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3)

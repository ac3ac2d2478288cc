"""The library GEMM's stamped loop bodies (nki/loop_template.py) change nothing, evacuations included.

The GEMM's matmul steps, loads, transposes with their copy out of PSUM, the matmul epilogue's casts and stores are
loop bodies stamped from templates in timing runs; the PSUM copies' engine (VectorE or ScalarE, by a running cost
estimate, kernels/_evacuate.py) is chosen outside the bodies and is one of their keys. Each case traces a GEMM with
the shortcuts on and off and compares sha256 digests of every instruction, allocation and the scheduled timeline
(tests/nki/test_trace_equivalence.py's stream_digest): ragged M / N / K, fp32 / bf16 / fp16 / fp8, trn1 / trn2 /
trn3, linear's epilogues, and decode-sized linears (M = 1..256 tokens).

Run as a script (`python tests/nki/test_trace_equivalence_gemm.py`) it prints one digest per case (shortcuts
off), so a tree before a change (its src on PYTHONPATH) can be compared with the tree after it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.kernels as K
from trnsim.hw import load_preset
from trnsim.nki import TensorSpec
from trnsim.nki.kernel import trace

sys.path.insert(0, str(Path(__file__).parent))
from test_trace_equivalence import _both, no_automatic_gc, stream_digest

BF16 = "bfloat16"


def _linear(tokens: int, k: int, n: int, dtype: str = BF16, **kw: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    args: tuple[Any, ...] = ((tokens, k), (n, k))
    if kw.pop("bias", False):
        args = (*args, (n,))
    if kw.pop("residual", False):
        kw["residual"] = TensorSpec((tokens, n), dtype)
    return (K.linear, args, kw)


# name -> (kernel, argument shapes (or other arguments), keyword arguments), dtype, targets
CASES: dict[str, tuple[tuple[Any, tuple[Any, ...], dict[str, Any]], str, tuple[str, ...]]] = {
    "matmul_ragged": ((K.matmul, ((300, 1100), (1100, 700)), {}), BF16, ("trn1", "trn2", "trn3")),
    "matmul_wide_strips": ((K.matmul, ((700, 900), (900, 1500)), {}), BF16, ("trn2",)),
    "matmul_long_k": ((K.matmul, ((512, 4096), (4096, 1024)), {}), BF16, ("trn2",)),
    "matmul_fp32": ((K.matmul, ((200, 1000), (1000, 600)), {}), "float32", ("trn1", "trn2")),
    "matmul_fp16": ((K.matmul, ((130, 2600), (2600, 520)), {}), "float16", ("trn2",)),
    "matmul_fp8": ((K.matmul, ((256, 1400), (1400, 520)), {}), "float8_e4m3", ("trn2", "trn3")),
    "batched": ((K.batched_matmul, ((2, 200, 700), (2, 700, 300)), {}), BF16, ("trn2",)),
    "grouped": ((K.grouped_matmul, ((500, 1000), (3, 1000, 300), [130, 130, 500]), {}), BF16, ("trn3",)),
    "linear_bias_gelu_residual": (
        _linear(150, 1000, 600, bias=True, residual=True, activation="gelu"),
        BF16,
        ("trn1", "trn2"),
    ),
    "linear_plain_fp32": (_linear(200, 700, 300, "float32"), "float32", ("trn2",)),
    "linear_fp8_silu": (_linear(96, 1300, 400, "float8_e4m3", bias=True, activation="silu"), "float8_e4m3", ("trn3",)),
    **{
        f"decode_m{m}": (_linear(m, 2048, 1536, bias=m % 2 == 1), BF16, ("trn2",) if m != 64 else ("trn1", "trn3"))
        for m in (1, 7, 64, 256)
    },
}
RUNS = [(name, target) for name, (_, _, targets) in CASES.items() for target in targets]


def _trace(name: str, target: str, mode: Any = "timing", values: tuple[Any, ...] | None = None) -> Any:
    (kernel, shapes, kwargs), dtype, _ = CASES[name]
    if values is None:
        values = tuple(TensorSpec(s, dtype) if isinstance(s, tuple) else s for s in shapes)
    with no_automatic_gc():
        return trace(kernel, values, kwargs, target=load_preset(target), mode=mode, cores=1)


@pytest.mark.parametrize(("name", "target"), RUNS)
def test_gemm_stream_identical(name: str, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shortcuts on and off give the same instructions, allocations and timeline, and the evacuations were
    stamped (the copies out of PSUM are part of stamped bodies)."""
    import trnsim.kernels._gemm as gemm
    from trnsim.nki.loop_template import Templates

    mm = sys.modules["trnsim.kernels.matmul"]  # the module (trnsim.kernels.matmul is also the kernel's name)

    made: list[Templates] = []

    class Recorded(Templates):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(gemm, "Templates", Recorded)
    monkeypatch.setattr(mm, "Templates", Recorded)
    fast, full = _both(lambda: _trace(name, target))
    assert made and made[0].on and not made[-1].on
    assert sum(t.stamped for t in made if t.on) > 0
    assert len(fast.machine.instructions) == len(full.machine.instructions) > 0
    assert stream_digest(fast) == stream_digest(full)


def _stamped_copies(name: str, target: str) -> tuple[int, int]:
    """(copies out of PSUM issued, of them stamped from templates) in a timing trace."""
    from trnsim.isa.opcodes import Opcode
    from trnsim.nki import loop_template

    stamped = [0]
    real_stamp = loop_template.Templates._stamp

    def counting(self: Any, tpl: Any, *a: Any) -> None:
        stamped[0] += sum(
            1 for values, *_ in tpl.ins if values[loop_template._OPCODE] in (Opcode.TENSOR_COPY, Opcode.ACTIVATION)
        )
        real_stamp(self, tpl, *a)

    loop_template.Templates._stamp = counting  # type: ignore[method-assign,assignment]
    try:
        traced = _trace(name, target)
    finally:
        loop_template.Templates._stamp = real_stamp  # type: ignore[method-assign]
    copies = sum(1 for ins in traced.machine.instructions if ins.opcode in (Opcode.TENSOR_COPY, Opcode.ACTIVATION))
    return copies, stamped[0]


@pytest.mark.parametrize(("name", "target"), [("matmul_long_k", "trn2"), ("decode_m7", "trn2")])
def test_evacuations_are_stamped(name: str, target: str) -> None:
    """Most copies out of PSUM (the transposes' and the accumulators') come from stamped bodies once a GEMM has
    a few blocks (the first call of each body and two more run its Python)."""
    copies, stamped = _stamped_copies(name, target)
    assert copies > 0 and stamped > copies // 2


@pytest.mark.parametrize(("name", "target"), [("matmul_ragged", "trn2"), ("decode_m7", "trn2")])
def test_functional_values_match_numpy(name: str, target: str) -> None:
    """The same kernels in functional mode (no stamping) against numpy."""
    (kernel, shapes, _kw), _, _ = CASES[name]
    rng = np.random.default_rng()
    vals = tuple(rng.standard_normal(s).astype(ml_dtypes.bfloat16) for s in shapes)
    got = np.asarray(_trace(name, target, "functional", vals).outputs()).astype(np.float32)
    a, b = (v.astype(np.float32) for v in vals[:2])
    ref = a @ b if kernel is K.matmul else a @ b.T
    if len(vals) > 2:
        ref = ref + vals[2].astype(np.float32)
    np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-2 * float(np.abs(ref).max()))


if __name__ == "__main__":
    import dataclasses
    import re

    from trnsim.nki import fast_paths

    with fast_paths.disabled():
        for case, tgt in RUNS:
            traced = _trace(case, tgt)
            # kernel lines move between trees: the digest keeps each instruction's file, not its line
            ins = traced.machine.instructions
            ins[:] = [dataclasses.replace(i, location=re.sub(r":\d+$", "", i.location)) for i in ins]
            print(case, tgt, len(ins), stream_digest(traced), flush=True)

"""Loop extension rules for the kernels an MoE layer spends its simulation on (the mechanism, probes and checks
are loop_extrapolation.py's): the batched transpose over its batches (a sum over a middle axis, such as the
combine of the top-k expert outputs [tokens, k, hidden], is lowered to one) and the grouped expert matmul over
experts of equal rows. tests/compiler/test_fast_estimate_moe.py measures them against full simulation.
"""

from __future__ import annotations

import contextlib
from typing import Any

from trnsim.compiler.loop_extrapolation import RULES as GEMM_RULES
from trnsim.compiler.loop_extrapolation import Loop, Rule, cheaper, planned_as, spec_like, walk
from trnsim.hw.spec import HardwareSpec
from trnsim.nki.kernel import TensorSpec

# A batched transpose's batches are a few instructions each: probes of 2-6 batches were off by up to 4.6% (trn2
# [100, 8, 512]); probes of 16, 32, 64 batches and on came within 0.08% (tests/compiler/test_fast_estimate_moe.py)
TRANSPOSE_FIRST = 16
# Equal experts of a grouped matmul, probed 4, 8, 16 experts and on: within 0.4% of full simulation over 60
# experts of 64-96 rows (trn1, trn2); experts of 16 rows came within 0.8% or were simulated in full
GROUPED_FIRST = 4


def _transpose(bound: dict[str, Any], spec: HardwareSpec) -> Loop | None:
    """A batched [B, M, N] transpose: the batches are one body (panels of one matrix) repeated."""
    x = bound.get("x")
    if not (isinstance(x, TensorSpec) and len(x.shape) == 3):
        return None
    b, m, n = x.shape
    found = walk(b, 1, lambda jobs: ((spec_like((jobs, m, n), x),), {}), doubling=True, first=TRANSPOSE_FIRST)
    return cheaper(found, None, (b, n, m), contextlib.nullcontext)


def _grouped_matmul(bound: dict[str, Any], spec: HardwareSpec) -> Loop | None:
    """Experts of equal rows (offsets r, 2r, ...): each is one job of the same GEMM pipeline, walked like batches."""
    x, w, offsets = bound.get("x"), bound.get("w"), bound.get("offsets")
    if not (isinstance(x, TensorSpec) and isinstance(w, TensorSpec) and isinstance(offsets, list | tuple)):
        return None
    if len(x.shape) != 2 or len(w.shape) != 3 or len(offsets) != w.shape[0] or x.shape[1] != w.shape[1]:
        return None
    groups, k, n = w.shape
    size = x.shape[0] // groups
    if size < 1 or list(offsets) != [size * (g + 1) for g in range(groups)] or size * groups != x.shape[0]:
        return None  # groups of different sizes are jobs of different lengths (the kernel runs the tallest first)
    rest = {"out_dtype": bound.get("out_dtype")}

    def jobs(g: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (spec_like((g * size, k), x), spec_like((g, k, n), w), [size * (i + 1) for i in range(g)]), rest

    found = walk(groups, 1, jobs, doubling=True, first=GROUPED_FIRST)
    return cheaper(found, None, (x.shape[0], n), planned_as(jobs=groups))


# kernel name -> (its parameter names, the rule): the library's rules and these
RULES: dict[str, tuple[tuple[str, ...], Rule]] = {
    **GEMM_RULES,
    "transpose": (("x",), _transpose),
    "grouped_matmul": (("x", "w", "offsets", "out_dtype"), _grouped_matmul),
}

"""A long linear extended over both of its GEMM loops at once: strips of output features and blocks of tokens.

A library GEMM (kernels/_gemm.py) runs every (strip, block) pair through one pipeline, so once it is full its
cost is bilinear in the strip count i and the block count j: cost(i, j) = a + b i + c j + d i j (b: a strip's
own work such as its transposes, c: a block's, d: one pair's). Four probes, (i0, j0), (i0 + 1, j0),
(i0, j0 + 1) and (i0 + 1, j0 + 1), fix the four numbers; a fifth at (i0 + 2, j0 + 2) checks them: its
latency must match the fit within CHECK_TOLERANCE, else the 1-D walk of loop_extrapolation.py is tried
instead. The probes are blocked with the full shape's plan (kernels/matmul.py PLAN_PROBLEM), and a ragged
last strip or block stays in every probe. 41 pairs are simulated where the full GEMM has i x j (512 for a
GPT-3 FFN projection at tp=4). tests/compiler/test_fast_estimate.py measures the error against full
simulation.

Only the linear kernel is walked this way. The matmul kernel is not: with its weights as the moving side, a
block costs more once a strip has more than a few of them (a 9000x512x9000 matmul on trn2: 19.5 us per block up
to 6 blocks, 23 us beyond), so probes of few blocks in both dims under-estimate it (by 12% there) although the
check probe agrees; its 1-D walks keep the other dim at full size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trnsim.compiler.loop_extrapolation import (
    PROBE_SHARE,
    all_specs,
    bind_arguments,
    linear_problem,
    planned_as,
    spec_like,
    with_output_shape,
)
from trnsim.errors import TrnsimError
from trnsim.hw.spec import HardwareSpec

FIRST = (2, 2)  # (strips, blocks) of the first probe: one of each to fill the pipeline, one in steady state
# The check probe may miss the fit by this share of its latency. Its pair count is ~4x the fit's span, so the
# error of the full extension stays below ~1% (tests/compiler/test_fast_estimate.py measures it).
CHECK_TOLERANCE = 0.002


@dataclass(frozen=True)
class Grid:
    """A GEMM seen as counts[0] strips x counts[1] blocks, and how to build it with fewer of each."""

    counts: tuple[int, int]
    resize: Callable[[int, int], tuple[tuple[Any, ...], dict[str, Any]]]
    outputs: Callable[[Any], Any]
    probe_context: Callable[[], contextlib.AbstractContextManager[Any]]

    @property
    def probes(self) -> list[tuple[int, int]]:
        i, j = FIRST
        return [(i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1), (i + 2, j + 2)]


def _grid(
    rows: int, row_unit: int, cols: int, col_unit: int, build: Callable[[int, int], Any], full: dict[str, Any]
) -> tuple[tuple[int, int], Callable[[int, int], Any], Callable[[], Any]] | None:
    """(strip and block counts, resize, probe context) of a GEMM grid worth probing, or None. `full`: the GEMM
    problem's dims the probes are planned as."""
    if row_unit <= 0 or col_unit <= 0:
        return None
    counts = (rows // row_unit, cols // col_unit)
    rests = (rows - counts[0] * row_unit, cols - counts[1] * col_unit)
    last = (FIRST[0] + 2, FIRST[1] + 2)
    work = sum(i * j for i, j in Grid(counts, build, lambda o: None, contextlib.nullcontext).probes)
    if counts[0] <= last[0] or counts[1] <= last[1] or work > PROBE_SHARE * counts[0] * counts[1]:
        return None
    return (
        counts,
        lambda i, j: build(rests[0] + i * row_unit, rests[1] + j * col_unit),
        planned_as(**full),
    )


def _linear(bound: dict[str, Any], spec: HardwareSpec) -> Grid | None:
    lp = linear_problem(bound, spec)
    if lp is None:
        return None
    x, w, bias, residual, m, n, k, plan, rest = (lp.x, lp.w, lp.bias, lp.residual, lp.m, lp.n, lp.k, lp.plan, lp.rest)

    def build(features: int, tokens: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        res = None if residual is None else spec_like((tokens, features), residual)
        bs = None if bias is None else spec_like((features,), bias)
        return (spec_like((tokens, k), x), spec_like((features, k), w), bs), {**rest, "residual": res}

    # strips of w's rows (output features, the stationary side), blocks of tokens (the moving side)
    p = int(spec.core.sbuf.partitions)
    found = _grid(n, plan.strip_tiles * p, m, plan.v_block, build, {"rows": n, "cols": m})
    return None if found is None else Grid(found[0], found[1], with_output_shape((*x.shape[:-1], n)), found[2])


_RULES: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any], HardwareSpec], Grid | None]]] = {
    "linear": (("x", "w", "bias", "activation", "residual", "out_dtype"), _linear),
}


def find_grid(
    kernel_id: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], spec: HardwareSpec
) -> Grid | None:
    """The (strip, block) grid of a library GEMM invocation worth extending over both loops, or None."""
    if not kernel_id.startswith("trnsim.kernels.") or name not in _RULES or not all_specs((args, kwargs)):
        return None
    names, rule = _RULES[name]
    bound = bind_arguments(names, args, kwargs)
    if bound is None:
        return None
    try:
        return rule(bound, spec)
    except TrnsimError:
        return None


def extend_grid(grid: Grid, costs: list[Any]) -> dict[str, Any] | None:
    """KernelCost fields of the full grid from the costs of grid.probes, or None when the check probe misses."""
    c00, c10, c01, c11, check = costs
    i0, j0 = FIRST
    ni, nj = grid.counts

    def at(field: Callable[[Any], float], i: int, j: int) -> float:
        f00, f10, f01, f11 = (field(c) for c in (c00, c10, c01, c11))
        di, dj = i - i0, j - j0
        return f00 + di * (f10 - f00) + dj * (f01 - f00) + di * dj * (f11 - f10 - f01 + f00)

    def latency(c: Any) -> float:
        return float(c.latency_us)

    predicted = at(latency, i0 + 2, j0 + 2)
    if abs(predicted - check.latency_us) > CHECK_TOLERANCE * check.latency_us:
        return None
    return {
        "latency_us": at(latency, ni, nj),
        "engine_busy_us": {e: max(0.0, at(_busy(e), ni, nj)) for e in c00.engine_busy_us},
        "flops": round(at(lambda c: c.flops, ni, nj)),
        "hbm_bytes": round(at(lambda c: c.hbm_bytes, ni, nj)),
        "instructions": round(at(lambda c: c.instructions, ni, nj)),
        "sbuf_peak_bytes": max(c.sbuf_peak_bytes for c in costs),
        "psum_peak_bytes": max(c.psum_peak_bytes for c in costs),
    }


def _busy(engine: str) -> Callable[[Any], float]:
    def busy(cost: Any) -> float:
        return float(cost.engine_busy_us.get(engine, 0.0))

    return busy

"""grouped_matmul: the experts' matmul of a mixture-of-experts layer, torch's `grouped_mm` with 2-D x / 3-D w.

out[s0:s1] = x[s0:s1] @ w[g] for each group g, where the rows of x are sorted by group (expert) and
offsets[g] is where group g ends (a running count of its tokens). Every non-empty group is one job of the
library's blocked, pipelined GEMM (`_gemm`), all through one pipeline, so the next expert's weights load
while the current one computes; an expert's weight [K, N] is read once whatever its token count. Rows past
the last offset (tokens routed nowhere) come out zero.

The group sizes shape the instruction stream, so the offsets are read while tracing (`_host_values`: an
array in functional mode, a list in timing mode), as the embedding kernel reads its ids.
"""

from __future__ import annotations

from functools import partial

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import pmax, require
from trnsim.kernels._evacuate import Evacuator
from trnsim.kernels._gemm import GemmJob, run_gemm
from trnsim.kernels._gemm_operands import KMajor, RowMajor
from trnsim.kernels._host_values import host_ints
from trnsim.kernels.matmul import _check_dtypes, _depth, _plan, _result_dtype, _StoreBlocks


def group_bounds(offsets: list[int], rows: int, kernel: str) -> list[tuple[int, int, int]]:
    """(group, first row, end row) of every non-empty group, from the groups' running end offsets."""
    bounds, start = [], 0
    for g, end in enumerate(offsets):
        require(
            start <= end <= rows,
            f"{kernel}: offsets must be non-decreasing and at most {rows} (the rows of x), got {offsets[:8]}",
            rule="value",
        )
        if end > start:
            bounds.append((g, start, end))
        start = end
    return bounds


@nki.jit
def grouped_matmul(x, w, offsets, out_dtype=None):
    """out[S, N] = x[S, K] @ w[g] [K, N] for the rows of each group g; offsets [G] are the groups' end rows."""
    name = "grouped_matmul"
    require(x.ndim == 2 and w.ndim == 3, f"{name} takes x [S, K] and w [G, K, N], got {list(x.shape)}, {list(w.shape)}")
    rows, k = x.shape
    groups, wk, n = w.shape
    require(wk == k, f"{name}: x has K = {k}, w [G, K, N] has K = {wk}", rule="contraction")
    require(min(rows, k, n, groups) > 0, f"{name} needs non-empty operands, got {list(x.shape)}, {list(w.shape)}")
    _check_dtypes(name, x, w)
    ends = [int(v) for v in host_ints(offsets, "offsets", name).reshape(-1)]
    require(len(ends) == groups, f"{name}: offsets has {len(ends)} entries, w has {groups} groups")
    bounds = group_bounds(ends, rows, name)
    out = nl.ndarray((rows, n), _result_dtype(x, w, out_dtype), buffer=nl.shared_hbm)
    if bounds:
        # The pipeline sizes its buffers from its first job: start with the largest group.
        order = sorted(bounds, key=lambda b: b[1] - b[2])
        tallest = order[0][2] - order[0][1]
        plan, double_row = _plan(tallest, n, k, x, w, out.dtype, v_row_major=False, jobs=len(bounds))
        evac = Evacuator(plan.transient_banks)
        epilogue = _StoreBlocks(out.dtype, plan, _depth(plan, k, double_row), evac)
        jobs = [
            GemmJob(RowMajor(x[s:e]), KMajor(w[g]), e - s, n, k, partial(epilogue.finish, out[s:e]))
            for g, s, e in order
        ]
        run_gemm(jobs, plan, double_row, evac)
    routed = bounds[-1][2] if bounds else 0
    if routed < rows:
        _zero_rows(out, routed, rows, n)
    return out


def _zero_rows(out, start, stop, n):
    p = pmax()
    zeros = nl.ndarray((p, n), out.dtype, buffer=nl.sbuf)
    nisa.memset(dst=zeros, value=0.0)
    for r0 in range(start, stop, p):
        rs = min(p, stop - r0)
        nisa.dma_copy(dst=out[r0 : r0 + rs], src=zeros[:rs])

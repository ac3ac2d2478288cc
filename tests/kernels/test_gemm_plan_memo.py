"""The GEMM planner's shortcuts choose the plan the plain search chooses.

plan_gemm memoises its result by (the core's numbers, problem), and prices each problem's candidates with costs
computed once per problem (_Costs: TensorE cycles, PSUM copy rates, DMA times memoised by their arguments). The
reference here is the plain search: every candidate blocking priced by _evaluate on its own (a fresh _Costs each),
the smallest (estimate, SBUF bytes) kept, on random problems of every kind and on every target.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from trnsim.hw import load_preset
from trnsim.kernels import _gemm_plan as gp
from trnsim.kernels._gemm_plan import GemmPlan, GemmProblem


def _plain_search(p: GemmProblem, core: Any) -> GemmPlan | None:
    """Every candidate the planner walks, each priced on its own, in the planner's order; the best."""
    pmax = int(core.sbuf.partitions)
    fmax = int(core.psum.bank_bytes // 4)
    acc_banks = max(1, int(core.psum.banks) - 2)
    kstep = 2 * pmax if p.double_row else pmax
    row_tiles = -(-p.rows // pmax)
    best = None
    for mt in range(1, min(acc_banks, row_tiles) + 1):
        for nb in range(1, acc_banks // mt + 1):
            if (nb - 1) * fmax >= p.cols:
                break
            v_block = min(p.cols, nb * fmax)
            for row_bytes in (1024, 2048, 4096, 8192, 16384):
                k_chunk = min(-(-p.k // kstep) * kstep, max(kstep, row_bytes // p.in_bytes // kstep * kstep))
                for v_resident in (False, True):
                    for v_group in (1, 2, 4, 8) if not (p.v_row_major or p.double_row) else (1,):
                        plan = gp._evaluate(p, core, mt, v_block, k_chunk, v_resident, kstep, v_group)
                        if plan is not None and (
                            best is None or (plan.estimate_ns, plan.sbuf_bytes) < (best.estimate_ns, best.sbuf_bytes)
                        ):
                            best = plan
    return best


def _problems(rng: random.Random, target: str, n: int) -> list[GemmProblem]:
    out = []
    for _ in range(n):
        in_bytes = rng.choice([1, 2, 4])
        out.append(
            GemmProblem(
                rows=rng.choice([1, rng.randint(2, 300), rng.randint(300, 9000)]),
                cols=rng.choice([1, rng.randint(2, 600), rng.randint(600, 9000)]),
                k=rng.choice([rng.randint(1, 700), rng.randint(700, 17000)]),
                in_bytes=in_bytes,
                out_bytes=rng.choice([2, 4]),
                v_row_major=rng.random() < 0.5,
                double_row=in_bytes == 1 and target != "trn1",
                fp32=in_bytes == 4,
                jobs=rng.choice([1, 1, 2, 5]),
            )
        )
    return out


@pytest.mark.parametrize("target", ["trn1", "trn2", "trn3"])
def test_plan_equals_plain_search(target: str) -> None:
    core = load_preset(target).core
    rng = random.Random()
    for p in _problems(rng, target, 6):
        ref = _plain_search(p, core)
        got = gp.plan_gemm(p, core)
        if ref is None:  # nothing fits: the fallback plan
            assert got.estimate_ns == 0.0 and got.strip_tiles == 1
        else:
            assert repr(got) == repr(ref)  # every field, floats to the last bit
        assert gp.plan_gemm(p, load_preset(target).core) is got  # an equal core (another object): the memo


def test_memo_keyed_by_the_cores_numbers() -> None:
    """A core with other numbers (a slower DMA queue) is planned for itself, not served another core's plan."""
    base = load_preset("trn2").core
    slow = base.model_copy(update={"dma": base.dma.model_copy(update={"queue_bytes_per_ns": 1.0})})
    p = GemmProblem(2048, 4096, 4096, 2, 2, False, False, False)
    fast_plan, slow_plan = gp.plan_gemm(p, base), gp.plan_gemm(p, slow)
    assert repr(slow_plan) == repr(_plain_search(p, slow))
    assert repr(fast_plan) == repr(_plain_search(p, base))
    assert slow_plan.estimate_ns > fast_plan.estimate_ns

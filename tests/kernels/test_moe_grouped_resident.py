"""The experts' grouped matmul on shapes whose weights stay resident in SBUF (DeepSeek-V3's gate/up projection of
a busy expert-parallel group on trn3): two experts' weights are held at once where one job hands over to the next,
so the plan must leave room for both (it overflowed SBUF before, and the estimate dropped the matmul to the host)."""

from __future__ import annotations

from itertools import accumulate

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
from trnsim.kernels import grouped_matmul
from trnsim.nki import TensorSpec


@pytest.mark.parametrize("experts", [2, 4])
def test_resident_expert_weights_fit_on_trn3(experts: int) -> None:
    rows_each, k, n = 516, 7168, 512
    rows = rows_each * experts
    prof = nki.profile(grouped_matmul, target="trn3", mode="timing")(
        TensorSpec((rows, k), ml_dtypes.bfloat16),
        TensorSpec((experts, k, n), ml_dtypes.bfloat16),
        list(accumulate([rows_each] * experts)),
    )
    assert prof.flops == 2 * rows * k * n
    weights = experts * k * n * 2
    assert weights <= prof.hbm_bytes


def test_grouped_matmul_with_resident_weights_matches_numpy(rng: np.random.Generator) -> None:
    # small enough to simulate functionally, tall enough per expert (3 strips) for the planner to keep V resident
    experts, k, n = 3, 384, 256
    counts = rng.integers(300, 420, experts)
    x = rng.standard_normal((int(counts.sum()), k)).astype(np.float32)
    w = (rng.standard_normal((experts, k, n)) * 0.1).astype(np.float32)
    ends = np.cumsum(counts).astype(np.int32)
    out = nki.simulate(grouped_matmul)(x, w, ends)
    want = np.concatenate([x[s:e] @ w[g] for g, (s, e) in enumerate(zip([0, *ends[:-1]], ends))])
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-3)

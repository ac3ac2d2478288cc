"""Pipeline-parallel step cost: the flow shop against the closed form for uniform stages, the single-batch
bubble, micro-batch splits that conserve the work, and a served run through it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from trnsim.serve import Poisson, Replica, RooflineStepCost, ServedModel, Uniform, Workload, simulate
from trnsim.serve.errors import ServeError
from trnsim.serve.pipeline import PipelineStepCost, pipeline_closed_form_s


def _inner() -> RooflineStepCost:
    return RooflineStepCost(2e9, 2e9, 65536.0, 100e12, 1e12, 1e-4)


@pytest.mark.parametrize("regime", ["compute-bound", "link-bound"])
def test_equal_micro_batches_match_the_closed_form(regime: str) -> None:
    rng = np.random.default_rng()
    for _ in range(20):
        p, m = int(rng.integers(2, 9)), int(rng.integers(1, 9))
        batch = m * int(rng.integers(1, 5))
        new_tokens = batch * int(rng.integers(1, 600))
        hidden = int(rng.choice([1024, 4096, 8192]))
        bw = float(rng.uniform(50e9, 500e9)) if regime == "compute-bound" else float(rng.uniform(1e6, 1e7))
        latency = float(rng.uniform(0, 5e-6))
        context = float(rng.uniform(1, 4000))
        cost = PipelineStepCost(_inner(), p, hidden, 2, bw, latency, micro_batches=m)
        stage = _inner().step_time_s(batch // m, new_tokens // m, context) / p
        hop = latency + new_tokens // m * hidden * 2 / bw
        assert (stage > hop) == (regime == "compute-bound")
        want = pipeline_closed_form_s(p, m, stage, hop)
        assert cost.step_time_s(batch, new_tokens, context) == pytest.approx(want, rel=1e-12)


def test_one_sequence_pays_the_whole_bubble() -> None:
    cost = PipelineStepCost(_inner(), 4, 4096, 2, 100e9, 2e-6)
    whole = _inner().step_time_s(1, 3000, 3000)
    hop = 2e-6 + 3000 * 4096 * 2 / 100e9
    assert cost.step_time_s(1, 3000, 3000) == pytest.approx(whole + 3 * hop, rel=1e-12)
    # one stage: exactly the model's step, nothing crosses a link
    assert PipelineStepCost(_inner(), 1, 4096, 2, 100e9, 2e-6).step_time_s(7, 900, 50) == _inner().step_time_s(
        7, 900, 50
    )


def test_micro_batches_conserve_sequences_and_tokens() -> None:
    rng = np.random.default_rng()
    for _ in range(200):
        batch = int(rng.integers(1, 300))
        tokens = batch * int(rng.integers(1, 4)) + int(rng.integers(0, 2000))
        cost = PipelineStepCost(_inner(), int(rng.integers(1, 9)), 64, 2, 1e9, micro_batches=int(rng.integers(1, 40)))
        parts = cost.split(batch, tokens)
        assert sum(s for s, _ in parts) == batch and sum(t for _, t in parts) == tokens
        assert len(parts) == min(cost.micro_batches or cost.stages, batch)
        assert max(s for s, _ in parts) - min(s for s, _ in parts) <= 1


def test_more_micro_batches_hide_the_bubble() -> None:
    # A wide decode step: with one micro-batch per stage the pipe is full, with one in all it is a bubble.
    def step(m: int) -> float:
        return PipelineStepCost(_inner(), 4, 4096, 2, 100e9, 1e-6, micro_batches=m).step_time_s(256, 256, 2000)

    assert step(4) < step(1)


def test_serving_through_a_pipeline(model: ServedModel, make_replica: Callable[..., Replica]) -> None:
    work = Workload(150, Poisson(10.0), Uniform(100, 3000), Uniform(10, 200), seed=5)
    pp = make_replica(PipelineStepCost(_inner(), 4, 4096, 2, 100e9, 1e-6), 200_000)
    res = simulate(model, pp, work, "chunked", record_steps=True)
    assert res.metrics.requests == 150  # simulate checks conservation itself
    assert res.step_log is not None
    cost = pp.step_cost
    for s in res.step_log[:50]:
        assert s.end_s - s.start_s == pytest.approx(cost.step_time_s(s.batch, s.new_tokens, s.context), rel=1e-12)


def test_bad_pipeline_parameters_are_refused() -> None:
    with pytest.raises(ServeError, match="stages"):
        PipelineStepCost(_inner(), 0, 64, 2, 1e9)
    with pytest.raises(ServeError, match="micro_batches"):
        PipelineStepCost(_inner(), 2, 64, 2, 1e9, micro_batches=0)
    with pytest.raises(ServeError, match="link_bytes_per_s"):
        PipelineStepCost(_inner(), 2, 64, 2, 0.0)

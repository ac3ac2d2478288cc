"""Speculative decoding: tokens per step and step cost against the closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.serve import (
    ChunkedPrefill,
    ContinuousBatching,
    Fixed,
    Poisson,
    RooflineStepCost,
    SpeculativeDecoding,
    Uniform,
    Workload,
    simulate,
)


@pytest.fixture
def draft() -> RooflineStepCost:
    return RooflineStepCost(2e8, 2e8, 8192, 100e12, 1e12, 5e-5)


@pytest.mark.parametrize("config", [ContinuousBatching(), ChunkedPrefill()], ids=lambda c: c.name)
def test_alpha_one_gives_exactly_k_plus_one_tokens_per_step(config, model, cost, replica, draft, rng) -> None:
    k = int(rng.integers(1, 8))
    output = int(rng.integers(2, 100))
    spec = SpeculativeDecoding(draft, k, alpha=1.0)
    work = Workload(1, Poisson(1.0), Fixed(300), Fixed(output))
    res = simulate(model, replica, work, config, speculative=spec, record_steps=True, record_token_times=True)
    assert res.step_log is not None and res.token_times is not None
    decode_steps = [s for s in res.step_log if s.decode_seqs]
    assert all(s.tokens_per_seq == k + 1 for s in decode_steps)
    assert len(decode_steps) == -(-(output - 1) // (k + 1))
    # Tokens come out k+1 at a time (the last step only what is left).
    _, counts = np.unique(res.token_times[0][1:], return_counts=True)
    full, rest = divmod(output - 1, k + 1)
    assert counts.tolist() == [k + 1] * full + ([rest] if rest else [])
    # Each decode step costs k draft passes plus one target pass over k+1 tokens.
    for s in decode_steps:
        expected = k * draft.step_time_s(1, 1, s.context) + cost.step_time_s(1, k + 1, s.context)
        assert s.end_s - s.start_s == pytest.approx(expected, rel=1e-12)


def test_mean_tokens_per_step_matches_the_closed_form(model, cost, replica, draft, rng) -> None:
    k, alpha = int(rng.integers(2, 7)), float(rng.uniform(0.3, 0.9))
    spec = SpeculativeDecoding(draft, k, alpha)
    work = Workload(60, Poisson(50.0), Uniform(50, 200), Fixed(400), seed=int(rng.integers(2**31)))
    res = simulate(model, replica, work, ContinuousBatching(), speculative=spec, record_steps=True)
    assert res.step_log is not None
    draws = np.array([s.tokens_per_seq for s in res.step_log if s.decode_seqs])
    expected = (1 - alpha ** (k + 1)) / (1 - alpha)
    assert spec.expected_tokens == pytest.approx(expected)
    # Reference distribution: P(tokens = a + 1) = alpha^a (1 - alpha) for a < k, alpha^k for a = k.
    pmf = np.array([alpha**a * (1 - alpha) for a in range(k)] + [alpha**k])
    assert pmf @ np.arange(1, k + 2) == pytest.approx(expected)
    std = np.sqrt(pmf @ (np.arange(1, k + 2) - expected) ** 2)
    assert abs(draws.mean() - expected) < 5 * std / np.sqrt(len(draws))
    observed = np.bincount(draws - 1, minlength=k + 1) / len(draws)
    assert np.abs(observed - pmf).max() < 5 * np.sqrt(0.25 / len(draws))


def test_speculation_speeds_up_memory_bound_decoding(model, cost, replica, draft) -> None:
    work = Workload(20, Poisson(1.0), Fixed(100), Fixed(200), seed=1)
    plain = simulate(model, replica, work, ContinuousBatching()).metrics
    fast = simulate(model, replica, work, ContinuousBatching(), speculative=SpeculativeDecoding(draft, 4, 0.8)).metrics
    assert fast.tpot_ms.mean is not None and plain.tpot_ms.mean is not None
    assert fast.tpot_ms.mean < 0.6 * plain.tpot_ms.mean

"""Schedulers: step shapes against hand-computed sums, caps, and the orderings they are known for."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.serve import (
    ChunkedPrefill,
    ClosedLoop,
    ContinuousBatching,
    Fixed,
    Poisson,
    SharedPrefix,
    StaticBatching,
    Uniform,
    Workload,
    simulate,
)


@pytest.mark.parametrize(
    "config", [StaticBatching(4), ContinuousBatching(), ChunkedPrefill(token_budget=8192)], ids=lambda c: c.name
)
def test_a_lone_request_takes_prefill_plus_one_decode_step_per_token(config, model, cost, replica, rng) -> None:
    prompt, output = int(rng.integers(1, 3000)), int(rng.integers(1, 60))
    res = simulate(model, replica, Workload(1, Poisson(1.0), Fixed(prompt), Fixed(output)), config)
    prefill = cost.step_time_s(1, prompt, prompt)
    decode = sum(cost.step_time_s(1, 1, prompt + j) for j in range(1, output))
    assert res.ttft_s[0] == pytest.approx(prefill, rel=1e-12)
    assert res.e2e_s[0] == pytest.approx(prefill + decode, rel=1e-12)


def test_chunked_prefill_splits_a_prompt_into_budget_sized_steps(model, cost, replica, rng) -> None:
    prompt, budget = int(rng.integers(500, 5000)), int(rng.integers(16, 400))
    res = simulate(
        model, replica, Workload(1, Poisson(1.0), Fixed(prompt), Fixed(2)), ChunkedPrefill(token_budget=budget)
    )
    expected, done = 0.0, 0
    while done < prompt:
        chunk = min(budget, prompt - done)
        done += chunk
        expected += cost.step_time_s(1, chunk, done)
    assert res.ttft_s[0] == pytest.approx(expected, rel=1e-12)


def test_batch_and_token_caps_hold_on_every_step(model, cost, replica, rng) -> None:
    work = Workload(300, Poisson(400.0), Uniform(1, 2000), Uniform(1, 200), seed=int(rng.integers(2**31)))
    cap, budget = int(rng.integers(2, 20)), int(rng.integers(64, 1024))
    for config in (StaticBatching(cap), ContinuousBatching(cap, budget), ChunkedPrefill(cap, budget)):
        res = simulate(model, replica, work, config, record_steps=True)
        assert res.step_log is not None
        for s in res.step_log:
            assert s.batch <= cap
            if config.name == "continuous" and s.prefill_seqs > 1:
                assert s.prefill_tokens <= budget  # several prompts share a step only within the budget
            if config.name == "chunked":
                assert s.new_tokens <= max(budget, s.decode_seqs * s.tokens_per_seq)


def test_continuous_batching_beats_static_in_throughput_on_mixed_lengths(model, cost, replica, rng) -> None:
    # Overload, so both run flat out: static pads every batch to its longest prompt and output.
    work = Workload(400, Poisson(2000.0), Uniform(32, 1024), Uniform(8, 512), seed=int(rng.integers(2**31)))
    static = simulate(model, replica, work, StaticBatching(32)).metrics
    continuous = simulate(model, replica, work, ContinuousBatching(32)).metrics
    assert continuous.throughput_tok_s > 1.3 * static.throughput_tok_s


def test_chunked_prefill_lowers_the_tpot_tail_under_long_prompts(model, cost, replica, rng) -> None:
    # Long prompts: continuous batching stalls every decoding request for each whole prefill.
    work = Workload(200, Poisson(4.0), Uniform(4000, 8000), Uniform(64, 256), seed=int(rng.integers(2**31)))
    continuous = simulate(model, replica, work, ContinuousBatching()).metrics
    chunked = simulate(model, replica, work, ChunkedPrefill(token_budget=512)).metrics
    assert chunked.tpot_ms.p99 is not None and continuous.tpot_ms.p99 is not None
    assert chunked.tpot_ms.p99 < 0.7 * continuous.tpot_ms.p99


def test_prefix_caching_reuses_shared_prefixes_and_lowers_ttft(model, cost, replica, rng) -> None:
    prefix = SharedPrefix(groups=3, tokens=int(rng.integers(200, 1500)), fraction=0.8)
    work = Workload(60, Poisson(0.5), Uniform(10, 100), Fixed(4), prefix=prefix, seed=int(rng.integers(2**31)))
    off = simulate(model, replica, work, ContinuousBatching())
    on = simulate(model, replica, work, ContinuousBatching(), prefix_caching=True)
    assert on.metrics.ttft_ms.mean < off.metrics.ttft_ms.mean
    assert off.cached_tokens.sum() == 0
    # At this rate requests run one at a time, so every request after the first of its group hits every
    # full block of the prefix (the cache is large enough never to evict).
    groups = work.generate().prefix_group
    seen: set[int] = set()
    full = prefix.tokens // 16 * 16
    for rid, g in enumerate(groups.tolist()):
        expected = full if g >= 0 and g in seen else 0
        assert on.cached_tokens[rid] == expected
        if g >= 0:
            seen.add(g)
    np.testing.assert_array_equal(on.output_tokens, off.output_tokens)


@pytest.mark.parametrize("config", [StaticBatching(8), ContinuousBatching()], ids=lambda c: c.name)
def test_clients_arriving_together_share_one_batch(config, model, cost, replica, rng) -> None:
    """--concurrency 4 --requests 4: all four prompts prefill in one step (not one request, then three)."""
    clients = int(rng.integers(2, 8))
    prompt, output = int(rng.integers(16, 512)), int(rng.integers(2, 40))
    work = Workload(clients, ClosedLoop(clients), Fixed(prompt), Fixed(output))
    res = simulate(model, replica, work, config, record_steps=True)
    assert res.step_log is not None
    first = res.step_log[0]
    assert (first.batch, first.prefill_seqs, first.new_tokens) == (clients, clients, clients * prompt)
    prefill = cost.step_time_s(clients, clients * prompt, prompt)  # mean context: the prompt
    np.testing.assert_allclose(res.ttft_s, prefill, rtol=1e-12)
    decode = sum(cost.step_time_s(clients, clients, prompt + j) for j in range(1, output))
    np.testing.assert_allclose(res.e2e_s, prefill + decode, rtol=1e-12)

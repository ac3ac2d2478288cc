"""Disaggregated prefill/decode: the KV hand-off against its closed form, the pools' separation, conservation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from trnsim.serve import ClosedLoop, Fixed, Poisson, Replica, RooflineStepCost, ServedModel, Uniform, Workload, simulate
from trnsim.serve.disaggregated import DECODE_POOL, PREFILL_POOL, Disaggregated, KVLink, simulate_disaggregated
from trnsim.serve.errors import ModelDoesNotFitError, ServeError


def _cost(share: float) -> RooflineStepCost:
    """The conftest's illustrative device, with `share` of its compute and HBM bandwidth (a pool's cores)."""
    return RooflineStepCost(2e9, 2e9, 65536.0, 100e12 * share, 1e12 * share, 1e-4)


def test_one_request_matches_the_closed_form(model: ServedModel, make_replica: Callable[..., Replica]) -> None:
    rng = np.random.default_rng()
    prompt, out = int(rng.integers(64, 4096)), int(rng.integers(2, 40))
    bw, latency = float(rng.uniform(10e9, 200e9)), float(rng.uniform(0, 20e-6))
    pcost, dcost = _cost(0.5), _cost(0.25)
    work = Workload(1, Poisson(1.0), Fixed(prompt), Fixed(out), seed=int(rng.integers(1 << 30)))
    arrival = float(work.generate().arrival_s[0])
    res = simulate_disaggregated(
        model, make_replica(pcost, 100_000), make_replica(dcost, 100_000), work, KVLink(bw, latency)
    )
    prefill_end = arrival + pcost.step_time_s(1, prompt, prompt)
    landed = prefill_end + latency + prompt * model.kv_bytes_per_token / bw
    # Decode step j reads the prompt plus the j tokens decoded before it plus its own.
    finish = landed + sum(dcost.step_time_s(1, 1, prompt + j + 1) for j in range(out - 1))
    assert res.prefill_end_s[0] == pytest.approx(prefill_end, rel=1e-12)
    assert res.transfer_end_s[0] == pytest.approx(landed, rel=1e-12)
    assert res.first_token_s[0] == pytest.approx(landed, rel=1e-12)  # TTFT includes the transfer
    assert res.finish_s[0] == pytest.approx(finish, rel=1e-12)
    assert res.transfer_bytes[0] == prompt * model.kv_bytes_per_token


def test_transfers_share_the_link_one_after_another(model: ServedModel, make_replica: Callable[..., Replica]) -> None:
    # Four prompts arrive together and prefill in one step; their KV leaves over one link, FIFO.
    work = Workload(4, ClosedLoop(4), Fixed(1000), Fixed(8))
    link = KVLink(1e9, 5e-6)  # slow: each transfer takes 65.5 ms, far longer than a step
    res = simulate_disaggregated(model, make_replica(_cost(0.5), 50_000), make_replica(_cost(0.5), 50_000), work, link)
    one = link.transfer_s(1000 * model.kv_bytes_per_token)
    order = np.argsort(res.transfer_start_s)
    assert np.all(res.prefill_end_s == res.prefill_end_s[0])
    np.testing.assert_allclose(res.transfer_start_s[order], res.prefill_end_s[0] + one * np.arange(4), rtol=1e-12)
    np.testing.assert_allclose(res.transfer_end_s - res.transfer_start_s, one, rtol=1e-12)


def test_decode_steps_never_carry_prompt_tokens(model: ServedModel, make_replica: Callable[..., Replica]) -> None:
    work = Workload(300, Poisson(20.0), Uniform(500, 6000), Uniform(20, 120), seed=7)
    res = simulate_disaggregated(
        model,
        make_replica(_cost(0.5), 100_000),
        make_replica(_cost(0.5), 100_000),
        work,
        KVLink(50e9),
        record_steps=True,
    )
    assert res.step_log is not None
    decode = [s for s in res.step_log if s.replica == DECODE_POOL]
    prefill = [s for s in res.step_log if s.replica == PREFILL_POOL]
    assert all(s.new_tokens == s.batch == s.decode_seqs and s.prefill_tokens == 0 for s in decode)
    assert all(s.decode_seqs == 0 and s.prefill_tokens == s.new_tokens for s in prefill)
    # Token conservation from the step log alone: prompts in prefill steps; one output token per request from
    # its prefill, the rest one per sequence per decode step.
    assert sum(s.new_tokens for s in prefill) == res.prompt_tokens.sum()
    assert sum(s.new_tokens for s in decode) + len(res.output_tokens) == res.output_tokens.sum()
    # The pools overlap in time: one step of each pool never overlaps another of the same pool.
    for pool in (prefill, decode):
        starts = np.array([s.start_s for s in pool])
        ends = np.array([s.end_s for s in pool])
        assert np.all(starts[1:] >= ends[:-1] - 1e-12)


def test_prefill_heavy_load_interferes_less_than_continuous_batching(
    model: ServedModel, make_replica: Callable[..., Replica]
) -> None:
    """Long prompts stall continuous batching's decodes for whole prefill steps; split over two pools of half
    the device each, decodes never wait for a prompt, so the worst TPOT falls although each decode step is
    slower (half the HBM bandwidth)."""
    work = Workload(200, Poisson(4.0), Uniform(4000, 8000), Fixed(64), seed=3)
    whole = simulate(model, make_replica(_cost(1.0), 200_000), work, "continuous", record_steps=True)
    split = simulate_disaggregated(
        model, make_replica(_cost(0.5), 100_000), make_replica(_cost(0.5), 100_000), work, KVLink(100e9)
    )
    tpot_whole, tpot_split = np.nanmax(whole.tpot_s), np.nanmax(split.tpot_s)
    assert tpot_split < 0.5 * tpot_whole
    # ... and the split's worst TPOT is a decode step of the whole decode pool, nothing more.
    longest_decode = _cost(0.5).step_time_s(256, 256, 8000 + 64)
    assert tpot_split <= longest_decode


@pytest.mark.parametrize("concurrency", [None, 16])
def test_every_request_completes_with_a_small_decode_pool(
    model: ServedModel, make_replica: Callable[..., Replica], concurrency: int | None
) -> None:
    # The decode pool holds about four requests at once: prefilled requests wait (holding prefill KV).
    arrival = ClosedLoop(concurrency) if concurrency else Poisson(50.0)
    work = Workload(120, arrival, Uniform(100, 2000), Uniform(1, 300), seed=11)
    res = simulate_disaggregated(
        model,
        make_replica(_cost(0.5), 20_000),
        make_replica(_cost(0.5), 9000),
        work,
        KVLink(20e9, 2e-6),
        Disaggregated(prefill_max_batched_tokens=4096),
    )
    assert res.metrics.requests == 120
    assert np.all(res.finish_s >= res.first_token_s)
    assert np.all(res.transfer_start_s >= res.prefill_end_s)
    assert np.any(res.transfer_start_s > res.prefill_end_s + 1e-3)  # the decode pool pushed back
    assert res.to_dict()["kv_transfer"]["bytes_total"] == pytest.approx(res.prompt_tokens.sum() * 65536.0)
    # Never more decoding at once than the decode pool's KV could hold at their whole lengths.
    lengths = res.prompt_tokens + res.output_tokens - 1
    blocks = -(-lengths // 16)
    for t in res.transfer_start_s:
        inside = (res.transfer_start_s <= t) & (res.finish_s > t)
        assert blocks[inside].sum() <= res.kv_blocks[1]


def test_bad_input_is_refused(model: ServedModel, make_replica: Callable[..., Replica]) -> None:
    with pytest.raises(ServeError, match="bytes_per_s"):
        KVLink(0.0)
    with pytest.raises(ServeError, match="latency_s"):
        KVLink(1e9, -1.0)
    with pytest.raises(ServeError, match="decode_max_batch"):
        Disaggregated(decode_max_batch=0)
    work = Workload(4, ClosedLoop(2), Fixed(1000), Fixed(1000))
    with pytest.raises(ModelDoesNotFitError, match="decode pool"):
        simulate_disaggregated(model, make_replica(_cost(0.5), 5000), make_replica(_cost(0.5), 1500), work, KVLink(1e9))


def test_simulate_points_to_the_disaggregated_entry_point(model: ServedModel, replica: Replica) -> None:
    with pytest.raises(ServeError, match="simulate_disaggregated"):
        simulate(model, replica, Workload(2, ClosedLoop(1), Fixed(10), Fixed(2)), "disaggregated")

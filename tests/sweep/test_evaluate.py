"""One sweep point: the modified spec reaches the step cost, and the row's metrics match closed forms."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trnsim.cost import load_prices
from trnsim.hw import load_preset
from trnsim.sweep import METRIC_COLUMNS, Evaluator, ModelSizes, RooflineFactory, ServingSetup

from .conftest import SIZES

TRN2 = load_preset("trn2")


def test_roofline_step_cost_matches_closed_form(rng) -> None:
    hbm = float(rng.uniform(1000, 8000))
    clock = float(rng.uniform(1.0, 4.0))
    tp = int(rng.choice([1, 2, 4, 8, 16]))
    from trnsim.sweep import override_spec

    spec = override_spec(TRN2, {"chip.hbm_bytes_per_ns": hbm, "core.tensor.clock_ghz": clock})
    bounds = {"max_batch": 64, "max_context": 4096, "max_new_tokens": 8192}
    cost = RooflineFactory()("dense-8b", SIZES, spec, tp, "trn2.48xlarge", **bounds)
    chips = tp / 4  # trn2: 8 physical cores per chip at LNC=2 -> 4 tp ranks per chip
    bandwidth = hbm * 1e9 * chips
    peak = 128 * 128 * 2 * clock * 1e9 * 8 * chips
    for _ in range(20):
        batch, new, context = int(rng.integers(1, 64)), int(rng.integers(1, 8192)), float(rng.uniform(1, 4096))
        expected = max(2 * 8e9 * new / peak, (16e9 + 131072 * batch * context) / bandwidth)
        assert cost.step_time_s(batch, new, context) == pytest.approx(expected, rel=1e-12)


def test_lone_requests_decode_at_the_hbm_roofline_and_cost_what_the_price_says(rng) -> None:
    hbm = float(rng.uniform(2000, 6000))
    tp = int(rng.choice([2, 4, 8]))
    prompt, output = int(rng.integers(64, 512)), int(rng.integers(16, 64))
    # A rate so low that requests never overlap: each decodes alone, one token per step.
    setup = ServingSetup("dense-8b", requests=12, prompt=str(prompt), output=str(output), rate=0.01, seed=1)
    row = Evaluator(setup, sizes=SIZES)({"chip.hbm_bytes_per_ns": hbm, "tp": tp})
    assert row["error"] is None and list(row)[:2] == ["chip.hbm_bytes_per_ns", "tp"]
    assert set(METRIC_COLUMNS) <= set(row)
    bandwidth = hbm * 1e9 * tp / 4
    low, high = 16e9 / bandwidth, (16e9 + 131072 * (prompt + output)) / bandwidth
    assert low * 1e3 <= row["tpot_ms_p50"] <= high * 1e3
    usd_per_hour = load_prices().instance("trn2.48xlarge").usd_per_hour * (tp / 4) / 16
    assert row["usd_per_mtok"] == pytest.approx(usd_per_hour / (row["throughput_tok_s"] * 3600) * 1e6, rel=1e-9)


def test_faster_hbm_lowers_tpot(evaluator) -> None:
    slow = evaluator({"chip.hbm_bytes_per_ns": 2000.0})
    fast = evaluator({"chip.hbm_bytes_per_ns": 4000.0})
    assert fast["tpot_ms_p50"] < slow["tpot_ms_p50"]


def test_serving_parameters_reach_the_simulation(evaluator) -> None:
    closed = evaluator({"concurrency": 2, "scheduler": "static", "max_batch": 2})
    assert closed["error"] is None
    # Two closed-loop clients never queue behind more than each other: TTFT stays a few steps long.
    assert closed["ttft_ms_p99"] < 2 * closed["e2e_ms_p50"]
    assert evaluator({"prompt": "16", "output": "4"})["e2e_ms_p99"] < evaluator({"output": "200"})["e2e_ms_p50"]


def test_infeasible_points_become_error_rows(evaluator) -> None:
    row = evaluator({"tp": 3})
    assert "divisor of 64" in row["error"] and row["throughput_tok_s"] is None
    huge = replace(evaluator, sizes=ModelSizes("huge", 8.1e11, 516096, 4.05e11, 4.05e11))
    row = huge({"tp": 1})
    assert "does not fit" in row["error"] and "tp" in row["error"]


def test_kv_heads_are_replicated_past_tp() -> None:
    sizes = replace(SIZES, kv_heads=8)
    assert sizes.kv_bytes_per_token_at(4) == sizes.kv_bytes_per_token_at(8) == 131072
    assert sizes.kv_bytes_per_token_at(32) == 4 * 131072  # 32 ranks, one KV head each
    bounds = {"max_batch": 8, "max_context": 1024, "max_new_tokens": 1024}
    cost = RooflineFactory()("dense-8b", sizes, TRN2, 32, "trn2.48xlarge", **bounds)
    assert cost.step_time_s(8, 8, 1000.0) == pytest.approx((16e9 + 4 * 131072 * 8 * 1000) / (2900e9 * 8), rel=1e-12)

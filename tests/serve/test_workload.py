"""Workloads: arrival processes and length distributions against their definitions; trace files."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.serve import (
    ClosedLoop,
    ContinuousBatching,
    Fixed,
    GammaArrivals,
    Poisson,
    ServeError,
    SharedPrefix,
    TraceError,
    Uniform,
    Workload,
    Zipf,
    load_trace,
    make_workload,
    parse_lengths,
    simulate,
)


def test_arrival_processes_have_the_asked_rate_and_variability(rng) -> None:
    n = 40_000
    seed = int(rng.integers(2**31))
    rate, cv = float(rng.uniform(0.5, 50)), float(rng.uniform(0.3, 2.5))
    for arrival, want_cv in ((Poisson(rate), 1.0), (GammaArrivals(rate, cv), cv)):
        gaps = np.diff(Workload(n, arrival, Fixed(1), Fixed(1), seed=seed).generate().arrival_s)
        # Standard error of the mean gap is cv/(rate sqrt(n)); of the sample cv, about cv/sqrt(2n) (x3 for skew).
        assert abs(gaps.mean() * rate - 1) < 5 * want_cv / np.sqrt(n)
        assert abs(gaps.std() / gaps.mean() - want_cv) < 15 * want_cv / np.sqrt(2 * n)


def test_same_seed_at_another_rate_stretches_the_same_requests(rng) -> None:
    work = Workload(500, Poisson(2.0), Uniform(1, 100), Zipf(1.2, 1, 500), seed=int(rng.integers(2**31)))
    a, b = work.generate(), work.with_rate(8.0).generate()
    np.testing.assert_allclose(b.arrival_s * 4, a.arrival_s)
    np.testing.assert_array_equal(a.prompt_tokens, b.prompt_tokens)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)


def test_length_distributions_match_their_pmfs(rng) -> None:
    n = 60_000
    s, low, high = float(rng.uniform(0.5, 2)), int(rng.integers(1, 20)), int(rng.integers(30, 60))
    drawn = Zipf(s, low, high).sample(rng, n)
    support = range(low, high + 1)
    weights = [k**-s for k in support]
    pmf = np.array(weights) / sum(weights)
    freq = np.array([np.sum(drawn == k) for k in support]) / n
    assert np.abs(freq - pmf).max() < 5 * np.sqrt(pmf.max() / n)
    u = Uniform(low, high).sample(rng, n)
    assert u.min() == low and u.max() == high
    assert abs(u.mean() - (low + high) / 2) < 5 * (high - low) / np.sqrt(12 * n)


def test_shared_prefix_is_added_to_the_prompt(rng) -> None:
    work = Workload(2000, Poisson(1.0), Fixed(50), Fixed(1), prefix=SharedPrefix(3, 100, 0.25), seed=5)
    reqs = work.generate()
    shared = reqs.prefix_group >= 0
    assert abs(shared.mean() - 0.25) < 0.05
    assert set(reqs.prefix_group[shared].tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(reqs.prompt_tokens, np.where(shared, 150, 50))


def test_closed_loop_keeps_concurrency_clients_busy(model, replica, rng) -> None:
    c = int(rng.integers(1, 8))
    work = Workload(100, ClosedLoop(c), Uniform(10, 300), Uniform(1, 40), seed=int(rng.integers(2**31)))
    res = simulate(model, replica, work, ContinuousBatching())
    assert np.all(res.arrival_s[:c] == 0)
    # Every later request arrives exactly when an earlier one finishes (its client's previous request).
    finishes = np.sort(res.finish_s)
    np.testing.assert_array_equal(np.sort(res.arrival_s[c:]), finishes[: 100 - c])


def test_trace_round_trip(tmp_path, model, replica) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("request,arrival_s,prompt_tokens,output_tokens\nx,0.5,100,10\ny,0.1,20,3\n\nz,0.2,7,1\n")
    trace = load_trace(path)
    assert trace.prompt_tokens.tolist() == [100, 20, 7] and trace.arrival_s is not None
    reqs = Workload(3, trace=trace).generate()
    assert reqs.arrival_s.tolist() == [0.1, 0.2, 0.5]  # replayed in time order
    assert reqs.prompt_tokens.tolist() == [20, 7, 100]
    res = simulate(model, replica, Workload(3, trace=trace), ContinuousBatching())
    assert res.output_tokens.sum() == 14
    no_times = tmp_path / "lengths.csv"
    no_times.write_text("prompt_tokens,output_tokens\n5,5\n6,6\n")
    with pytest.raises(ServeError, match="arrival="):
        Workload(2, trace=load_trace(no_times))
    assert len(Workload(2, Poisson(1.0), trace=load_trace(no_times)).generate()) == 2


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("prompt,output_tokens\n1,2\n", r"trace.csv:1: header .* lacks column\(s\) \['prompt_tokens'\]"),
        ("prompt_tokens,output_tokens\n1,2\n3\n", r"trace.csv:3: 1 fields, but the header has 2"),
        ("prompt_tokens,output_tokens\n1,2\n3,x\n", r"trace.csv:3: output_tokens 'x' is not a number"),
        ("prompt_tokens,output_tokens\n1,2\n\n0,5\n", r"trace.csv:4: prompt_tokens '0' must be a whole number >= 1"),
        ("prompt_tokens,output_tokens\n2.5,2\n", r"trace.csv:2: prompt_tokens '2.5' must be a whole number"),
        ("arrival_s,prompt_tokens,output_tokens\n-1,2,2\n", r"trace.csv:2: arrival_s '-1' must be"),
        ("arrival_s,prompt_tokens,output_tokens\nnan,2,2\n", r"trace.csv:2: arrival_s 'nan' must be"),
        ("prompt_tokens,output_tokens\n", "no requests"),
    ],
)
def test_malformed_traces_name_the_line(tmp_path, text, match) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(TraceError, match=match):
        load_trace(path)


def test_bad_workload_values_are_refused(tmp_path) -> None:
    with pytest.raises(ServeError, match="rate"):
        Poisson(0.0)
    with pytest.raises(ServeError, match="cv"):
        GammaArrivals(1.0, -1.0)
    with pytest.raises(ServeError, match="1 <= low <= high"):
        Uniform(10, 5)
    with pytest.raises(ServeError, match="concurrency"):
        ClosedLoop(0)
    with pytest.raises(ServeError, match="prompt= and output="):
        Workload(3, Poisson(1.0))
    with pytest.raises(ServeError, match="closed loop"):
        Workload(3, ClosedLoop(2), Fixed(1), Fixed(1)).with_rate(2.0)
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "missing.csv")


def test_cli_style_options(tmp_path) -> None:
    assert parse_lengths("2048") == Fixed(2048)
    assert parse_lengths("128-2048") == Uniform(128, 2048)
    assert parse_lengths("zipf:1.2:16-4096") == Zipf(1.2, 16, 4096)
    for bad in ("x", "5-", "zipf:a:1-5", "zipf:1.2:100"):
        with pytest.raises(ServeError):
            parse_lengths(bad)
    work = make_workload(10, rate=2.0, prompt="100", output="10-20")
    assert work.arrival == Poisson(2.0) and work.prompt == Fixed(100) and work.output == Uniform(10, 20)
    assert make_workload(10, rate=2.0, cv=2.0, prompt=1, output=1).arrival == GammaArrivals(2.0, 2.0)
    assert make_workload(10, concurrency=4, prompt=1, output=1).arrival == ClosedLoop(4)
    with pytest.raises(ServeError, match="not both"):
        make_workload(10, rate=1.0, concurrency=2, prompt=1, output=1)
    with pytest.raises(ServeError, match="a rate"):
        make_workload(10, prompt=1, output=1)
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,5,5\n1,6,6\n")
    assert make_workload(None, trace=path).num_requests == 2

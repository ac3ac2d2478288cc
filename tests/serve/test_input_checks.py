"""Bad input is refused at once with one line saying what is allowed: over-long requests (before any step
grid is built), more requests than one run can hold, scheduler names users know, and the static grid."""

from __future__ import annotations

import time

import pytest

from trnsim.serve import SLO, ClosedLoop, Fixed, ModelDoesNotFitError, Poisson, ServeError, Workload, make_workload
from trnsim.serve.schedulers import ChunkedPrefill, ContinuousBatching, StaticBatching, scheduler_from_name
from trnsim.serve.setup import check_request_lengths, grid_bounds, scheduler_grid_bounds, serving_setup
from trnsim.serve.workload import MAX_REQUESTS

GIB = 1024**3


def test_a_request_beyond_the_model_context_is_refused_before_any_grid(rng) -> None:
    prompt = int(rng.integers(131_073, 10_000_000))
    work = make_workload(200, rate=1.0, prompt=prompt, output=1)
    start = time.perf_counter()
    with pytest.raises(ServeError, match=r"exceeds llama-3.1-8b's context of 131,072 tokens") as err:
        serving_setup("llama-3.1-8b", "p5.48xlarge", 1, bounds=grid_bounds(work), cache=False)
    assert "\n" not in str(err.value)
    assert time.perf_counter() - start < 60  # no step grid was built out to that length (that took hours)
    check_request_lengths("llama-3.1-8b", 131_072)  # exactly the context is allowed


def test_a_request_whose_kv_cannot_fit_is_refused_before_any_grid() -> None:
    # Llama-3.1-8B: 2 x 32 layers x 8 KV heads x 128 x 2 bytes = 128 KiB of KV per token; ~15 GiB of weights.
    with pytest.raises(ModelDoesNotFitError, match=r"needs 12\.21 GiB of KV cache") as err:
        check_request_lengths("llama-3.1-8b", 100_000, 1, memory_bytes=20 * GIB)
    assert "\n" not in str(err.value)


def test_more_requests_than_one_run_holds_are_refused() -> None:
    with pytest.raises(ServeError, match=r"100,000,000 requests is more than one run simulates"):
        Workload(100_000_000, Poisson(1.0), Fixed(16), Fixed(16))
    Workload(MAX_REQUESTS, Poisson(1.0), Fixed(16), Fixed(16))  # the limit itself is fine (nothing drawn yet)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan"), float("inf")])
def test_nonsensical_rates_are_refused(rate: float) -> None:
    with pytest.raises(ServeError, match="arrival rate must be a finite number"):
        make_workload(10, rate=rate, prompt=16, output=16)
    with pytest.raises(ServeError, match="SLO"):
        SLO(ttft_ms=rate if rate <= 0 else None, tpot_ms=None)


def test_static_grid_spans_one_padded_batch_not_every_prompt(rng) -> None:
    """500 requests x concurrency 8 once sized the grid from the sum of all 500 prompts (280 s, 4.7 GB)."""
    prompt, batch = int(rng.integers(64, 4096)), int(rng.integers(2, 16))
    work = Workload(500, ClosedLoop(8), Fixed(prompt), Fixed(64))
    bounds = scheduler_grid_bounds(work, StaticBatching(max_batch=batch))
    assert grid_bounds(work, "static").max_new_tokens == 8 * prompt  # the default cap: 8
    assert (bounds.max_batch, bounds.max_new_tokens, bounds.max_context) == (batch, batch * prompt, prompt + 64)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("vllm", ContinuousBatching),
        ("Continuous-Batching", ContinuousBatching),
        ("sarathi", ChunkedPrefill),
        ("chunked_prefill", ChunkedPrefill),
        ("static", StaticBatching),
    ],
)
def test_schedulers_answer_to_the_names_users_know(name: str, kind: type) -> None:
    assert isinstance(scheduler_from_name(name), kind)


def test_an_unknown_scheduler_lists_names_and_aliases() -> None:
    with pytest.raises(ServeError, match=r"continuous \(continuous-batching, vllm.*chunked \(chunked-prefill, sarathi"):
        scheduler_from_name("fcfs")

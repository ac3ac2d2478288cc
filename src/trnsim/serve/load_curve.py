"""A latency-vs-load curve: the same workload at a sweep of arrival rates, each measured in steady state.

What GenAI-Perf's and vLLM's benchmark users plot: TTFT and TPOT percentiles and throughput as the offered
rate rises towards (and past) capacity. Each point replays the workload seed at one rate with enough
requests for its measurement window (`steady_state`; runs too short are lengthened), and reports the
window's requests only: warm-up and drain left out. Past capacity a point is marked `sustained: false`
(its latencies then grow with the run length, so they describe that run, not a steady state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from trnsim.serve.errors import ServeError
from trnsim.serve.metrics import SLO
from trnsim.serve.model import Replica, ServedModel
from trnsim.serve.rate_search import DEFAULT_MAX_REQUESTS, SATURATION_TOLERANCE
from trnsim.serve.schedulers import SchedulerConfig
from trnsim.serve.simulate import simulate
from trnsim.serve.steady_state import MIN_WINDOW_REQUESTS, WARMUP_E2E, WINDOW_E2E, measure_steady_state
from trnsim.serve.workload import Workload

DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1)  # of the reference rate (the max under the SLO)


def _ms(values_s: np.ndarray, q: float) -> float | None:
    values = values_s[~np.isnan(values_s)]
    return float(np.percentile(values, q)) * 1e3 if values.size else None


def load_curve(
    model: ServedModel,
    replica: Replica,
    workload: Workload,
    rates: Sequence[float],
    scheduler: SchedulerConfig | str | None = None,
    *,
    slo: SLO | None = None,
    hw: str = "",
    latency_hint_s: float | None = None,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> list[dict[str, Any]]:
    """One point per rate (req/s): {"hw", "rate", "requests", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms",
    "tpot_p99_ms", "e2e_p50_ms", "throughput_tok_s", "offered_req_s", "completed_req_s", "slo_attainment", "sustained"}.

    workload: a Poisson/Gamma workload whose num_requests is the smallest run; latency_hint_s (a median
    end-to-end latency near the top rate, e.g. from the rate search) sizes the runs for their windows."""
    if not rates or any(not (r > 0 and math.isfinite(r)) for r in rates):
        raise ServeError(f"a load curve needs finite rates > 0, got {list(rates)}")
    points = []
    for rate in sorted(rates):
        span = (latency_hint_s or 0.0) * (WARMUP_E2E + WINDOW_E2E) * 1.25
        n = min(max_requests, max(workload.num_requests, math.ceil(rate * span)))
        for _ in range(4):  # lengthen a run too short for its window (past capacity: to the cap at most)
            res = simulate(model, replica, replace(workload, num_requests=n).with_rate(rate), scheduler, slo=slo)
            steady = measure_steady_state(res, slo)
            if steady.long_enough or n >= max_requests:
                break
            need = steady.e2e_p50_s * (WARMUP_E2E + WINDOW_E2E) * 1.25 * rate
            n = min(max_requests, max(2 * n, math.ceil(need), 2 * MIN_WINDOW_REQUESTS))
        inside = res.arrival_s >= res.arrival_s.min() + steady.window_start_s
        mean_output = float(res.output_tokens[inside].mean())
        points.append(
            {
                "hw": hw,
                "rate": rate,
                "requests": n,
                "ttft_p50_ms": _ms(res.ttft_s[inside], 50),
                "ttft_p99_ms": _ms(res.ttft_s[inside], 99),
                "tpot_p50_ms": _ms(res.tpot_s[inside], 50),
                "tpot_p99_ms": _ms(res.tpot_s[inside], 99),
                "e2e_p50_ms": _ms(res.e2e_s[inside], 50),
                "throughput_tok_s": steady.completed_req_s * mean_output,
                "offered_req_s": steady.offered_req_s,  # as drawn: Poisson arrivals stray from the nominal rate
                "completed_req_s": steady.completed_req_s,
                "slo_attainment": steady.attainment,
                "sustained": steady.sustained(SATURATION_TOLERANCE),
            }
        )
    return points

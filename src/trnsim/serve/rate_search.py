"""`find_max_rate`: the highest arrival rate a setup sustains in steady state while meeting an SLO.

A rate counts as met when, over the run's measurement window (`steady_state`: warm-up excluded, no
drain), at least `goodput_fraction` of the requests meet the SLO AND the completed rate keeps up with the
offered rate within `saturation_tolerance`. Above capacity the backlog grows without bound: a finite run
may still meet a latency SLO (it ends before the queue is long), but its completions fall short of its
arrivals, so the saturation check refuses it.

The tool, not the caller, sizes each run: `workload.num_requests` is only the smallest run. A run whose
window is shorter than `WINDOW_E2E` median latencies is repeated with more requests (up to
`max_requests`), so the answer does not depend on the size asked for. Runs that already miss the SLO are
not lengthened: starting from an empty server is optimistic, a longer run only does worse. A run that
meets the SLO but looks saturated is confirmed on a run twice as long (near capacity the queue swings).

The rate is bracketed (doubling up, or probing a rate so low that requests never queue) and bisected on a
log scale. Each run replays the same workload seed (common random numbers: the same requests, stretched).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from trnsim.serve.arrivals import GammaArrivals, Poisson
from trnsim.serve.errors import ServeError, SloUnreachableError
from trnsim.serve.metrics import SLO
from trnsim.serve.model import Replica, ServedModel
from trnsim.serve.result import ServeResult
from trnsim.serve.schedulers import SchedulerConfig
from trnsim.serve.simulate import simulate
from trnsim.serve.steady_state import (
    MIN_WINDOW_REQUESTS,
    WARMUP_E2E,
    WINDOW_E2E,
    SteadyState,
    measure_steady_state,
)
from trnsim.serve.workload import Workload

DEFAULT_MAX_REQUESTS = 20_000  # the longest run one evaluation may simulate
SATURATION_TOLERANCE = 0.05  # completed rate may fall this fraction short of the offered rate
_GROWTH_MARGIN = 1.25  # size a longer run this much above the bare need (latencies rise with the run)


@dataclass(frozen=True)
class RateSearch:
    rate_req_s: float  # the highest rate found that meets the SLO in steady state
    result: ServeResult  # the simulation at that rate
    evaluations: list[tuple[float, float]] = field(default_factory=list)  # (rate, SLO attainment), in order
    upper_req_s: float | None = None  # the lowest rate tried that failed (the answer lies in [rate, upper])
    steady: SteadyState | None = None  # the measurement at rate_req_s
    failures: dict[float, str] = field(default_factory=dict)  # rate -> why it failed ("slo" or "saturated")

    @property
    def steady_tokens_per_s(self) -> float:
        """Output tokens per second at the found rate in steady state (rate x mean output length)."""
        return self.rate_req_s * float(self.result.output_tokens.mean())

    def confidence(self) -> dict[str, Any]:
        """How far to trust the rate: the bracket, the run behind it and its attainment's 95% interval."""
        steady = self.steady
        return {
            "rate_interval_req_s": [self.rate_req_s, self.upper_req_s],
            "relative_width": None if self.upper_req_s is None else self.upper_req_s / self.rate_req_s - 1,
            "upper_failed_by": None if self.upper_req_s is None else self.failures.get(self.upper_req_s),
            "simulations": len(self.evaluations),
            **({"steady_state": steady.to_dict()} if steady is not None else {}),
        }


def _describe(slo: SLO, fraction: float) -> str:
    parts = [f"TTFT <= {slo.ttft_ms:g} ms" if slo.ttft_ms is not None else "", ""]
    if slo.tpot_ms is not None:
        parts[1] = f"TPOT <= {slo.tpot_ms:g} ms"
    return f"{' and '.join(p for p in parts if p)} for {fraction:.0%} of requests"


def find_max_rate(
    model: ServedModel,
    replicas: Replica | Sequence[Replica],
    workload: Workload,
    slo: SLO,
    scheduler: SchedulerConfig | str | None = None,
    *,
    goodput_fraction: float = 0.9,
    initial_rate: float | None = None,
    rel_tol: float = 0.02,
    saturation_tolerance: float = SATURATION_TOLERANCE,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    max_evaluations: int = 60,
    on_evaluation: Callable[[float, float], None] | None = None,
    **simulate_options: Any,
) -> RateSearch:
    """Highest rate (req/s) sustained in steady state with >= goodput_fraction of requests meeting `slo`.

    workload must have a Poisson or Gamma arrival process (its rate is the starting guess unless
    initial_rate is given); its num_requests is the smallest run (see the module docstring).
    simulate_options go to `simulate` (router, prefix_caching, speculative, ...). Raises
    SloUnreachableError when even a rate with no queueing misses the SLO.
    """
    if not 0 < goodput_fraction <= 1:
        raise ServeError(f"goodput_fraction must be in (0, 1], got {goodput_fraction}")
    if not rel_tol > 0:
        raise ServeError(f"rel_tol must be > 0, got {rel_tol}")
    if not 0 < saturation_tolerance < 1:
        raise ServeError(f"saturation_tolerance must be in (0, 1), got {saturation_tolerance}")
    if not isinstance(workload.arrival, Poisson | GammaArrivals):
        raise ServeError("find_max_rate needs a workload with Poisson or GammaArrivals arrivals, not a closed loop")
    if workload.trace is not None:
        max_requests = min(max_requests, len(workload.trace))
    max_requests = max(max_requests, workload.num_requests)
    evaluations: list[tuple[float, float]] = []
    results: dict[float, ServeResult] = {}
    steadies: dict[float, SteadyState] = {}
    failures: dict[float, str] = {}
    latency_s = [0.0]  # the last run's median end-to-end latency: sizes the next run

    def run(rate: float) -> tuple[ServeResult, SteadyState]:
        span = latency_s[0] * (WARMUP_E2E + WINDOW_E2E) * _GROWTH_MARGIN
        n = min(max_requests, max(workload.num_requests, math.ceil(rate * span)))
        confirmed = False
        while True:
            sized = replace(workload, num_requests=n).with_rate(rate)
            res = simulate(model, replicas, sized, scheduler, slo=slo, **simulate_options)
            steady = measure_steady_state(res, slo)
            assert steady.attainment is not None
            if steady.sustained(saturation_tolerance):  # an overloaded run's latency would oversize the next
                latency_s[0] = steady.e2e_p50_s
            if n >= max_requests or steady.attainment < goodput_fraction:
                return res, steady
            if steady.long_enough:
                if steady.sustained(saturation_tolerance) or confirmed:
                    return res, steady
                # Near capacity the queue swings widely: confirm an apparent overload on a run twice as long
                # (a real one keeps its deficit, a swing averages out).
                confirmed = True
                n = min(max_requests, 2 * n)
                continue
            need = steady.e2e_p50_s * (WARMUP_E2E + WINDOW_E2E) * _GROWTH_MARGIN * rate
            n = min(max_requests, max(2 * n, math.ceil(need), math.ceil(MIN_WINDOW_REQUESTS * _GROWTH_MARGIN * 1.5)))

    def meets(rate: float) -> bool:
        if len(evaluations) >= max_evaluations:
            raise ServeError(f"find_max_rate did not converge in {max_evaluations} simulations; raise max_evaluations")
        res, steady = run(rate)
        attained = steady.attainment
        assert attained is not None
        evaluations.append((rate, attained))
        results[rate], steadies[rate] = res, steady
        if on_evaluation is not None:
            on_evaluation(rate, attained)
        if attained < goodput_fraction:
            failures[rate] = "slo"
        elif not steady.sustained(saturation_tolerance):
            failures[rate] = "saturated"
        return rate not in failures

    rate = initial_rate if initial_rate is not None else workload.arrival.rate
    if not (rate > 0 and math.isfinite(rate)):
        raise ServeError(f"initial_rate must be a finite rate > 0, got {rate}")
    if meets(rate):
        lo, hi = rate, rate * 2
        while meets(hi):
            lo, hi = hi, hi * 2
    else:
        hi = rate
        # A rate at which, even at these latencies, about one request in 100 overlaps another: no queueing.
        lo = min(rate / 2, 0.01 / float(results[rate].e2e_s.max()))
        if not meets(lo):
            m = results[lo].metrics
            raise SloUnreachableError(
                f"no arrival rate meets the SLO ({_describe(slo, goodput_fraction)}): even at {lo:.3g} req/s, "
                f"where requests do not queue, only {evaluations[-1][1]:.0%} meet it (TTFT p50 "
                f"{m.ttft_ms.p50:.1f} ms, p90 {m.ttft_ms.p90:.1f} ms; TPOT p50 {m.tpot_ms.p50 or 0:.2f} ms, "
                f"p90 {m.tpot_ms.p90 or 0:.2f} ms); relax the SLO, shorten prompts/outputs, or use faster "
                "hardware (more tp, a bigger instance)"
            )
    while hi / lo > 1 + rel_tol:
        mid = math.sqrt(lo * hi)
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return RateSearch(lo, results[lo], evaluations, hi, steadies[lo], failures)

"""`find_max_rate`: the highest arrival rate at which a setup still meets an SLO for enough requests.

The rate is bracketed (doubling up, or probing a rate so low that requests never queue) and then bisected
on a log scale. Each evaluation replays the same workload seed, so only the arrival times stretch with the
rate (common random numbers keep SLO attainment close to monotone in the rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trnsim.serve.arrivals import GammaArrivals, Poisson
from trnsim.serve.errors import ServeError, SloUnreachableError
from trnsim.serve.metrics import SLO
from trnsim.serve.model import Replica, ServedModel
from trnsim.serve.result import ServeResult
from trnsim.serve.schedulers import SchedulerConfig
from trnsim.serve.simulate import simulate
from trnsim.serve.workload import Workload


@dataclass(frozen=True)
class RateSearch:
    rate_req_s: float  # the highest rate found that meets the SLO
    result: ServeResult  # the simulation at that rate
    evaluations: list[tuple[float, float]] = field(default_factory=list)  # (rate, SLO attainment), in order


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
    max_evaluations: int = 40,
    on_evaluation: Callable[[float, float], None] | None = None,
    **simulate_options: Any,
) -> RateSearch:
    """Highest rate (req/s) at which >= goodput_fraction of the workload's requests meet `slo`.

    workload must have a Poisson or Gamma arrival process (its rate is the starting guess unless
    initial_rate is given). simulate_options go to `simulate` (router, prefix_caching, speculative, ...).
    Raises SloUnreachableError when even a rate with no queueing misses the SLO.
    """
    if not 0 < goodput_fraction <= 1:
        raise ServeError(f"goodput_fraction must be in (0, 1], got {goodput_fraction}")
    if not rel_tol > 0:
        raise ServeError(f"rel_tol must be > 0, got {rel_tol}")
    if not isinstance(workload.arrival, Poisson | GammaArrivals):
        raise ServeError("find_max_rate needs a workload with Poisson or GammaArrivals arrivals, not a closed loop")
    evaluations: list[tuple[float, float]] = []
    results: dict[float, ServeResult] = {}

    def meets(rate: float) -> bool:
        if len(evaluations) >= max_evaluations:
            raise ServeError(f"find_max_rate did not converge in {max_evaluations} simulations; raise max_evaluations")
        res = simulate(model, replicas, workload.with_rate(rate), scheduler, slo=slo, **simulate_options)
        attained = res.metrics.slo_attainment
        assert attained is not None
        evaluations.append((rate, attained))
        results[rate] = res
        if on_evaluation is not None:
            on_evaluation(rate, attained)
        return attained >= goodput_fraction

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
    return RateSearch(lo, results[lo], evaluations)

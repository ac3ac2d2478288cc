"""Steady-state measurement of one open-loop run: a warm-up, a measurement window, a saturation check.

A run starts with an empty server, so its first requests see no queue; and once arrivals stop, the
backlog drains with no new load. Neither is the steady state a capacity answer needs. So:

- warm-up: requests that arrive in the first `warmup_e2e` median end-to-end latencies (at least
  `min_warmup_fraction` of the arrival span) are served but not measured; by then the number in the system
  has reached its steady level (Little's law: rate x latency);
- window: from the end of the warm-up to the last arrival. Latencies and SLO attainment are those of the
  requests arriving in it;
- saturation: over the window's second half the number of requests in the system must not grow faster
  than `tolerance` times the offered (arrival) rate, beyond the noise of its measured growth. At a rate
  above capacity the backlog grows without bound, by the excess of arrivals over completions, even in a
  short run, which a finite run's latency percentiles hide. The growth is the least-squares slope of the
  time-averaged number in the system over `BATCHES` consecutive slices of the half, and the noise is
  `NOISE_SIGMAS` standard errors of that slope. Time averages, because a batching server admits and
  finishes requests in bursts: the number in the system at one instant swings by several times its
  Poisson spread (a test at half load saw 2 at the half's start and 21 at its end), so comparing two
  instants' counts flags stable runs as overloaded. The second half, because near capacity the batch (and
  so the number in the system) still grows for a while after the warm-up, which looks like overload;
- adequacy: the window must span `window_e2e` median latencies and hold `MIN_WINDOW_REQUESTS` requests,
  or the run is too short to judge (the caller simulates more requests);
- confidence: SLO attainment's 95% interval from batch means (the window's requests in 10 consecutive
  batches, Student's t), since neighbouring requests' latencies are correlated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from trnsim.serve.errors import ServeError
from trnsim.serve.metrics import SLO
from trnsim.serve.result import ServeResult

WARMUP_E2E = 2.0  # warm-up length in median end-to-end latencies
MIN_WARMUP_FRACTION = 0.1  # of the arrival span, at least
WINDOW_E2E = 30.0  # window length in median latencies (near capacity the queue swings over many of them)
NOISE_SIGMAS = 3.0  # standard errors of the backlog's growth the saturation check forgives
MIN_WINDOW_REQUESTS = 200  # fewer, and the saturation check's counts are mostly noise
BATCHES = 10  # batch means for the attainment interval
_T975_DF9 = 2.262  # Student's t, 97.5th percentile, 9 degrees of freedom (BATCHES - 1)


@dataclass(frozen=True)
class SteadyState:
    """One run measured over its window (times in seconds from the first arrival)."""

    requests: int  # simulated, warm-up included
    window_start_s: float
    window_end_s: float
    measured: int  # requests arriving in the window
    offered_req_s: float  # arrivals per second in the window's second half
    completed_req_s: float  # completions in the window's second half per second
    e2e_p50_s: float  # median end-to-end latency of the window's requests
    backlog_growth_req_s: float  # slope of the time-averaged number in the system over the second half
    backlog_growth_se_req_s: float  # its standard error (from the slices' scatter about the line)
    attainment: float | None  # SLO attainment of the window's requests (None without an SLO)
    attainment_ci95: tuple[float, float] | None
    long_enough: bool  # the window spans WINDOW_E2E median latencies and the warm-up fits in half the run

    @property
    def completed_over_offered(self) -> float:
        return self.completed_req_s / self.offered_req_s if self.offered_req_s > 0 else 1.0

    def sustained(self, tolerance: float) -> bool:
        """The backlog grows no faster than `tolerance` (a fraction) of the offered rate, beyond the noise of
        its measured growth: completions keep up with arrivals."""
        allowed = tolerance * self.offered_req_s + NOISE_SIGMAS * self.backlog_growth_se_req_s
        return self.backlog_growth_req_s <= allowed

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["completed_over_offered"] = self.completed_over_offered
        out["attainment_ci95"] = list(self.attainment_ci95) if self.attainment_ci95 is not None else None
        return out


def measure_steady_state(
    result: ServeResult,
    slo: SLO | None,
    *,
    warmup_e2e: float = WARMUP_E2E,
    min_warmup_fraction: float = MIN_WARMUP_FRACTION,
    window_e2e: float = WINDOW_E2E,
) -> SteadyState:
    """Measure an open-loop run over its window (see the module docstring)."""
    arrival = result.arrival_s
    if arrival.size < 2 or np.isnan(arrival).any():
        raise ServeError("a steady-state measurement needs an open-loop run (arrival times) of at least 2 requests")
    t0, t_last = float(arrival.min()), float(arrival.max())
    span = t_last - t0
    e2e = result.e2e_s
    # The latency scale from the run's second half: past any warm-up, whatever its length.
    late = arrival >= t0 + span / 2
    e2e_p50 = float(np.median(e2e[late]))
    warmup = max(min_warmup_fraction * span, warmup_e2e * e2e_p50)
    start = t0 + min(warmup, span / 2)
    length = t_last - start
    inside = arrival >= start
    measured = int(inside.sum())
    long_enough = warmup <= span / 2 and length >= window_e2e * e2e_p50 and measured >= MIN_WINDOW_REQUESTS
    mid = start + length / 2
    offered = int((arrival >= mid).sum())
    growth, growth_se = _backlog_growth(arrival, result.finish_s, mid, t_last)
    completed = int(((result.finish_s >= mid) & (result.finish_s <= t_last)).sum())
    attainment = ci = None
    if slo is not None:
        met = slo.met(result.ttft_s[inside], result.tpot_s[inside])
        attainment = float(met.mean())
        ci = _batch_means_ci(met)
    return SteadyState(
        requests=int(arrival.size),
        window_start_s=start - t0,
        window_end_s=span,
        measured=measured,
        offered_req_s=offered / (t_last - mid) if t_last > mid else math.inf,
        completed_req_s=completed / (t_last - mid) if t_last > mid else math.inf,
        e2e_p50_s=float(np.median(e2e[inside])),
        backlog_growth_req_s=growth,
        backlog_growth_se_req_s=growth_se,
        attainment=attainment,
        attainment_ci95=ci,
        long_enough=long_enough,
    )


def _batch_means_ci(met: np.ndarray) -> tuple[float, float] | None:
    """95% interval of the mean of `met` (in arrival order) from BATCHES consecutive batch means."""
    if met.size < 2 * BATCHES:
        return None
    means = np.array([b.mean() for b in np.array_split(met.astype(float), BATCHES)])
    half = _T975_DF9 * float(means.std(ddof=1)) / math.sqrt(BATCHES)
    centre = float(met.mean())
    return (max(0.0, centre - half), min(1.0, centre + half))


def _backlog_growth(arrival: np.ndarray, finish: np.ndarray, start: float, end: float) -> tuple[float, float]:
    """Least-squares slope (requests/s) of the number in the system, time-averaged over BATCHES equal slices
    of [start, end], and its standard error. The time average over a slice is exact: each request adds the
    overlap of [arrival, finish] with the slice."""
    if not end > start:
        return 0.0, math.inf
    edges = np.linspace(start, end, BATCHES + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    overlap = np.clip(np.minimum(finish[None, :], hi) - np.maximum(arrival[None, :], lo), 0.0, None)
    level = overlap.sum(axis=1) / (hi[:, 0] - lo[:, 0])
    t = (lo[:, 0] + hi[:, 0]) / 2
    dt = t - t.mean()
    slope = float((dt * (level - level.mean())).sum() / (dt * dt).sum())
    residual = level - level.mean() - slope * dt
    se = math.sqrt(float((residual * residual).sum()) / (BATCHES - 2) / float((dt * dt).sum()))
    return slope, se

"""Serving metrics from per-request timings: latency percentiles, throughput, goodput, utilisation, cost.

TTFT = first token - arrival. TPOT = (last token - first token) / (output tokens - 1), per request, for
requests with at least two output tokens (vLLM's benchmark definition). E2E = last token - arrival.
Throughput and cost use the run's duration: first arrival to last token. A request meets the SLO when its
TTFT and its TPOT are both within the limits given; goodput is such requests per second.
$/Mtok = sum of replica prices per hour / output tokens per hour x 1e6 (`usd_per_mtok`, output tokens only, as
most price sheets quote generation); `usd_per_mtok_input_output` counts prompt tokens too. J/token = sum of
replica power x duration / output tokens (power taken as drawn for the whole run). max_concurrency: the most
requests in the system (arrived, not finished) at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from trnsim.serve.errors import ServeError


@dataclass(frozen=True)
class SLO:
    ttft_ms: float | None = None
    tpot_ms: float | None = None

    def __post_init__(self) -> None:
        for name in ("ttft_ms", "tpot_ms"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ServeError(f"SLO {name} must be > 0 ms (or None for no limit), got {value}")
        if self.ttft_ms is None and self.tpot_ms is None:
            raise ServeError("an SLO needs ttft_ms, tpot_ms or both")

    def met(self, ttft_s: np.ndarray, tpot_s: np.ndarray) -> np.ndarray:
        """Which requests meet it (a NaN TPOT, from a one-token output, passes the TPOT limit)."""
        ok = np.ones(len(ttft_s), dtype=bool)
        if self.ttft_ms is not None:
            ok &= ttft_s * 1e3 <= self.ttft_ms
        if self.tpot_ms is not None:
            ok &= ~(tpot_s * 1e3 > self.tpot_ms)
        return ok


@dataclass(frozen=True)
class Percentiles:
    p50: float | None
    p90: float | None
    p99: float | None
    mean: float | None

    @classmethod
    def of(cls, values_ms: np.ndarray) -> Percentiles:
        values = values_ms[~np.isnan(values_ms)]
        if values.size == 0:
            return cls(None, None, None, None)
        p50, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
        return cls(p50, p90, p99, float(values.mean()))


@dataclass(frozen=True)
class ServeMetrics:
    requests: int
    duration_s: float
    ttft_ms: Percentiles
    tpot_ms: Percentiles
    e2e_ms: Percentiles
    throughput_tok_s: float  # output tokens per second
    total_tok_s: float  # prompt + output tokens per second
    request_s: float
    goodput_req_s: float | None  # None without an SLO
    slo_attainment: float | None  # fraction of requests meeting the SLO
    utilization: float  # busy time / duration, mean over replicas
    usd_per_mtok: float | None  # per million OUTPUT tokens; None unless every replica has a price
    j_per_tok: float | None  # None unless every replica has a power
    preemptions: int
    input_tokens: int = 0  # prompt tokens of all requests
    output_tokens: int = 0  # output tokens of all requests
    usd_per_mtok_input_output: float | None = None  # per million prompt + output tokens
    max_concurrency: int = 0  # most requests in the system at once

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_metrics(
    arrival_s: np.ndarray,
    first_token_s: np.ndarray,
    finish_s: np.ndarray,
    prompt_tokens: np.ndarray,
    output_tokens: np.ndarray,
    busy_s: np.ndarray,
    prices_per_hour: list[float | None],
    powers_w: list[float | None],
    preemptions: int,
    slo: SLO | None,
) -> ServeMetrics:
    ttft = first_token_s - arrival_s
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output_tokens > 1, (finish_s - first_token_s) / (output_tokens - 1), np.nan)
    e2e = finish_s - arrival_s
    duration = float(finish_s.max() - arrival_s.min())
    out_tokens = float(output_tokens.sum())
    out_rate = out_tokens / duration if duration > 0 else math.inf
    goodput = attainment = None
    if slo is not None:
        met = slo.met(ttft, tpot)
        attainment = float(met.mean())
        goodput = float(met.sum()) / duration if duration > 0 else math.inf
    usd = usd_all = j_per_tok = None
    in_tokens = float(prompt_tokens.sum())
    if all(p is not None for p in prices_per_hour) and out_rate > 0:
        usd = sum(p for p in prices_per_hour if p is not None) / (out_rate * 3600) * 1e6
        usd_all = usd * out_tokens / (out_tokens + in_tokens)
    if all(p is not None for p in powers_w) and out_tokens > 0:
        j_per_tok = sum(p for p in powers_w if p is not None) * duration / out_tokens
    return ServeMetrics(
        requests=len(arrival_s),
        duration_s=duration,
        ttft_ms=Percentiles.of(ttft * 1e3),
        tpot_ms=Percentiles.of(tpot * 1e3),
        e2e_ms=Percentiles.of(e2e * 1e3),
        throughput_tok_s=out_rate,
        total_tok_s=(out_tokens + in_tokens) / duration if duration > 0 else math.inf,
        request_s=len(arrival_s) / duration if duration > 0 else math.inf,
        goodput_req_s=goodput,
        slo_attainment=attainment,
        utilization=float(np.mean(busy_s / duration)) if duration > 0 else 1.0,
        usd_per_mtok=usd,
        j_per_tok=j_per_tok,
        preemptions=preemptions,
        input_tokens=int(in_tokens),
        output_tokens=int(out_tokens),
        usd_per_mtok_input_output=usd_all,
        max_concurrency=max_in_system(arrival_s, finish_s),
    )


def max_in_system(arrival_s: np.ndarray, finish_s: np.ndarray) -> int:
    """The most requests arrived and not yet finished at any instant (a finish before an arrival at the same
    time counts first: the request left)."""
    times = np.concatenate([finish_s, arrival_s])
    steps = np.concatenate([-np.ones(len(finish_s), dtype=np.int64), np.ones(len(arrival_s), dtype=np.int64)])
    order = np.lexsort((steps, times))  # by time, then -1 before +1
    return int(np.cumsum(steps[order]).max(initial=0))

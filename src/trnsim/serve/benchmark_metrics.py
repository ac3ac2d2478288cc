"""Serving metrics in the form vLLM's `benchmark_serving.py` reports them, for `trnsim serve --save-result`.

Latencies in ms with the percentiles asked for (vLLM's --metric-percentiles, default 50,90,95,99) plus mean
and standard deviation: TTFT, TPOT (per request: (last - first token) / (output - 1)), ITL (every gap
between consecutive output tokens of a request, pooled over requests: needs token times) and E2E. Totals
of input and output tokens, request / output / total token throughput, goodput (requests per second
meeting the SLO), the most requests in the system at once, and $/Mtok counted both ways.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from trnsim.serve.errors import ServeError
from trnsim.serve.result import ServeResult

DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
SCHEMA = "trnsim.serve.result/1"  # docs/serving_and_cost.md describes its keys


def parse_percentiles(text: str) -> tuple[float, ...]:
    """ "50,90,99.9" -> (50.0, 90.0, 99.9); each in (0, 100]."""
    values: list[float] = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ServeError(f"percentile {part.strip()!r} is not a number; give e.g. 50,90,95,99,99.9") from None
        if not 0 < value <= 100:
            raise ServeError(f"percentile {value:g} is outside (0, 100]; give e.g. 50,90,95,99,99.9")
        values.append(value)
    return tuple(values)


def percentile_name(p: float) -> str:
    return f"p{p:g}"


def summarize_ms(values_s: np.ndarray, percentiles: Sequence[float]) -> dict[str, float | None]:
    """mean, std and the percentiles (named p50, p99.9, ...) of latencies given in seconds, in ms (NaN dropped)."""
    values = values_s[~np.isnan(values_s)] * 1e3
    out: dict[str, float | None] = dict.fromkeys(["mean", "std", *map(percentile_name, percentiles)])
    if values.size == 0:
        return out
    out |= {"mean": float(values.mean()), "std": float(values.std())}
    for p, v in zip(percentiles, np.percentile(values, list(percentiles))):
        out[percentile_name(p)] = float(v)
    return out


def inter_token_latencies_s(token_times: Sequence[np.ndarray]) -> np.ndarray:
    """Every gap between consecutive output tokens of each request, pooled."""
    gaps = [np.diff(t) for t in token_times if len(t) > 1]
    return np.concatenate(gaps) if gaps else np.array([])


def benchmark_metrics(result: ServeResult, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, Any]:
    """The vLLM-benchmark-style metrics of one run (see the module docstring)."""
    m = result.metrics
    itl = None
    if result.token_times is not None:
        itl = summarize_ms(inter_token_latencies_s(result.token_times), percentiles)
    duration = m.duration_s
    return {
        "completed": m.requests,
        "duration_s": duration,
        "total_input_tokens": m.input_tokens,
        "total_output_tokens": m.output_tokens,
        "request_throughput": m.request_s,
        "output_throughput": m.throughput_tok_s,
        "total_token_throughput": m.total_tok_s,
        "request_goodput": m.goodput_req_s,
        "max_concurrency": m.max_concurrency,
        "ttft_ms": summarize_ms(result.ttft_s, percentiles),
        "tpot_ms": summarize_ms(result.tpot_s, percentiles),
        "itl_ms": itl,  # None when token times were not recorded
        "e2el_ms": summarize_ms(result.e2e_s, percentiles),
        "usd_per_mtok_output": m.usd_per_mtok,
        "usd_per_mtok_input_output": m.usd_per_mtok_input_output,
        "percentiles": list(percentiles),
        "slo": None if result.slo is None else {"ttft_ms": result.slo.ttft_ms, "tpot_ms": result.slo.tpot_ms},
        "slo_attainment": m.slo_attainment,
        "preemptions": m.preemptions,
        "utilization": m.utilization if math.isfinite(m.utilization) else None,
    }

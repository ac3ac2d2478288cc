"""Rows of the report's cost comparison (and of `trnsim compare`'s table) from a serving Comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trnsim.serve.compare import Comparison


def comparison_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """One row per hardware side: load, throughput, latency percentiles, $/Mtok, J/token, cost ratio."""
    ratios = comparison.cost_ratio
    rows = []
    for side in comparison.sides:
        m = side.result.to_dict()
        rows.append(
            {
                "name": side.hw,
                "rate req/s": side.rate_req_s,
                "throughput_tok_s": m["throughput_tok_s"],
                "ttft_ms_p50": m["ttft_ms"]["p50"],
                "ttft_ms_p99": m["ttft_ms"]["p99"],
                "tpot_ms_p50": m["tpot_ms"]["p50"],
                "tpot_ms_p99": m["tpot_ms"]["p99"],
                "usd_per_mtok": m["usd_per_mtok"],
                "j_per_tok": m["j_per_tok"],
                "cost ratio": ratios.get(side.hw),
            }
        )
    return rows

"""Tenants of one instance side by side (`serve --deployment --json`, `plan --deployment --json`): one column
per tenant, one row per quantity, so neighbours' latencies, throughput and cost read across."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trnsim.report.html import Report

# the serve metrics worth reading across tenants (a percentile dict shows its p50 and p99)
SERVE_ROWS = (
    "model",
    "cores",
    "gpus",
    "mig",
    "tp",
    "throughput_tok_s",
    "ttft_ms",
    "tpot_ms",
    "utilization",
    "usd_per_mtok",
    "hbm_bandwidth_factor",
    "link_bandwidth_factor",
)


def _cell(value: Any) -> Any:
    if isinstance(value, dict) and "p50" in value:
        return f"{value['p50']:.4g} / {value.get('p99', float('nan')):.4g} (p50 / p99)"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return value


def tenant_rows(tenants: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of quantities with a column per tenant; serve metrics keep SERVE_ROWS, plan rows keep every key."""
    first = next(iter(tenants.values()), {})
    keys = [k for k in SERVE_ROWS if any(k in t for t in tenants.values())] if "ttft_ms" in first else list(first)
    return [{"quantity": k.replace("_", " ")} | {n: _cell(t.get(k)) for n, t in tenants.items()} for k in keys]


def add_tenants(report: Report, doc: dict[str, Any], name: str) -> None:
    tenants = doc["tenants"]
    title = f"{name}: tenants of each {doc.get('instance', 'instance')}, side by side"
    report.add_table(title, tenant_rows(tenants), ["quantity", *tenants])
    if "replicas" not in doc:  # a serve --deployment result: one sentence on who got what
        tps = ", ".join(f"{n} {float(t.get('throughput_tok_s') or 0):,.0f} tokens/s" for n, t in tenants.items())
        report.story.answer(f"On one {doc.get('instance', 'instance')} the tenants serve {tps}.")

"""Read the JSON files trnsim writes (kernel profiles, model estimates, serving results, cost rows, traces)
into a Report, telling the kinds apart by their keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trnsim.report.plots import Roof, roof_of
from trnsim.report.tenants import add_tenants
from trnsim.runtime.units import fmt_time_us

if TYPE_CHECKING:
    from trnsim.report.html import Report

KERNEL_KEYS = {"kernel", "latency_us", "engine_busy_us", "by_opcode"}
GRAPH_KEYS = {"device_time_us", "by_op", "by_kernel"}
SERVE_KEYS = {"ttft_ms", "tpot_ms", "throughput_tok_s"}
COST_KEYS = {"usd_per_mtok", "j_per_tok"}
COMPARE_KEYS = {"sides", "cost_ratio"}
PLAN_KEYS = {"replicas", "instances", "sized_by"}
SWEEP_KEYS = {"rows", "pareto", "step_cost"}
KNOWN = (
    "the --json of `trnsim kernel`, `estimate`, `serve` (also --deployment), `compare`, `plan` or `sweep`, a trace, "
    "a serving result (ServeResult.to_dict()) or a list of cost rows (name + usd_per_mtok / j_per_tok)"
)


def _roof(target: str, cores: int) -> Roof | None:
    from trnsim.errors import TrnsimError
    from trnsim.hw import get_spec

    try:
        return roof_of(get_spec(target), max(1, cores))
    except TrnsimError:
        return None  # a custom spec file: numbers still reported, only the roofline is left out


def _graph_cores(d: dict[str, Any], target: str) -> int:
    """Cores per rank, which the estimate JSON leaves implicit: MFU = flops / (time x peak of those cores)."""
    from trnsim.errors import TrnsimError
    from trnsim.hw import get_spec

    t, mfu, flops = d.get("device_time_us", 0.0), d.get("mfu", 0.0), d.get("flops_per_rank", 0)
    mfu *= float((d.get("mfu_peak") or {}).get("speedup", 1.0))  # an MX estimate's MFU is of the MX peak
    if not (t and mfu and flops):
        return 1
    try:
        per_core = roof_of(get_spec(target), 1).peak_flops
    except TrnsimError:
        return 1
    return max(1, round(flops / (t * 1e-6) / mfu / per_core))


def add_json_file(report: Report, path: Path) -> None:
    from trnsim.report.html import ReportError

    if not path.is_file():
        raise ReportError(f"report input {path} not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); expected {KNOWN}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a UTF-8 text file; expected {KNOWN}") from None
    name = path.stem
    if isinstance(doc, dict) and "traceEvents" in doc:
        from trnsim.report.trace_summary import load_trace, summarize

        events = load_trace(path)
        s = summarize(events, str(path), top=15)
        from trnsim.report.plots.trace_timeline import plot_trace_timeline

        report.add_figure(f"Engine utilisation: {path.name}", plot_trace_timeline(events, path.name, None))
        report.story.answer(f"Trace {path.name} spans {fmt_time_us(s.span_us)}; the busiest track is {s.bottleneck}.")
        report.add_table(f"{name}: top instructions (trace span {fmt_time_us(s.span_us)})", [vars(t) for t in s.top])
        busy = [vars(t) for t in s.engine_tracks()]
        report.add_table(f"{name}: busy time per engine, DMA queues together (busiest {s.bottleneck})", busy)
        return
    if isinstance(doc, list) and doc and all(isinstance(r, dict) and "name" in r for r in doc):
        if any(COST_KEYS & set(r) for r in doc):
            report.add_cost_comparison(doc)
        else:
            report.add_table(name, doc)
        return
    if isinstance(doc, dict):
        keys = set(doc)
        if keys >= COMPARE_KEYS:
            report.add_comparison(doc)
            add_load_curve(report, doc)
            return
        if isinstance(doc.get("tenants"), dict):  # serve/plan --deployment: tenants of one instance side by side
            if keys >= PLAN_KEYS:
                report.add_plan(doc)
            add_tenants(report, doc, name)
            return
        if keys >= PLAN_KEYS:
            report.add_plan(doc)
            return
        if keys >= SWEEP_KEYS:
            add_sweep(report, doc, name)
            return
        if keys >= KERNEL_KEYS:
            target = str(doc.get("target", ""))
            report.add_kernel_numbers(doc.get("kernel") or name, doc, _roof(target, int(doc.get("cores", 1))))
            return
        if keys >= GRAPH_KEYS:
            target = str(doc.get("target", ""))
            report.add_graph_numbers(doc.get("label") or name, doc, _roof(target, _graph_cores(doc, target)))
            return
        if keys >= SERVE_KEYS:
            report.add_serving_numbers(str(doc.get("name") or doc.get("hw") or name), doc)
            add_load_curve(report, doc)
            return
    shown = ", ".join(sorted(doc)[:8]) if isinstance(doc, dict) else type(doc).__name__
    raise ReportError(f"{path}: unknown content (top level: {shown}); expected {KNOWN}")


def add_load_curve(report: Report, doc: dict[str, Any]) -> None:
    """A compare JSON's "load_curve" (latency against offered load per hardware), with the SLO drawn."""
    if doc.get("load_curve"):
        report.add_load_curve(doc["load_curve"])


def add_sweep(report: Report, doc: dict[str, Any], name: str) -> None:
    """`trnsim sweep --json`: the rows (swept values and headline metrics), the Pareto front, a sentence."""
    from trnsim.report.plots.pareto import plot_pareto
    from trnsim.report.story import sweep_story
    from trnsim.sweep.evaluate import METRIC_COLUMNS

    rows = [r for r in doc["rows"] if isinstance(r, dict)]
    params = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in METRIC_COLUMNS]
    x, y = "usd_per_mtok", "throughput_tok_s"
    sweep_story(report.story, doc, x, y)
    shown = [*params, "throughput_tok_s", "ttft_ms_p99", "tpot_ms_p50", "usd_per_mtok", "j_per_tok", "error"]
    front = set(doc.get("pareto", []))
    marked = [{"Pareto": "*" if i in front else "", **r} for i, r in enumerate(rows)]
    report.add_table(f"{name}: sweep points", marked, ["Pareto", *shown])
    usable = [
        {**r, "point": ", ".join(f"{p}={r[p]}" for p in params)}
        for r in rows
        if not r.get("error") and r.get(x) is not None and r.get(y) is not None
    ]
    if usable:
        plot = plot_pareto(usable, None, x, y, x_higher=False, y_higher=True, label_key="point")
        report.add_figure(f"{name}: Pareto front", plot, f"{y} against {x}; the front in red")

"""Read the JSON files trnsim writes (kernel profiles, model estimates, serving results, cost rows, traces)
into a Report, telling the kinds apart by their keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trnsim.report.plots import Roof, roof_of

if TYPE_CHECKING:
    from trnsim.report.html import Report

KERNEL_KEYS = {"kernel", "latency_us", "engine_busy_us", "by_opcode"}
GRAPH_KEYS = {"device_time_us", "by_op", "by_kernel"}
SERVE_KEYS = {"ttft_ms", "tpot_ms", "throughput_tok_s"}
COST_KEYS = {"usd_per_mtok", "j_per_tok"}
KNOWN = (
    "a kernel profile (`trnsim kernel --json`), a model estimate (`trnsim estimate --json`), a serving result "
    "(ServeResult.to_dict()), a list of cost rows (name + usd_per_mtok / j_per_tok) or a trace (--trace)"
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

        s = summarize(load_trace(path), str(path), top=15)
        report.add_table(f"{name}: top instructions (trace span {s.span_us:,.2f} µs)", [vars(t) for t in s.top])
        report.add_table(f"{name}: busy time per track (bottleneck {s.bottleneck})", [vars(t) for t in s.tracks])
        return
    if isinstance(doc, list) and doc and all(isinstance(r, dict) and "name" in r for r in doc):
        if any(COST_KEYS & set(r) for r in doc):
            report.add_cost_comparison(doc)
        else:
            report.add_table(name, doc)
        return
    if isinstance(doc, dict):
        keys = set(doc)
        if keys >= KERNEL_KEYS:
            target = str(doc.get("target", ""))
            report.add_kernel_numbers(doc.get("kernel") or name, doc, _roof(target, int(doc.get("cores", 1))))
            return
        if keys >= GRAPH_KEYS:
            target = str(doc.get("target", ""))
            report.add_graph_numbers(doc.get("label") or name, doc, _roof(target, _graph_cores(doc, target)))
            return
        if keys >= SERVE_KEYS:
            report.add_serving_numbers(str(doc.get("name") or name), doc)
            return
    shown = ", ".join(sorted(doc)[:8]) if isinstance(doc, dict) else type(doc).__name__
    raise ReportError(f"{path}: unknown content (top level: {shown}); expected {KNOWN}")

"""A self-contained HTML report: summary table, engine timelines, roofline, per-op breakdowns, latency CDFs
and cost comparison in ONE file (plots as base64 PNG, inline CSS, no scripts, no external URLs), so it opens
anywhere without a network."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trnsim.errors import TrnsimError
from trnsim.report.plots import (
    LatencySamples,
    PlotFiles,
    Roof,
    RooflinePoint,
    graph_points,
    latency_samples,
    plot_cost_bars,
    plot_latency_cdf,
    plot_roofline,
    plot_timeline,
    roof_of,
)
from trnsim.report.plots.roofline import graph_roof, placeable

if TYPE_CHECKING:
    from trnsim.runtime.graph_profile import GraphProfile
    from trnsim.runtime.profile import Profile

BREAKDOWN_ROWS = 30  # per-op tables show the top ones by time

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #c60; padding-bottom: .2em; }
h2 { margin-top: 2em; color: #c60; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; font-size: .85em; }
"""


class ReportError(TrnsimError):
    """Report input is unusable: an unknown JSON file, missing fields, or nothing to report."""


def fmt_latency_us(us: float) -> str:
    return f"{us:,.2f} µs"


def fmt_pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def fmt_num(value: Any, digits: int = 3) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def _percentile(block: Any, key: str) -> float | None:
    return block.get(key) if isinstance(block, dict) else getattr(block, key, None)


@dataclass
class Report:
    title: str
    summary: list[dict[str, Any]] = field(default_factory=list)
    timelines: list[tuple[str, PlotFiles]] = field(default_factory=list)
    roofline_points: dict[Roof, list[RooflinePoint]] = field(default_factory=dict)
    breakdowns: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    latencies: dict[str, LatencySamples] = field(default_factory=dict)
    cost_rows: list[dict[str, Any]] = field(default_factory=list)
    tables: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    # -- inputs ---------------------------------------------------------------------------------------------
    def add_kernel_profile(self, name: str, profile: Profile) -> Report:
        self.timelines.append((name, plot_timeline(profile, None)))
        return self.add_kernel_numbers(name, profile.to_dict(), roof_of(profile.spec, profile.n_cores))

    def add_kernel_numbers(self, name: str, d: dict[str, Any], roof: Roof | None) -> Report:
        """A kernel profile as plain data (Profile.to_dict(), or its JSON from `trnsim kernel --json`)."""
        self.summary.append(
            {
                "name": name,
                "kind": "kernel",
                "target": d.get("target", ""),
                "latency": fmt_latency_us(d["latency_us"]),
                "MFU": fmt_pct(d.get("mfu", 0.0)),
                "bottleneck": d.get("bottleneck", ""),
                "HBM GB/s": fmt_num(d.get("hbm_gbps")),
                "SBUF / PSUM peak B/partition": f"{fmt_num(d.get('sbuf_peak_bytes_per_partition'))} / "
                f"{fmt_num(d.get('psum_peak_bytes_per_partition'))}",
            }
        )
        if roof is not None:
            self.roofline_points.setdefault(roof, []).append(
                RooflinePoint(name, d.get("flops", 0), d.get("hbm_bytes", 0), d["latency_us"] * 1e-6)
            )
        lat = d["latency_us"]
        rows = [
            {
                "instruction": k,
                "count": int(v["count"]),
                "busy µs (summed over engines and DMA queues)": v["busy_us"],
            }
            for k, v in sorted(d.get("by_opcode", {}).items(), key=lambda kv: -kv[1]["busy_us"])
        ]
        busy = [
            {"engine": k, "busy µs": v, "busy %": fmt_pct(v / lat) if lat else "–"}
            for k, v in d.get("engine_busy_us", {}).items()
        ]
        if busy:
            self.breakdowns.append((f"{name}: busy time per engine", busy))
        if rows:
            self.breakdowns.append((f"{name}: per-instruction breakdown", rows[:BREAKDOWN_ROWS]))
        return self

    def add_graph_profile(self, name: str, graph: GraphProfile, tokens: int | None = None) -> Report:
        """A compiled model's call; `tokens` (processed per call) adds its throughput to the summary."""
        d = graph.to_dict()
        if tokens and graph.device_time_us:
            d["tokens_per_s"] = tokens / (graph.device_time_us * 1e-6)
        return self.add_graph_numbers(name, d, graph_roof(graph), graph_points(graph))

    def add_graph_numbers(
        self, name: str, d: dict[str, Any], roof: Roof | None, points: list[RooflinePoint] | None = None
    ) -> Report:
        """A compiled model's profile as plain data (GraphProfile.to_dict() or `trnsim estimate --json`)."""
        t = d["device_time_us"]
        row = {
            "name": name,
            "kind": "model",
            "target": d.get("target", ""),
            "latency": fmt_latency_us(t),
            "MFU": fmt_pct(d.get("mfu", 0.0)),
            "bottleneck": d.get("bottleneck", ""),
            "HBM GB/s": fmt_num(d.get("hbm_gbps")),
        }
        if d.get("tokens_per_s"):
            row["throughput tok/s"] = fmt_num(d["tokens_per_s"])
        self.summary.append(row)
        if points is None:
            points = [
                RooflinePoint(k, g["flops"], g["hbm_bytes"], g["device_us"] * 1e-6)
                for k, g in d.get("by_kernel", {}).items()
                if not k.startswith("(")
            ]
        if roof is not None:
            self.roofline_points.setdefault(roof, []).extend(points)
        rows = [
            {
                "op": op,
                "count": int(g["count"]),
                "device µs": g["device_us"],
                "share": fmt_pct(g["device_us"] / t) if t else "–",
                "FLOPs": int(g["flops"]),
                "HBM bytes": int(g["hbm_bytes"]),
            }
            for op, g in sorted(d.get("by_op", {}).items(), key=lambda kv: -kv[1]["device_us"])
        ]
        if rows:
            self.breakdowns.append((f"{name}: per-op breakdown", rows[:BREAKDOWN_ROWS]))
        return self

    def add_serving(self, name: str, result: Any) -> Report:
        """A ServeResult: its metrics in the summary, its per-request latencies as CDFs."""
        self.latencies[name] = latency_samples(result)
        return self.add_serving_numbers(name, result.to_dict())

    def add_serving_numbers(self, name: str, d: dict[str, Any]) -> Report:
        """Serving metrics as plain data (ServeResult.to_dict(), or its JSON)."""
        self.summary.append(
            {
                "name": name,
                "kind": "serving",
                "target": d.get("model", ""),
                "TTFT p50/p99 ms": f"{fmt_num(_percentile(d.get('ttft_ms'), 'p50'))} / "
                f"{fmt_num(_percentile(d.get('ttft_ms'), 'p99'))}",
                "TPOT p50/p99 ms": f"{fmt_num(_percentile(d.get('tpot_ms'), 'p50'))} / "
                f"{fmt_num(_percentile(d.get('tpot_ms'), 'p99'))}",
                "throughput tok/s": fmt_num(d.get("throughput_tok_s")),
                "$/Mtok": fmt_num(d.get("usd_per_mtok")),
                "J/tok": fmt_num(d.get("j_per_tok")),
            }
        )
        if all(isinstance(d.get(k), list) for k in ("ttft_s", "tpot_s", "e2e_s")):
            import numpy as np

            self.latencies[name] = LatencySamples(
                *(np.asarray(d[k], dtype=float) for k in ("ttft_s", "tpot_s", "e2e_s"))
            )
        return self

    def add_cost_comparison(self, rows: list[dict[str, Any]]) -> Report:
        for i, row in enumerate(rows):
            if "name" not in row:
                raise ReportError(f"cost comparison row {i} has no 'name' (keys: {', '.join(row) or 'none'})")
        self.cost_rows.extend(rows)
        return self

    def add_table(self, title: str, rows: list[dict[str, Any]]) -> Report:
        self.tables.append((title, rows))
        return self

    @classmethod
    def from_json_files(cls, paths: list[Path], title: str = "trnsim report") -> Report:
        from trnsim.report.json_inputs import add_json_file

        if not paths:
            raise ReportError("no input files; pass JSON written by --json, --trace or a profile's to_dict()")
        report = cls(title)
        for path in paths:
            add_json_file(report, Path(path))
        return report

    # -- output ---------------------------------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not (self.summary or self.cost_rows or self.tables or self.latencies)

    def to_html(self) -> str:
        if self.is_empty():
            raise ReportError(f"report {self.title!r} is empty; add a profile, serving result, cost rows or a table")
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        if self.summary:
            parts += ["<h2>Summary</h2>", table_html(self.summary)]
        for name, plot in self.timelines:
            parts += [f"<h2>Engine utilisation: {html.escape(name)}</h2>", img_html(plot, f"engine timeline of {name}")]
        for roof, points in self.roofline_points.items():
            if placeable(points):
                parts += [
                    f"<h2>Roofline: {html.escape(roof.name)}</h2>",
                    img_html(plot_roofline(points, roof, None), f"roofline of {roof.name}"),
                ]
        for title, rows in self.breakdowns:
            parts += [f"<h2>{html.escape(title)}</h2>", table_html(rows)]
        if self.latencies:
            parts += ["<h2>Latency CDFs</h2>", img_html(plot_latency_cdf(self.latencies, None), "latency CDFs")]
        if self.cost_rows:
            parts += ["<h2>Cost comparison</h2>", table_html(self.cost_rows)]
            if any(r.get("usd_per_mtok") is not None or r.get("j_per_tok") is not None for r in self.cost_rows):
                parts.append(img_html(plot_cost_bars(self.cost_rows, None), "cost comparison"))
        for title, rows in self.tables:
            parts += [f"<h2>{html.escape(title)}</h2>", table_html(rows)]
        body = "\n".join(parts)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n"
            '<p class="note">written by trnsim; self-contained (no network needed)</p>\n</body></html>\n'
        )

    def write(self, path: str | Path) -> Path:
        out = Path(path)
        text = self.to_html()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        return out


def img_html(plot: PlotFiles, alt: str) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="note">(no rows)</p>'
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt_num(row.get(c)))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

"""A self-contained HTML report that reads top to bottom: what was asked (model, workload, SLO, hardware,
prices with their date and basis), the answer in one sentence, then the evidence (tables, engine timelines,
roofline, latency CDFs with the SLO, cost bars, load curves, Pareto fronts). ONE file: plots as base64 PNG,
inline CSS, no scripts, no external URLs, rendered from the Jinja2 template templates/report.html.j2."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from trnsim.errors import TrnsimError
from trnsim.report import story as stories
from trnsim.report import summary_rows as rows_of
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
from trnsim.report.plots.latency_cdf import LatencyPercentiles
from trnsim.report.plots.roofline import graph_roof, placeable
from trnsim.report.story import Story

if TYPE_CHECKING:
    from trnsim.runtime.graph_profile import GraphProfile
    from trnsim.runtime.profile import Profile

BREAKDOWN_ROWS = 30  # per-op tables show the top ones by time
ROOF_NOTE = "Memory roof: what these cores' DMA queues pull from HBM, capped by the chip's HBM bandwidth."
SUMMARY_ORDER = ("Kernels", "Models", "Serving", "Capacity plans")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("trnsim.report", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


class ReportError(TrnsimError):
    """Report input is unusable: an unknown JSON file, missing fields, or nothing to report."""


@dataclass
class Block:
    """One piece of evidence: a table, a figure, or both, under a heading."""

    title: str
    rows: list[dict[str, str]] | None = None
    plot: PlotFiles | None = None
    alt: str = ""
    caption: str = ""

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(k for r in self.rows or [] for k in r))

    @property
    def image(self) -> str:
        return base64.b64encode(self.plot.png).decode("ascii") if self.plot is not None else ""


@dataclass
class Report:
    title: str
    story: Story = field(default_factory=Story)
    summaries: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    timelines: list[tuple[str, PlotFiles]] = field(default_factory=list)
    roofline_points: dict[Roof, list[RooflinePoint]] = field(default_factory=dict)
    breakdowns: list[Block] = field(default_factory=list)
    latencies: dict[str, LatencySamples] = field(default_factory=dict)
    percentiles: dict[str, LatencyPercentiles] = field(default_factory=dict)
    slo_ms: dict[str, float] = field(default_factory=dict)
    cost_rows: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Block] = field(default_factory=list)
    tables: list[Block] = field(default_factory=list)

    # -- inputs ---------------------------------------------------------------------------------------------
    def add_kernel_profile(self, name: str, profile: Profile, per_queue: bool = False) -> Report:
        """A kernel's Profile; its DMA queues are one timeline track unless `per_queue`."""
        self.timelines.append((name, plot_timeline(profile, None, per_queue=per_queue)))
        return self.add_kernel_numbers(name, profile.to_dict(), roof_of(profile.spec, profile.n_cores))

    def add_kernel_numbers(self, name: str, d: dict[str, Any], roof: Roof | None) -> Report:
        """A kernel profile as plain data (Profile.to_dict(), or its JSON from `trnsim kernel --json`)."""
        self.summaries.setdefault("Kernels", []).append(rows_of.kernel_row(name, d))
        stories.kernel_story(self.story, name, d)
        if roof is not None:
            self.roofline_points.setdefault(roof, []).append(
                RooflinePoint(name, d.get("flops", 0), d.get("hbm_bytes", 0), d["latency_us"] * 1e-6)
            )
        if d.get("engine_busy_us"):
            self.breakdowns.append(Block(f"{name}: busy time per engine", rows_of.engine_rows(d)))
        if d.get("by_opcode"):
            note = "Busy time adds up over the engines and DMA queues that ran the instruction: it can exceed latency."
            self.breakdowns.append(
                Block(f"{name}: per-instruction breakdown", rows_of.instruction_rows(d, BREAKDOWN_ROWS), caption=note)
            )
        return self

    def add_graph_profile(self, name: str, graph: GraphProfile, tokens: int | None = None) -> Report:
        """A compiled model's call; `tokens` (processed per call) adds its throughput to the summary."""
        d = graph.to_dict()
        if tokens and graph.device_time_us:
            d["tokens"] = tokens
            d["tokens_per_s"] = tokens / (graph.device_time_us * 1e-6)
        return self.add_graph_numbers(name, d, graph_roof(graph), graph_points(graph))

    def add_graph_numbers(
        self, name: str, d: dict[str, Any], roof: Roof | None, points: list[RooflinePoint] | None = None
    ) -> Report:
        """A compiled model's profile as plain data (GraphProfile.to_dict() or `trnsim estimate --json`)."""
        self.summaries.setdefault("Models", []).append(rows_of.model_row(name, d))
        stories.graph_story(self.story, name, d)
        if points is None:
            points = [
                RooflinePoint(k, g["flops"], g["hbm_bytes"], g["device_us"] * 1e-6)
                for k, g in d.get("by_kernel", {}).items()
                if not k.startswith("(")
            ]
        if roof is not None:
            self.roofline_points.setdefault(roof, []).extend(points)
        if d.get("by_op"):
            self.breakdowns.append(Block(f"{name}: per-op breakdown", rows_of.op_rows(d, BREAKDOWN_ROWS)))
        return self

    def set_slo(self, ttft_ms: float | None = None, tpot_ms: float | None = None) -> Report:
        """The latency targets: asked, and drawn as lines on the CDFs."""
        for key, value in (("ttft", ttft_ms), ("tpot", tpot_ms)):
            if value is not None:
                self.slo_ms[key] = float(value)
        text = stories.slo_text({"ttft_ms": ttft_ms, "tpot_ms": tpot_ms})
        if text:
            self.story.ask("SLO", text)
        return self

    def add_serving(self, name: str, result: Any) -> Report:
        """A ServeResult: its metrics in the summary, its per-request latencies as CDFs, its SLO and the
        lengths of its requests as what was asked."""
        self.latencies[name] = latency_samples(result)
        slo = getattr(result, "slo", None)
        if slo is not None:
            self.set_slo(slo.ttft_ms, slo.tpot_ms)
        prompts, outputs = getattr(result, "prompt_tokens", None), getattr(result, "output_tokens", None)
        if prompts is not None and outputs is not None and len(prompts):
            self.story.ask(
                "Workload",
                f"{len(prompts):,} requests; prompt {stories.length_range(prompts)}, output "
                f"{stories.length_range(outputs)} tokens",
            )
        return self.add_serving_numbers(name, result.to_dict())

    def add_serving_numbers(self, name: str, d: dict[str, Any]) -> Report:
        """Serving metrics as plain data (ServeResult.to_dict(), `trnsim serve --json` or a compare side)."""
        self.summaries.setdefault("Serving", []).append(rows_of.serving_row(name, d))
        stories.serving_story(self.story, name, d)
        if isinstance(d.get("slo"), dict):
            self.set_slo(d["slo"].get("ttft_ms"), d["slo"].get("tpot_ms"))
        if all(isinstance(d.get(k), list) for k in ("ttft_s", "tpot_s", "e2e_s")):
            import numpy as np

            self.latencies[name] = LatencySamples(
                *(np.asarray(d[k], dtype=float) for k in ("ttft_s", "tpot_s", "e2e_s"))
            )
        elif name not in self.latencies and all(isinstance(d.get(k), dict) for k in ("ttft_ms", "tpot_ms", "e2e_ms")):
            self.percentiles[name] = LatencyPercentiles(d["ttft_ms"], d["tpot_ms"], d["e2e_ms"])
        return self

    def add_comparison(self, d: dict[str, Any]) -> Report:
        """`trnsim compare --json` (serve.compare.Comparison.to_dict()): the sides, their cost, the SLO."""
        slo = d.get("slo") or {}
        self.set_slo(slo.get("ttft_ms"), slo.get("tpot_ms"))
        for side in d.get("sides", []):
            self.add_serving_numbers(str(side["hw"]), side)
        stories.comparison_story(self.story, d)
        self.story.answers.insert(0, self.story.answers.pop())  # the comparison is the headline
        ratios = d.get("cost_ratio", {})
        self.cost_rows.extend(
            {
                "name": s["hw"],
                "usd_per_mtok": s.get("usd_per_mtok"),
                "j_per_tok": s.get("j_per_tok"),
                "cost ratio": ratios.get(s["hw"]),
            }
            for s in d.get("sides", [])
        )
        return self

    def add_plan(self, d: dict[str, Any]) -> Report:
        """`trnsim plan --json`: the fleet, its power and its yearly cost."""
        self.summaries.setdefault("Capacity plans", []).append(rows_of.plan_row(d))
        stories.plan_story(self.story, d)
        sources = d.get("sources") or {}
        if sources:
            self.tables.append(
                Block("Where the plan's numbers come from", [{"Number": k, "Source": v} for k, v in sources.items()])
            )
        return self

    def add_cost_comparison(self, rows: list[dict[str, Any]]) -> Report:
        for i, row in enumerate(rows):
            if "name" not in row:
                raise ReportError(f"cost comparison row {i} has no 'name' (keys: {', '.join(row) or 'none'})")
        self.cost_rows.extend(rows)
        priced = [r for r in rows if r.get("usd_per_mtok") is not None]
        for row in rows:
            stories.price_line(self.story, str(row["name"]))
        if len(priced) > 1:
            best = min(priced, key=lambda r: r["usd_per_mtok"])
            rest = "; ".join(
                f"{r['name']} costs {r['usd_per_mtok'] / best['usd_per_mtok']:.2f}x as much"
                for r in priced
                if r is not best
            )
            self.story.answers.insert(
                0, f"{best['name']} is the cheapest per token at {stories.money(best['usd_per_mtok'])}/Mtok; {rest}."
            )
        return self

    def add_load_curve(self, points: list[dict[str, Any]]) -> Report:
        """Latency against offered load per hardware (Comparison.to_dict()["load_curve"]), SLO drawn."""
        from trnsim.report.plots.load_curve import plot_load_curve

        if points:
            caption = "p50 solid, p99 dashed; crosses: offered rates the hardware could not sustain."
            self.add_figure("Latency against load", plot_load_curve(points, None, self.slo_ms or None), caption)
        return self

    def add_figure(self, title: str, plot: PlotFiles, caption: str = "") -> Report:
        self.figures.append(Block(title, plot=plot, alt=title, caption=caption))
        return self

    def add_table(self, title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Report:
        self.tables.append(Block(title, rows_of.generic_rows(rows, columns)))
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
        return not (self.summaries or self.cost_rows or self.tables or self.latencies or self.figures)

    def evidence(self) -> list[Block]:
        """The evidence in reading order: summaries, timelines, roofline, latency, cost, figures, breakdowns."""
        blocks = [Block(kind, self.summaries[kind]) for kind in SUMMARY_ORDER if kind in self.summaries]
        for name, plot in self.timelines:
            blocks.append(
                Block(
                    f"Engine utilisation: {name}",
                    plot=plot,
                    alt=f"engine timeline of {name}",
                    caption="A core's DMA queues are one track: the time any queue moves data.",
                )
            )
        for roof, points in self.roofline_points.items():
            if placeable(points):
                blocks.append(
                    Block(
                        f"Roofline: {roof.name}",
                        plot=plot_roofline(points, roof, None),
                        alt=f"roofline of {roof.name}",
                        caption=ROOF_NOTE,
                    )
                )
        if self.latencies or self.percentiles:
            caption = "Dashed red lines: the SLO." if self.slo_ms else ""
            if self.percentiles:
                caption += " Runs known only by percentiles (JSON without per-request samples) are drawn as points."
            blocks.append(
                Block(
                    "Latency CDFs",
                    plot=plot_latency_cdf(self.latencies, None, self.slo_ms, self.percentiles),
                    alt="latency CDFs",
                    caption=caption.strip(),
                )
            )
        if self.cost_rows:
            blocks.append(Block("Cost comparison", rows_of.generic_rows(self.cost_rows)))
            if any(r.get("usd_per_mtok") is not None or r.get("j_per_tok") is not None for r in self.cost_rows):
                blocks.append(Block("Cost per token", plot=plot_cost_bars(self.cost_rows, None), alt="cost comparison"))
        return [*blocks, *self.figures, *self.breakdowns, *self.tables]

    def to_html(self) -> str:
        if self.is_empty():
            raise ReportError(f"report {self.title!r} is empty; add a profile, serving result, cost rows or a table")
        return _TEMPLATES.get_template("report.html.j2").render(
            title=self.title,
            asked=self.story.ordered_asked(),
            answers=self.story.answers,
            caveats=self.story.caveats,
            blocks=self.evidence(),
        )

    def write(self, path: str | Path) -> Path:
        out = Path(path)
        text = self.to_html()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        return out

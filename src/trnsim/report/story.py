"""The report's story: what was asked (workload, SLO, hardware, prices with their date and basis), the answer
in one sentence per input, and the caveats an answer carries (a price that is an assumption)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trnsim.runtime.units import fmt_bytes, fmt_time_us

ASKED_ORDER = ("Model", "Workload", "SLO", "Hardware", "Prices")


@dataclass
class Story:
    asked: dict[str, list[str]] = field(default_factory=dict)  # heading -> lines, in ASKED_ORDER
    answers: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)

    def ask(self, heading: str, line: str) -> None:
        lines = self.asked.setdefault(heading, [])
        if line and line not in lines:
            lines.append(line)

    def answer(self, sentence: str) -> None:
        if sentence not in self.answers:
            self.answers.append(sentence)

    def caveat(self, text: str) -> None:
        if text not in self.caveats:
            self.caveats.append(text)

    def ordered_asked(self) -> list[tuple[str, list[str]]]:
        known = [(h, self.asked[h]) for h in ASKED_ORDER if h in self.asked]
        return known + [(h, v) for h, v in self.asked.items() if h not in ASKED_ORDER]


def num(value: Any, digits: int = 3) -> str:
    """A number to 3 significant digits, whole from 1000 up, '–' when missing."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def money(value: Any) -> str:
    return "–" if value is None else f"${value:,.3g}" if abs(value) < 1000 else f"${value:,.0f}"


def length_range(lengths: Any) -> str:
    """'2,048' for equal lengths, else 'LOW-HIGH (mean M)'."""
    lo, hi = int(min(lengths)), int(max(lengths))
    mean = sum(int(v) for v in lengths) / len(lengths)
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,} (mean {mean:,.0f})"


def slo_text(slo: dict[str, Any] | None) -> str:
    if not slo:
        return ""
    parts = [f"TTFT ≤ {num(slo['ttft_ms'])} ms" if slo.get("ttft_ms") is not None else ""]
    parts.append(f"TPOT ≤ {num(slo['tpot_ms'])} ms" if slo.get("tpot_ms") is not None else "")
    return ", ".join(p for p in parts if p)


def hw_text(hw: str, tp: Any = None) -> str:
    """'p5.48xlarge, tp=8' from a compare side's 'p5.48xlarge:tp=8' or an instance and its tp."""
    instance, _, rest = hw.partition(":")
    tp_text = rest.replace("tp=", "") if rest.startswith("tp=") else (str(tp) if tp else "")
    return f"{instance}, tp={tp_text}" if tp_text else instance


def price_line(story: Story, hw: str) -> str | None:
    """The price of the instance `hw` names (INSTANCE or INSTANCE:tp=N) with its date and basis; an assumed
    price also becomes a caveat."""
    from trnsim.errors import TrnsimError

    instance = hw.partition(":")[0]
    try:
        from trnsim.cost import load_prices

        entry = load_prices().instance(instance)
    except TrnsimError:
        return None
    where = f"{entry.purchase}, {entry.region}, as of {entry.as_of}"
    story.ask("Prices", f"{instance}: ${entry.usd_per_hour:,.2f}/h {where} ({entry.basis})")
    if entry.basis == "assumption":
        why = (entry.note or entry.source).removeprefix("assumption:").strip().split(". ")[0].rstrip(".")
        story.caveat(
            f"The {instance} price (${entry.usd_per_hour:,.2f}/h, as of {entry.as_of}) is an assumption: {why}. "
            "Every $ figure and cost ratio that uses it inherits that; override it with `--prices my.toml`."
        )
    return str(entry.basis)


def kernel_story(story: Story, name: str, d: dict[str, Any]) -> None:
    cores = int(d.get("cores", 1))
    story.ask("Hardware", f"{d.get('target', '?')}: {cores} NeuronCore{'s' if cores > 1 else ''}")
    bound = d.get("bound") or f"busiest engine {d.get('bottleneck', '?')}"
    story.answer(
        f"{name} runs in {fmt_time_us(d['latency_us'])} on {d.get('target', '?')} ({cores} core"
        f"{'s' if cores > 1 else ''}): {bound}, MFU {100 * d.get('mfu', 0.0):.1f}%."
    )


def graph_story(story: Story, name: str, d: dict[str, Any]) -> None:
    story.ask("Model", name)
    story.ask("Hardware", f"{d.get('target', '?')}, tensor parallel {d.get('tp', 1)}")
    if d.get("tokens"):
        story.ask("Workload", f"one {d.get('mode', '')} step of {d['tokens']:,} tokens")
    rate = f", {num(d['tokens_per_s'])} tokens/s" if d.get("tokens_per_s") else ""
    fits = "" if d.get("fits_hbm", True) else f"; it does NOT fit HBM ({fmt_bytes(d.get('peak_hbm_bytes', 0))})"
    story.answer(
        f"{name} takes {fmt_time_us(d['device_time_us'])} per step on {d.get('target', '?')} "
        f"(tp={d.get('tp', 1)}){rate}, MFU {100 * d.get('mfu', 0.0):.1f}%{fits}."
    )


def serving_story(story: Story, name: str, d: dict[str, Any]) -> None:
    hw = str(d.get("hw") or d.get("target") or name)
    story.ask("Model", str(d.get("model", "")))
    story.ask("Hardware", hw_text(hw, d.get("tp")))
    load = f"Poisson {num(d['rate_req_s'])} req/s" if d.get("rate_req_s") else ""
    load = load or (f"{d['concurrency']} concurrent clients" if d.get("concurrency") else "")
    story.ask("Workload", f"{d.get('requests', '?')} requests" + (f", {load}" if load else ""))
    if d.get("hw"):
        price_line(story, str(d["hw"]))
    met = d.get("slo_attainment")
    met_text = f", {100 * met:.0f}% of requests within the SLO" if met is not None and d.get("slo") else ""
    where = hw_text(hw, d.get("tp"))
    story.answer(
        f"{d.get('model', name)} on {where} serves {num(d.get('throughput_tok_s'))} output tokens/s; "
        f"TTFT p99 {num((d.get('ttft_ms') or {}).get('p99'))} ms, TPOT p99 {num((d.get('tpot_ms') or {}).get('p99'))} "
        f"ms{met_text}; {money(d.get('usd_per_mtok'))} per million tokens."
    )


def comparison_story(story: Story, d: dict[str, Any]) -> None:
    story.ask("Model", str(d.get("model", "")))
    slo = slo_text(d.get("slo"))
    if slo:
        story.ask("SLO", slo)
    if d.get("workload"):
        story.ask("Workload", str(d["workload"]))
    sides = d.get("sides", [])
    bases = set()
    for side in sides:
        story.ask("Hardware", hw_text(side["hw"], side.get("tp")))
        bases.add(price_line(story, side["hw"]))
    priced = [s for s in sides if s.get("usd_per_mtok") is not None]
    if not priced:
        return
    best = min(priced, key=lambda s: s["usd_per_mtok"])
    others = [s for s in priced if s is not best]
    rest = "; ".join(
        f"{hw_text(s['hw'], s.get('tp'))} costs {s['usd_per_mtok'] / best['usd_per_mtok']:.2f}x as much" for s in others
    )
    assumed = " (with assumed prices: see the caveats)" if "assumption" in bases else ""
    story.answer(
        f"Within the SLO ({slo or 'none given'}), {hw_text(best['hw'], best.get('tp'))} is the cheapest per token at "
        f"{money(best['usd_per_mtok'])}/Mtok" + (f"; {rest}" if rest else "") + assumed + "."
    )
    for name, why in (d.get("slo_unmet") or {}).items():
        story.caveat(f"{name} meets the SLO at no load tried: {why}")


def plan_story(story: Story, d: dict[str, Any]) -> None:
    story.ask("Model", str(d.get("model", "")))
    story.ask("Hardware", f"{d.get('instance', '?')} (tp={d.get('tp', '?')}, {d.get('cooling', '')} cooling)")
    slo = slo_text(d.get("slo"))
    if slo:
        story.ask("SLO", slo)
    demand = f"{num(d.get('tokens_per_s'))} tokens/s"
    budget = f"a {num(d['power_budget_w'] / 1e6)} MW power budget" if d.get("power_budget_w") else demand
    story.ask("Workload", f"sized by {d.get('sized_by', '?')}: {budget}")
    price_line(story, str(d.get("instance", "")))
    story.answer(
        f"{d.get('replicas', 0):,} replicas on {d.get('instances', 0):,} {d.get('instance', '?')} "
        f"({d.get('chips', 0):,} chips, {d.get('racks', 0):,} racks, {num(d.get('facility_mw_peak'))} MW facility "
        f"peak) serve {demand} for {money(d.get('instances_usd_per_year', 0) + d.get('energy_usd_per_year', 0))} "
        f"a year, {money(d.get('usd_per_mtok'))} per million tokens."
    )
    if "capacity_source" in d and "not checked" in str(d["capacity_source"]):
        story.caveat(f"Replica capacity {d['capacity_source']}.")


def sweep_story(story: Story, d: dict[str, Any], x: str, y: str) -> None:
    rows = [r for r in d.get("rows", []) if not r.get("error")]
    story.ask("Workload", f"a sweep of {len(d.get('rows', []))} points ({d.get('step_cost', '?')} step cost)")
    if not rows:
        return
    front = [d["rows"][i] for i in d.get("pareto", [])]
    from trnsim.report.summary_rows import header

    best = max(rows, key=lambda r: r.get(y) or 0.0)
    story.answer(
        f"{len(front)} of {len(d['rows'])} points are on the Pareto front of {header(y)} against {header(x)}; the "
        f"highest {header(y)} ({num(best.get(y))}) comes at {header(x)} {num(best.get(x))}."
    )
    if d.get("failed"):
        story.caveat(f"{d['failed']} sweep points failed (see the table's error column).")

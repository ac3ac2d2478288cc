"""`trnsim report` reads the JSON of every command and tells its story: what was asked, the answer in one
sentence, then the evidence; in headless Chromium at 1400 px nothing overflows horizontally."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trnsim.cli import app
from trnsim.cost import load_prices
from trnsim.report.html import Report
from trnsim.report.perfetto import write_trace

from .test_html import CHROMIUM, random_graph, small_serving


def _write(tmp_path: Path, name: str, doc: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _text(report: Report) -> str:
    page = re.sub(r"<[^>]+>", " ", report.to_html())
    return " ".join(page.replace("&#39;", "'").replace("&amp;", "&").split())


def compare_doc(rng) -> dict:
    """The schema of `trnsim compare --json`: each side is ServeResult.to_dict() plus hw, tp and its load."""
    sides = []
    for hw, tp in (("trn2.48xlarge:tp=4", 4), ("p5.48xlarge:tp=1", 1)):
        side = small_serving(rng).to_dict()
        side.update(hw=hw, tp=tp, rate_req_s=float(rng.uniform(1, 9)))
        sides.append(side)
    base = sides[0]["usd_per_mtok"]
    curve = [
        {
            "hw": s["hw"],
            "rate": s["rate_req_s"] * f,
            "ttft_p50_ms": 100 * f,
            "ttft_p99_ms": 200 * f,
            "tpot_p50_ms": 10 * f,
            "tpot_p99_ms": 20 * f,
            "throughput_tok_s": 50 * f,
            "sustained": f < 1.2,
        }
        for s in sides
        for f in (0.25, 0.5, 1.0, 1.5)
    ]
    return {
        "model": "toy-1b",
        "slo": {"ttft_ms": 800.0, "tpot_ms": 60.0},
        "sides": sides,
        "cost_ratio": {s["hw"]: s["usd_per_mtok"] / base for s in sides},
        "slo_unmet": {},
        "load_curve": curve,
    }


@pytest.fixture
def command_jsons(random_matmul, rng, tmp_path) -> dict[str, Path]:
    prof = random_matmul(rng)[0]
    runner = CliRunner()
    plan = runner.invoke(
        app,
        [
            "plan",
            "--model",
            "llama-3.1-8b",
            "--hw",
            "trn2.48xlarge",
            "--tp",
            "4",
            "--power",
            "10MW",
            "--tokens-per-s-per-replica",
            "1000",
            "--json",
        ],
    )
    assert plan.exit_code == 0, plan.output
    sweep = runner.invoke(
        app,
        [
            "sweep",
            "--model",
            "llama-3.1-8b",
            "--requests",
            "12",
            "--prompt",
            "64",
            "--output",
            "8",
            "--rate",
            "2",
            "--step-cost",
            "roofline",
            "--set",
            "chip.hbm_bytes_per_ns=2900,5800",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "sweep"),
            "--json",
        ],
    )
    assert sweep.exit_code == 0, sweep.output
    return {
        "kernel": _write(tmp_path, "kernel.json", prof.to_dict()),
        "estimate": _write(tmp_path, "estimate.json", random_graph(rng).to_dict()),
        "serve": _write(tmp_path, "serve.json", {**small_serving(rng).to_dict(), "hw": "trn2.48xlarge", "tp": 4}),
        "compare": _write(tmp_path, "compare.json", compare_doc(rng)),
        "plan": _write(tmp_path, "plan.json", json.loads(plan.stdout)),
        "sweep": _write(tmp_path, "sweep.json", json.loads(sweep.stdout[sweep.stdout.index("{") :])),
        "trace": write_trace(prof, tmp_path / "trace.json"),
    }


def test_every_commands_json_gets_an_answer(command_jsons) -> None:
    for kind, path in command_jsons.items():
        report = Report.from_json_files([path], title=kind)
        assert report.story.answers, kind
        text = _text(report)
        assert "Answer" in text and "Evidence" in text, kind

    compare = json.loads(command_jsons["compare"].read_text())
    best = min(compare["sides"], key=lambda s: s["usd_per_mtok"])
    other = next(s for s in compare["sides"] if s is not best)
    report = Report.from_json_files([command_jsons["compare"]])
    headline = report.story.answers[0]
    assert headline.startswith("Within the SLO (TTFT ≤ 800 ms, TPOT ≤ 60 ms), " + best["hw"].replace(":tp=", ", tp="))
    assert f"{other['usd_per_mtok'] / best['usd_per_mtok']:.2f}x as much" in headline
    asked = dict(report.story.ordered_asked())
    assert asked["SLO"] == ["TTFT ≤ 800 ms, TPOT ≤ 60 ms"]
    for side in compare["sides"]:
        entry = load_prices().instance(side["hw"].split(":")[0])
        line = next(p for p in asked["Prices"] if p.startswith(entry_name := side["hw"].split(":")[0]))
        assert f"${entry.usd_per_hour:,.2f}/h" in line and str(entry.as_of) in line and entry.basis in line
        assumed = any(c.startswith(f"The {entry_name} price") for c in report.story.caveats)
        assert assumed == (entry.basis == "assumption")
    text = _text(report)
    assert "Latency against load" in text  # the load curve, drawn by report.plots.load_curve
    assert "SLO TTFT ≤ 800 ms" in text.replace("What was asked", "")  # the SLO is stated before the answer
    assert text.index("What was asked") < text.index("Answer") < text.index("Evidence")

    plan = json.loads(command_jsons["plan"].read_text())
    answer = Report.from_json_files([command_jsons["plan"]]).story.answers[0]
    assert f"{plan['replicas']:,} replicas on {plan['instances']:,} trn2.48xlarge" in answer

    sweep = json.loads(command_jsons["sweep"].read_text())
    answer = Report.from_json_files([command_jsons["sweep"]]).story.answers[0]
    assert answer.startswith(f"{len(sweep['pareto'])} of {len(sweep['rows'])} points are on the Pareto front")


def test_report_reads_top_to_bottom_within_1400px_in_chromium(command_jsons, tmp_path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium not found on PATH (CI installs Debian's chromium package in .ci/run)")
    text = Report.from_json_files(list(command_jsons.values()), title="every input").to_html()
    probe = (
        "<script>window.addEventListener('load', () => { const p = document.createElement('pre');"
        " p.id = 'probe'; p.textContent = JSON.stringify({width: document.documentElement.scrollWidth,"
        " view: window.innerWidth, sections: [...document.querySelectorAll('section')].map(s => s.id),"
        " images: [...document.images].map(i => i.complete && i.naturalWidth > 100)});"
        " document.body.appendChild(p); });</script>"
    )
    page = tmp_path / "probe.html"
    page.write_text(text.replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1400,1000",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the page did not finish loading in chromium; DOM starts: {dom[:300]!r}"
    seen = json.loads(found.group(1))
    assert seen["view"] == 1400 and seen["width"] <= 1400, seen  # no horizontal overflow
    assert seen["sections"] == ["asked", "answer", "evidence"]
    assert seen["images"] and all(seen["images"])


def test_a_serving_result_states_its_slo_and_request_lengths(rng) -> None:
    from trnsim.serve import SLO, Poisson, Replica, RooflineStepCost, ServedModel
    from trnsim.serve.lengths import Uniform
    from trnsim.serve.simulate import simulate
    from trnsim.serve.workload import Workload

    model = ServedModel("toy-1b", weight_bytes=2e9, kv_bytes_per_token=65536.0, params=1e9)
    cost = RooflineStepCost(2e9, 2e9, 65536.0, 100e12, 1e12, fixed_overhead_s=1e-4)
    work = Workload(int(rng.integers(20, 60)), Poisson(float(rng.uniform(5, 50))), Uniform(16, 256), Uniform(2, 64))
    slo = SLO(ttft_ms=float(rng.integers(100, 900)), tpot_ms=float(rng.integers(10, 90)))
    result = simulate(model, Replica(40e9, cost, price_per_hour=3.0, power_w=500.0), work, "continuous", slo=slo)
    report = Report("one run").add_serving("toy", result)
    asked = dict(report.story.ordered_asked())
    assert asked["SLO"] == [f"TTFT ≤ {slo.ttft_ms:,.0f} ms, TPOT ≤ {slo.tpot_ms:,.0f} ms"]
    prompts = result.prompt_tokens
    assert asked["Workload"][0].startswith(f"{len(prompts):,} requests; prompt {prompts.min():,}-{prompts.max():,}")
    assert report.slo_ms == {"ttft": slo.ttft_ms, "tpot": slo.tpot_ms}  # drawn on the CDFs

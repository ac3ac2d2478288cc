"""The HTML report: self-contained (no external references), the key numbers (recomputed here from the
inputs) present, and, in headless Chromium, rendered with every plot an image that decodes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import numpy as np
import pytest
from typer.testing import CliRunner

import trnsim.demo.kernels
from trnsim.cli import app
from trnsim.hw import load_preset
from trnsim.report.html import Report, ReportError
from trnsim.report.perfetto import write_trace
from trnsim.runtime.graph_profile import GraphProfile, OpRecord
from trnsim.runtime.units import fmt_time_us
from trnsim.serve import Poisson, Replica, RooflineStepCost, ServedModel
from trnsim.serve.lengths import Uniform
from trnsim.serve.simulate import simulate
from trnsim.serve.workload import Workload

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def random_graph(rng) -> GraphProfile:
    spec = load_preset("trn2")
    records = []
    for i in range(int(rng.integers(2, 8))):
        records.append(
            OpRecord(
                node=f"n{i}",
                op=f"aten.op{i}.default",
                kind="kernel",
                kernel=f"kernel{i % 3}",
                device_us=float(rng.uniform(1, 100)),
                flops=int(rng.integers(1e6, 1e10)),
                hbm_bytes=int(rng.integers(1e4, 1e8)),
                engine_busy_us={"tensor": float(rng.uniform(0, 50)), "dma": float(rng.uniform(0, 50))},
                count=int(rng.integers(1, 5)),
            )
        )
    return GraphProfile(target="trn2", mode="timing", spec=spec, records=records, label="toy")


def small_serving(rng):
    model = ServedModel("toy-1b", weight_bytes=2e9, kv_bytes_per_token=65536.0, params=1e9)
    cost = RooflineStepCost(
        weight_bytes=2e9,
        flops_per_token=2e9,
        kv_bytes_per_token=65536.0,
        peak_flops=100e12,
        hbm_bytes_per_s=1e12,
        fixed_overhead_s=1e-4,
    )
    replica = Replica(40e9, cost, price_per_hour=float(rng.uniform(1, 10)), power_w=float(rng.uniform(300, 900)))
    work = Workload(int(rng.integers(20, 60)), Poisson(float(rng.uniform(5, 50))), Uniform(16, 256), Uniform(2, 64))
    return simulate(model, replica, work, "continuous")


def key_numbers(prof, graph, serve) -> list[str]:
    """The summary numbers, computed from the raw inputs (not from Profile's own properties)."""
    lat_us = float(prof.timeline.instr_end.max()) / 1000.0
    t = prof.spec.core.tensor
    peak = t.pe_rows * t.pe_cols * 2 * t.clock_ghz * 1e9
    flops = sum(i.flops for i in prof.instructions)
    graph_us = sum(r.device_us * r.count for r in graph.records)
    graph_mfu = sum(r.flops * r.count for r in graph.records) / (graph_us * 1e-6) / peak
    ttft_ms = (serve.first_token_s - serve.arrival_s) * 1000
    return [
        fmt_time_us(lat_us),
        f"{100 * flops / (lat_us * 1e-6) / peak:.1f}%",
        fmt_time_us(graph_us),
        f"{100 * graph_mfu:.1f}%",
        _as_table_number(float(np.percentile(ttft_ms, 50))),
    ]


def _as_table_number(v: float) -> str:
    """Report tables show 3 significant digits, whole numbers from 1000 up."""
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


@pytest.fixture
def report_inputs(random_matmul, rng):
    prof = random_matmul(rng)[0]
    graph = random_graph(rng)
    serve = small_serving(rng)
    cost = [
        {"name": "trn2", "usd_per_mtok": float(rng.uniform(0.1, 2)), "j_per_tok": float(rng.uniform(0.1, 2))},
        {"name": "h100", "usd_per_mtok": float(rng.uniform(0.1, 2)), "j_per_tok": float(rng.uniform(0.1, 2))},
    ]
    return prof, graph, serve, cost


def build(prof, graph, serve, cost) -> Report:
    return (
        Report("trn2 <vs> h100")
        .add_kernel_profile("matmul", prof)
        .add_graph_profile("toy", graph)
        .add_serving("toy serving", serve)
        .add_cost_comparison(cost)
        .add_table("notes", [{"name": "seed", "value": 1}])
    )


def test_report_is_self_contained_with_key_numbers(report_inputs, tmp_path):
    prof, graph, serve, cost = report_inputs
    text = build(prof, graph, serve, cost).write(tmp_path / "r.html").read_text(encoding="utf-8")
    assert not EXTERNAL.search(text) and "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower()
    for number in key_numbers(prof, graph, serve):
        assert number in text, number
    assert "trn2 &lt;vs&gt; h100" in text  # titles are escaped
    # timeline, roofline (one roof: every input on one trn2 core), latency CDFs, cost bars
    assert text.count('<img alt="') == 4
    for name in graph.by_op():
        assert name in text


def test_report_renders_in_headless_chromium(report_inputs, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium not found on PATH (CI installs Debian's chromium package in .ci/run)")
    prof, graph, serve, cost = report_inputs
    text = build(prof, graph, serve, cost).to_html()
    # The report has no scripts; this copy adds one that records what the browser decoded.
    probe = (
        "<script>window.addEventListener('load', () => { const p = document.createElement('pre');"
        " p.id = 'probe'; p.textContent = JSON.stringify([...document.images].map("
        "i => [i.complete, i.naturalWidth, i.naturalHeight])); document.body.appendChild(p); });</script>"
    )
    page = tmp_path / "probe.html"
    page.write_text(text.replace("</body>", probe + "</body>"), encoding="utf-8")
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*base, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the page did not finish loading in chromium; DOM starts: {dom[:300]!r}"
    images = json.loads(found.group(1))
    assert len(images) == 4
    assert all(done and w > 100 and h > 100 for done, w, h in images), images
    for number in key_numbers(prof, graph, serve):
        assert number in dom, number
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,2000", (tmp_path / "probe.html").as_uri()],
        capture_output=True,
        timeout=120,
    )
    pixels = mpimg.imread(shot)
    assert float(pixels[..., :3].std()) > 0.05  # something was drawn, not a blank page


def test_report_from_json_files_and_cli(report_inputs, tmp_path):
    prof, graph, serve, cost = report_inputs
    files = {
        "kernel.json": prof.to_dict(),
        "estimate.json": graph.to_dict(),
        "serve.json": serve.to_dict(),
        "cost.json": cost,
    }
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
        paths.append(tmp_path / name)
    paths.append(write_trace(prof, tmp_path / "trace.json"))
    out = tmp_path / "out" / "report.html"
    res = CliRunner().invoke(app, ["report", *map(str, paths), "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    for number in key_numbers(prof, graph, serve):
        assert number in text, number
    assert not EXTERNAL.search(text)
    # the roofline, the latency CDF from the percentiles (the JSON holds no samples), the cost bars and the
    # engine timeline drawn from the trace
    assert text.count('<img alt="') == 4
    assert "busy time per engine, DMA queues together" in text and "dma q0" not in text  # from the trace


def test_unknown_or_bad_json_names_the_file(tmp_path):
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ReportError, match=r"odd.json: unknown content \(top level: hello\)"):
        Report.from_json_files([odd])
    broken = tmp_path / "broken.json"
    broken.write_text('{\n"a": 1,\n}')
    with pytest.raises(ReportError, match=r"broken.json line 3: not valid JSON"):
        Report.from_json_files([broken])
    with pytest.raises(ReportError, match="not found"):
        Report.from_json_files([tmp_path / "nope.json"])
    with pytest.raises(ReportError, match="is empty"):
        Report("nothing").write(tmp_path / "x.html")
    res = CliRunner().invoke(app, ["report", str(odd)])
    assert res.exit_code != 0


def test_kernel_cli_writes_report(tmp_path):
    out = tmp_path / "k.html"
    res = CliRunner().invoke(
        app,
        [
            "kernel",
            f"{trnsim.demo.kernels.__file__}:tiled_matmul",
            "--arg",
            "128x128:bfloat16",
            "--arg",
            "128x512:bfloat16",
            "--mode",
            "timing",
            "--report",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert "Engine utilisation: tiled_matmul" in text and "Roofline: trn2, 1 core of 8" in text
    assert "tiled_matmul runs in" in text  # the answer


def test_a_gpu_estimate_is_placed_under_the_gpus_roof(tmp_path):
    """A GPU estimate has no Trainium spec: its roofline is one GPU's dense peak and HBM bandwidth."""
    import torch
    import transformers

    import trnsim
    from trnsim.gpu.presets import load_gpu_preset
    from trnsim.report.plots.roofline import graph_roof

    config = transformers.GPT2Config(n_layer=1, n_embd=64, n_head=4, vocab_size=128, n_positions=64)
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(config)
    ids = torch.zeros((1, 32), dtype=torch.long, device="meta")
    prof = trnsim.estimate(model, (ids,), target="h100")
    roof = graph_roof(prof)
    assert roof.hbm_bytes_per_s == pytest.approx(load_gpu_preset("h100").memory.hbm_tb_per_s * 1e12)
    assert roof.peak_flops == pytest.approx(prof.peak_tflops * 1e12)
    html = Report("gpu").add_graph_profile("gpt2 on h100", prof).write(tmp_path / "gpu.html").read_text()
    assert "gpt2 on h100" in html and "<img" in html

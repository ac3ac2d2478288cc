"""`make demo` end to end on its built-in defaults: every output it names exists, parses and holds the checks
the demo reports (kernel vs PyTorch, compiled vs eager, both serving sides, the plans)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib.image
import pytest
from rich.console import Console

from trnsim.demo import run_demo


def test_demo_writes_its_report_trace_and_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trnsim.compiler.kernel_cache import reset_default_cache

    monkeypatch.setenv("TRNSIM_CACHE_DIR", str(tmp_path / "cache"))  # cold caches, as on a fresh machine
    reset_default_cache()
    text = io.StringIO()
    paths = run_demo(tmp_path / "out", "trn2", Console(file=text, width=160))
    printed = text.getvalue()
    for name in ("report", "trace", "timeline", "summary"):
        assert paths[name].is_file() and str(paths[name]) in printed.replace("\n", "")

    html = paths["report"].read_text()
    assert "<img" in html and "http://" not in html and "https://" not in html
    # the story: what was asked, then the answer (the cheaper side per token), then the evidence
    assert html.index('id="asked"') < html.index('id="answer"') < html.index('id="evidence"')
    assert "is the cheapest per token" in html and "SLO" in html and "Prices" in html

    trace = json.loads(paths["trace"].read_text())
    slices = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    assert slices and {e["pid"] for e in slices} >= {0}
    assert any(e.get("ph") == "C" for e in trace["traceEvents"])  # SBUF/PSUM/HBM occupancy counters

    image = matplotlib.image.imread(paths["timeline"])
    assert image.shape[0] > 100 and float(image.std()) > 0.01

    summary = json.loads(paths["summary"].read_text())
    assert summary["kernel"]["max_abs_error"] < 0.05  # bf16 attention vs torch in fp32
    assert summary["kernel"]["latency_us"] > 0
    assert summary["compiled"]["min_cosine_vs_eager"] >= 0.999
    sides = summary["serving"]["sides"]
    assert [s["hw"] for s in sides] == ["trn2.48xlarge:tp=4", "p5.48xlarge:tp=1"]
    for side in sides:
        assert side["rate_req_s"] > 0 and side["throughput_tok_s"] > 0
        assert side["ttft_ms"]["p50"] <= side["ttft_ms"]["p99"] <= 2000.0 * 10  # percentiles ordered, finite
    ratio = summary["serving"]["cost_ratio"]
    assert ratio["trn2.48xlarge:tp=4"] == pytest.approx(1.0)
    assert ratio["p5.48xlarge:tp=1"] == pytest.approx(sides[1]["usd_per_mtok"] / sides[0]["usd_per_mtok"])
    for hw, plan in summary["plans"].items():
        assert plan["capacity_tokens_per_s"] >= 1_000_000, hw  # the fleet covers the demand

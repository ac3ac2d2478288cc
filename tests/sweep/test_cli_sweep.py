"""`trnsim sweep` end to end on a tiny sweep: JSON rows, files, Pareto flags, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from trnsim.cli import app
from trnsim.sweep import pareto_front, read_csv

ARGS = ["sweep", "--model", "llama-3.1-8b", "--requests", "30", "--prompt", "64-256", "--output", "16-48"]
ARGS += ["--step-cost", "roofline", "--rate", "3"]


def test_tiny_sweep_json_and_files(tmp_path) -> None:
    out = tmp_path / "sweep"
    sets = ["--set", "chip.hbm_bytes_per_ns=2900,5800", "--set", "tp=2,4,6"]
    result = CliRunner().invoke(app, [*ARGS, *sets, "--workers", "1", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = data["rows"]
    assert [(r["chip.hbm_bytes_per_ns"], r["tp"]) for r in rows] == [(h, t) for h in (2900, 5800) for t in (2, 4, 6)]
    assert data["failed"] == 2 and all("divisor of 64" in r["error"] for r in rows if r["tp"] == 6)
    assert read_csv(out / "sweep.csv") == rows
    front = pareto_front(rows)
    assert data["pareto"] == [i for i, r in enumerate(rows) if any(r is f for f in front)]
    assert all(rows[i]["chip.hbm_bytes_per_ns"] == 5800 for i in data["pareto"])  # faster HBM dominates
    for name in ("pareto.png", "pareto.svg", "sweep.csv"):
        assert (out / name).stat().st_size > 1000
    assert str(out / "pareto.png") in data["files"]


def test_sweep_file_table_output_and_tpot_plot(tmp_path) -> None:
    file = tmp_path / "sweep.toml"
    file.write_text("seed = 5\n[set]\nmax_batch = [1, 8]\nscheduler = ['static', 'static']\n")
    bad = CliRunner().invoke(app, [*ARGS, "--file", str(file)])
    assert "repeats a value" in str(bad.exception) and "sweep.toml:4" in str(bad.exception)
    file.write_text("seed = 5\n[set]\nmax_batch = [1, 8]\nscheduler = ['static']\n")
    args = [*ARGS, "--file", str(file), "--set", "scheduler=continuous,chunked", "--y", "tpot_ms_p50"]
    cli_args = [*args, "--tp", "4", "--workers", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, cli_args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "scheduler" in result.output and "chunked" in result.output and "*" in result.output
    assert "every point is offered the same load (3 req/s)" in result.output  # throughput is not the story here
    assert (tmp_path / "pareto.svg").exists()


def test_errors_are_one_line() -> None:
    cmd = [sys.executable, "-m", "trnsim", *ARGS, "--set", "chip.hbm_gbps=2900,4000"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown sweep field 'chip.hbm_gbps'" in res.stderr and "chip.hbm_bytes_per_ns" in res.stderr

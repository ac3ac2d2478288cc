"""`trnsim plan`: JSON equal to the library's plan, the table, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from trnsim.cli.plan import plan_command
from trnsim.cost import CostError, capacity_from_user, plan

app = typer.Typer()
app.command()(plan_command)


def test_json_matches_the_library() -> None:
    args = ["--model", "llama-3.1-70b", "--hw", "trn2.48xlarge", "--tp", "32", "--power", "500MW"]
    result = CliRunner().invoke(app, [*args, "--tokens-per-s-per-replica", "1500", "--cooling", "liquid", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    expected = plan(capacity_from_user(1500.0, "trn2.48xlarge", 32), power_budget="500MW", cooling="liquid")
    for key, value in expected.to_dict().items():
        assert out[key] == value, key
    assert out["model"] == "llama-3.1-70b" and out["tp"] == 32
    assert out["replicas"] == 2 * out["instances"]  # tp=32 is half of a trn2.48xlarge's 64 logical cores
    assert "1500" not in out["capacity_source"] and "SLO not checked" in out["capacity_source"]
    assert set(out["sources"]) >= {"price", "chip", "pue", "rack", "kwh"}


def test_table_output() -> None:
    args = ["--model", "mixtral-8x7b", "--hw", "p5.48xlarge", "--tp", "8", "--tokens-per-s", "2e6"]
    result = CliRunner().invoke(app, [*args, "--tokens-per-s-per-replica", "4000"], terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "replicas" in result.output and "500" in result.output  # 2e6 / 4000 replicas
    assert "$/Mtok" in result.output and "[1]" in result.output


def test_registered_command_prints_errors_as_one_line() -> None:
    cmd = [sys.executable, "-m", "trnsim", "plan", "--model", "gpt2", "--hw", "trn2.48xlarge", "--tp", "8"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "exactly one of --power" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--tokens-per-s", "1e5"], "give --slo-ttft-ms and/or --slo-tpot-ms"),
        (["--power", "lots", "--tokens-per-s-per-replica", "10"], "cannot read power 'lots'"),
        (["--power", "1GW", "--tokens-per-s-per-replica", "10", "--cooling", "oil"], "unknown cooling 'oil'"),
        (["--tokens-per-s", "1", "--tokens-per-s-per-replica", "1", "--prices", "/no/such.toml"], "cannot read prices"),
    ],
)
def test_user_errors_are_trnsim_errors(extra: list[str], error: str) -> None:
    args = ["--model", "llama-3.1-8b", "--hw", "trn2.48xlarge", "--tp", "8", *extra]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, CostError) and error in str(result.exception)

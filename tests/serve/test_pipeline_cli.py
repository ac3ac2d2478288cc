"""`trnsim serve --pp P`: a replica of P stages x tp ranks (memory, price and power of all of them), its steps
priced by the pipeline step cost; pp that does not divide the layers, or stages smaller than a chip, refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.cost import load_prices
from trnsim.errors import TrnsimError
from trnsim.serve.pipeline import PipelineStepCost
from trnsim.serve.pipeline_setup import pipeline_setup
from trnsim.serve.setup import served_model, serving_setup

WORK = ["--requests", "30", "--prompt", "512-1024", "--output", "16", "--rate", "2"]


@pytest.fixture(autouse=True, scope="module")
def small_grids(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Private step-latency caches and a 2-point grid per axis (as tests/test_cli_serve.py), to stay fast."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("pipeline_cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.setattr(esc, "GRID_RATIO", {"batches": 1 << 30, "new_tokens": 1 << 30, "contexts": 1 << 30})
        reset_default_cache(None)
        yield
        reset_default_cache(None)


def _serve(*extra: str) -> dict[str, Any]:
    args = ["serve", "--model", "llama-3.1-8b", "--hw", "p5.48xlarge", "--tp", "1", *extra, *WORK, "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_serve_pp_spends_the_stages_memory_and_price() -> None:
    staged = _serve("--pp", "2")
    assert staged["pp"] == 2
    price = load_prices().instance("p5.48xlarge").usd_per_hour
    # $/Mtok prices the replica's two GPUs: usd_per_mtok = price share / output tokens per hour
    assert staged["usd_per_mtok"] == pytest.approx(price * 2 / 8 / (staged["throughput_tok_s"] * 3600) * 1e6)
    assert staged["weight_bytes"] == served_model("llama-3.1-8b", 1).weight_bytes  # spread over the stages


def test_pipeline_setup_wraps_the_stage_estimate() -> None:
    one = serving_setup("llama-3.1-8b", "p5.48xlarge", 1)
    two = pipeline_setup("llama-3.1-8b", "p5.48xlarge", 1, 2)
    assert two.replica.device_memory_bytes == pytest.approx(2 * one.replica.device_memory_bytes)
    step = two.replica.step_cost
    assert isinstance(step, PipelineStepCost) and step.stages == 2 and step.hidden_size == 4096
    # one sequence: the whole model on one GPU plus one activation hop
    inner = one.replica.step_cost.step_time_s(1, 700, 700)
    assert step.step_time_s(1, 700, 700) == pytest.approx(inner + step.transfer_s(700), rel=1e-9)


@pytest.mark.parametrize(
    ("hw", "tp", "pp", "message"),
    [
        ("p5.48xlarge", "1", "3", "does not divide llama-3.1-8b's 32 layers"),
        ("p5.48xlarge", "1", "0", "--pp must be a whole number >= 1"),
        ("trn2.48xlarge", "2", "2", "must be whole chips of trn2.48xlarge"),
        ("p5.48xlarge", "4", "4", "16 ranks exceed the 8 of one p5.48xlarge"),
    ],
)
def test_bad_pp_is_one_line(hw: str, tp: str, pp: str, message: str) -> None:
    args = ["serve", "--model", "llama-3.1-8b", "--hw", hw, "--tp", tp, "--pp", pp, *WORK]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, TrnsimError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)

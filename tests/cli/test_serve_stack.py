"""`trnsim serve/compare --serving-stack` on a tiny model: the CLI prices steps exactly as the public API
`serving_setup(stack=...)` does, bucket padding shows in TTFT as the bucket list predicts, GPUs and uncovered
paths fall back to exact shapes under auto, and bad values are one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.errors import TrnsimError
from trnsim.serve import ClosedLoop, Fixed, StaticBatching, Workload, simulate
from trnsim.serve.serving_stack import stack_for
from trnsim.serve.setup import grid_bounds, serving_setup
from trnsim.serve.stack_choice import stack_grid_bounds

TRN = ["--hw", "trn2.48xlarge", "--tp", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A two-layer Llama config, private kernel and step-latency caches, a 2-point grid per axis (1, the bound)."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("serve_stack")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "vocab_size": 1024,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    }
    path = root / "tiny.json"
    path.write_text(json.dumps(config))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.setattr(esc, "GRID_RATIO", {"batches": 1 << 30, "new_tokens": 1 << 30, "contexts": 1 << 30})
        reset_default_cache(None)
        yield str(path)
        reset_default_cache(None)


def serve(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["serve", *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


LONGEST = 600  # prompt + output of one_request: every run's step grid spans the same contexts


def one_request(model: str, prompt: int, *extra: str) -> dict[str, Any]:
    """One client, one request of `prompt` tokens and LONGEST - prompt output tokens, static batching."""
    args = ["--concurrency", "1", "--requests", "1", "--prompt", str(prompt), "--output", str(LONGEST - prompt)]
    return serve("--model", model, *TRN, *args, "--scheduler", "static", *extra)


def test_cli_steps_are_the_public_apis(tiny: str) -> None:
    args = ["--concurrency", "2", "--requests", "6", "--prompt", "300", "--output", "20", "--scheduler", "static"]
    out = serve("--model", tiny, *TRN, *args)
    assert out["serving_stack"]["name"] == "nxd-inference" and out["serving_stack"]["requested"] == "auto"
    seq_len = out["serving_stack"]["seq_len"]
    assert seq_len == 320  # the longest request, 300 + 20 tokens

    work = Workload(6, ClosedLoop(2), prompt=Fixed(300), output=Fixed(20))
    stack = stack_for("trn2", seq_len)
    bounds = stack_grid_bounds(grid_bounds(work, "static"), work, "static", stack)
    setup = serving_setup(tiny, "trn2.48xlarge", 1, bounds=bounds, stack=stack)
    m = simulate(setup.model, setup.replica, work, StaticBatching()).metrics
    for key, ours in (("ttft_ms", m.ttft_ms), ("tpot_ms", m.tpot_ms), ("e2e_ms", m.e2e_ms)):
        assert out[key]["p50"] == pytest.approx(ours.p50, rel=1e-12), key
        assert out[key]["p99"] == pytest.approx(ours.p99, rel=1e-12), key
    assert out["serving_stack"]["context_buckets"] == list(stack.context_buckets)


def test_a_prompt_just_past_a_bucket_costs_the_next_buckets_prefill(tiny: str) -> None:
    buckets = stack_for("trn2", LONGEST).context_buckets  # NxD Inference's powers of two from 128, then seq_len
    assert buckets == (128, 256, 512, LONGEST)
    runs = {p: one_request(tiny, p) for p in (100, 128, 129, 200, 256, 257)}
    assert {r["serving_stack"]["seq_len"] for r in runs.values()} == {LONGEST}
    ttft = {p: r["ttft_ms"]["p50"] for p, r in runs.items()}
    # prompts in one bucket share a step grid (its new-tokens axis ends at the bucket) and cost the same prefill
    assert ttft[100] == pytest.approx(ttft[128], rel=1e-12)
    assert ttft[129] == pytest.approx(ttft[256], rel=1e-12) == pytest.approx(ttft[200], rel=1e-12)
    assert ttft[129] > ttft[128] and ttft[257] > ttft[256]
    # closed form: one request's TTFT is one prefill step at its bucket's shape (batch 1, bucket tokens, bucket keys)
    for prompt, ms in ttft.items():
        work = Workload(1, ClosedLoop(1), prompt=Fixed(prompt), output=Fixed(LONGEST - prompt))
        stack = stack_for("trn2", LONGEST)
        bounds = stack_grid_bounds(grid_bounds(work, "static"), work, "static", stack)
        inner = serving_setup(tiny, "trn2.48xlarge", 1, bounds=bounds, stack=stack).replica.step_cost.inner
        bucket = next(b for b in buckets if b >= prompt)
        assert ms == pytest.approx(inner.step_time_s(1, bucket, float(bucket)) * 1e3, rel=1e-9), prompt
    exact = one_request(tiny, 129, "--serving-stack", "exact")
    assert exact["serving_stack"]["name"] == "exact" and exact["ttft_ms"]["p50"] < ttft[129]


def test_gpus_and_uncovered_schedulers_get_exact_shapes_under_auto(tiny: str) -> None:
    gpu = serve("--model", tiny, "--hw", "p5.48xlarge", "--tp", "1", "--rate", "5", "--requests", "8")
    assert gpu["serving_stack"]["name"] == "exact" and "not a Neuron chip" in gpu["serving_stack"]["note"]
    chunked = serve("--model", tiny, *TRN, "--rate", "5", "--requests", "8", "--prompt", "64", "--scheduler", "chunked")
    assert chunked["serving_stack"]["name"] == "exact" and "chunked" in chunked["serving_stack"]["note"]
    tnx = serve(
        "--model", tiny, "--hw", "trn1.32xlarge", "--tp", "1", "--rate", "5", "--requests", "8", "--prompt", "64"
    )
    assert tnx["serving_stack"]["name"] == "transformers-neuronx"
    assert tnx["serving_stack"]["context_buckets"][0] == 64  # half of the first token bucket


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--serving-stack", "tnx"], "not known; use one of auto, exact, transformers-neuronx, nxd-inference"),
        (["--serving-stack", "nxd-inference", "--scheduler", "chunked"], "does not cover --scheduler chunked"),
        (["--serving-stack", "nxd-inference", "--pp", "2"], "does not cover --pp"),
        (["--serving-stack", "transformers-neuronx", "--hw", "p5.48xlarge"], "not a Neuron chip"),
    ],
)
def test_bad_serving_stacks_are_one_line_errors(tiny: str, args: list[str], expected: str) -> None:
    base = ["serve", "--model", tiny, *TRN, "--rate", "5", "--requests", "8"]
    result = CliRunner().invoke(app, [*base, *args])
    assert result.exit_code != 0 and isinstance(result.exception, TrnsimError)
    assert expected in str(result.exception) and "\n" not in str(result.exception)


def test_compare_reports_each_sides_stack(tiny: str) -> None:
    args = ["--hw", "trn2.48xlarge:tp=1", "--hw", "p5.48xlarge:tp=1", "--slo-ttft-ms", "5000", "--rate", "3"]
    result = CliRunner().invoke(
        app, ["compare", "--model", tiny, *args, "--requests", "12", "--prompt", "40", "--output", "8", "--json"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    sides = json.loads(result.stdout)["sides"]
    assert [s["serving_stack"]["name"] for s in sides] == ["nxd-inference", "exact"]
    refused = CliRunner().invoke(app, ["compare", "--model", tiny, *args, "--serving-stack", "nxd-inference"])
    assert refused.exit_code != 0 and "not a Neuron chip" in str(refused.exception)


def test_plan_sizes_with_the_serving_stack(tiny: str) -> None:
    args = ["plan", "--model", tiny, *TRN, "--tokens-per-s", "100000", "--slo-ttft-ms", "5000"]
    work = ["--requests", "12", "--prompt", "40", "--output", "8"]
    result = CliRunner().invoke(app, [*args, *work, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["capacity_source"].endswith("(--serving-stack auto)")
    refused = CliRunner().invoke(app, [*args, *work, "--serving-stack", "tnx"])
    assert refused.exit_code != 0 and "not known; use one of auto" in str(refused.exception)

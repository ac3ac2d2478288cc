"""`trnsim serve`, `trnsim compare` and `trnsim plan` (capacity from the serving simulator) on a tiny model:
JSON keys present and consistent with each other and with the cost tables; impossible setups as one line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.cost import load_power, load_prices, server_power
from trnsim.errors import TrnsimError
from trnsim.serve.load_curve import DEFAULT_FRACTIONS

WORK = ["--requests", "24", "--prompt", "40", "--output", "8"]
GPU_WORK = ["--requests", "40", "--prompt", "512", "--output", "32"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A two-layer Llama config, private kernel and step-latency caches, a 2-point grid per axis (1, the bound)."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("cli_serve")
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


def run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def check_metrics(out: dict[str, Any], instance: str, replicas_per_instance: int) -> None:
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        p = out[key]
        assert 0 < p["p50"] <= p["p90"] <= p["p99"]
    tokens = out["requests"] * 8
    assert out["throughput_tok_s"] == pytest.approx(tokens / out["duration_s"], rel=1e-12)
    price = load_prices().instance(instance).usd_per_hour / replicas_per_instance
    assert out["usd_per_mtok"] == pytest.approx(price / (out["throughput_tok_s"] * 3600) * 1e6, rel=1e-9)
    power = load_power()
    watts = server_power(instance).peak_w * power.cooling_for("air").pue.value / replicas_per_instance
    assert out["j_per_tok"] == pytest.approx(watts * out["duration_s"] / tokens, rel=1e-9)


def test_serve_json_open_and_closed_loop(tiny: str) -> None:
    trn = run("serve", "--model", tiny, "--hw", "trn2.48xlarge", "--tp", "1", "--rate", "5", *WORK)
    assert trn["target"] == "trn2" and trn["requests"] == 24
    check_metrics(trn, "trn2.48xlarge", 64)  # 16 chips x 4 logical cores, one per replica
    table = CliRunner().invoke(
        app, ["serve", "--model", tiny, "--hw", "trn2.48xlarge", "--tp", "1", "--rate", "5", *WORK]
    )
    assert table.exit_code == 0 and "TTFT ms" in table.stdout and "$ per million" in table.stdout
    closed = run("serve", "--model", tiny, "--hw", "trn2.48xlarge", "--tp", "1", "--concurrency", "4", *WORK)
    assert closed["concurrency"] == 4 and closed["rate_req_s"] is None
    check_metrics(closed, "trn2.48xlarge", 64)


def test_compare_at_a_fixed_rate_and_an_unreachable_slo(tiny: str) -> None:
    hw = ["--hw", "trn2.48xlarge:tp=1", "--hw", "p5.48xlarge:tp=2"]
    out = run("compare", "--model", tiny, *hw, "--slo-ttft-ms", "50", "--rate", "3", *WORK)
    first, second = out["sides"]
    assert (first["hw"], second["hw"]) == ("trn2.48xlarge:tp=1", "p5.48xlarge:tp=2")
    assert first["rate_req_s"] == second["rate_req_s"] == 3 and not first["rate_from_search"]
    check_metrics(first, "trn2.48xlarge", 64)
    check_metrics(second, "p5.48xlarge", 4)
    assert out["cost_ratio"][first["hw"]] == pytest.approx(1.0)
    assert out["cost_ratio"][second["hw"]] == pytest.approx(second["usd_per_mtok"] / first["usd_per_mtok"])

    args = ["compare", "--model", tiny, *hw, "--slo-ttft-ms", "50", "--rate", "3", *WORK]
    report = Path(tiny).parent / "compare.html"
    table = CliRunner().invoke(app, [*args, "--report", str(report)], terminal_width=160)
    assert table.exit_code == 0 and "cost vs first" in table.stdout and "p5.48xlarge:tp=2" in table.stdout
    from trnsim.report.story import money  # imported here: the report's formatting is another area's

    html = report.read_text()  # the report holds both sides' numbers, as the JSON gave them
    assert "p5.48xlarge:tp=2" in html and money(first["usd_per_mtok"]) in html

    result = CliRunner().invoke(app, ["compare", "--model", tiny, *hw, "--slo-ttft-ms", "0.001", *WORK])
    assert isinstance(result.exception, TrnsimError)
    message = str(result.exception)
    assert "no hardware meets the SLO" in message and "\n" not in message


def test_compare_searches_the_max_rate_under_the_slo(tiny: str) -> None:
    """Llama-3.1-8B on H100 vs H200 (GPU model: fast to build): each side's rate is the highest meeting the SLO."""
    hw = ["--hw", "p5.48xlarge:tp=1", "--hw", "p5e.48xlarge:tp=1"]
    out = run("compare", "--model", "llama-3.1-8b", *hw, "--slo-ttft-ms", "300", "--slo-tpot-ms", "40", *GPU_WORK)
    h100, h200 = out["sides"]
    for side in (h100, h200):
        assert side["rate_from_search"] and side["rate_req_s"] > 0
        assert side["slo_attainment"] >= 0.9
    assert h200["tpot_ms"]["p50"] < h100["tpot_ms"]["p50"] * 1.5  # same traffic shape, faster memory
    assert out["cost_ratio"]["p5e.48xlarge:tp=1"] == pytest.approx(h200["usd_per_mtok"] / h100["usd_per_mtok"])
    for side in (h100, h200):  # the search's confidence: the answer brackets and the steady-state run behind it
        low, high = side["capacity"]["rate_interval_req_s"]
        assert low == side["rate_req_s"] < high <= low * 1.03
        assert side["capacity"]["steady_state"]["long_enough"]
        curve = [p for p in out["load_curve"] if p["hw"] == side["hw"]]
        assert [p["rate"] for p in curve] == pytest.approx([side["rate_req_s"] * f for f in DEFAULT_FRACTIONS])
        assert all(p["sustained"] for p in curve if p["rate"] <= side["rate_req_s"] * 0.75)


def test_plan_sizes_replicas_with_the_serving_simulator(tiny: str) -> None:
    args = ["--hw", "p5.48xlarge", "--tp", "1", "--tokens-per-s", "1000000", "--slo-ttft-ms", "300"]
    out = run("plan", "--model", "llama-3.1-8b", *args, "--slo-tpot-ms", "40", *GPU_WORK)
    assert out["capacity_source"].startswith("serving simulator")
    per_replica = out["capacity_tokens_per_s"] / out["replicas"]
    assert per_replica > 0
    # demand sizing: the fewest whole instances (8 one-GPU replicas each) whose capacity covers the demand
    instances = out["instances"]
    assert instances * 8 * per_replica >= 1_000_000 > (instances - 1) * 8 * per_replica
    override = run("plan", "--model", tiny, *args, "--tokens-per-s-per-replica", "1000")
    assert override["capacity_source"].startswith("given by")
    assert override["capacity_tokens_per_s"] == pytest.approx(override["replicas"] * 1000)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "llama-3.1-70b", "--hw", "trn2.48xlarge", "--tp", "1"], "GiB of weights.*raise tp"),
        (["--hw", "trn2.48xlarge", "--tp", "3"], "tp=3"),
        (["--hw", "trn2.48xlarge", "--tp", "128"], "tp=128"),
        (["--hw", "p5.48xlarge", "--tp", "16"], "tp=16"),
    ],
)
def test_impossible_setups_are_one_line_errors(tiny: str, args: list[str], expected: str) -> None:
    if "--model" not in args:
        args = ["--model", tiny, *args]
    result = CliRunner().invoke(app, ["serve", *args, "--rate", "1", *WORK])
    assert isinstance(result.exception, TrnsimError), result.exception
    message = str(result.exception)
    assert "\n" not in message
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--prompt", "10000000", "--output", "8", "--requests", "4"], r"exceeds .*context of 4,096 tokens"),
        (["--prompt", "40", "--output", "8", "--requests", "100000000"], r"more than one run simulates"),
        (["--prompt", "40", "--output", "8", "--requests", "4", "--scheduler", "fcfs"], r"unknown scheduler"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "compare"])
def test_absurd_input_is_refused_at_once_in_one_line(tiny: str, args: list[str], expected: str, command: str) -> None:
    hw = ["--hw", "trn2.48xlarge", "--tp", "1"] if command == "serve" else ["--hw", "trn2.48xlarge:tp=1"]
    load = ["--rate", "1"] if command == "serve" else ["--slo-ttft-ms", "100"]
    result = CliRunner().invoke(app, [command, "--model", tiny, *hw, *load, *args])
    assert isinstance(result.exception, TrnsimError), result.exception
    message = str(result.exception)
    assert "\n" not in message and re.search(expected, message), message


def test_every_priced_instance_serves(tiny: str) -> None:
    """H100, H200 (p5e, p5en), B200, trn1, inf2, trn2, the trn2 and trn3 UltraServers: each has a price, a
    power figure and an accelerator model, so `serve` runs on it."""
    table = load_prices()
    listed = ["p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge", "p6-b200.48xlarge", "trn1.32xlarge", "inf2.48xlarge"]
    listed += ["trn2.48xlarge", "trn2-ultraserver", "trn3-ultraserver", "trn3-ultraserver-gen2"]
    assert set(listed) <= set(table.instances)
    for name, entry in sorted(table.instances.items()):
        assert entry.basis != "assumption" or entry.note  # an assumption says why
        if name not in listed:  # p4d (A100): no accelerator model yet, and it says so
            result = CliRunner().invoke(app, ["serve", "--model", tiny, "--hw", name, "--tp", "1", "--rate", "5"])
            assert isinstance(result.exception, TrnsimError) and "no model of" in str(result.exception)
            continue
        out = run("serve", "--model", tiny, "--hw", name, "--tp", "1", "--rate", "5", *WORK)
        assert out["requests"] == 24 and out["usd_per_mtok"] > 0 and out["j_per_tok"] > 0, name


def test_prices_and_power_files_add_an_instance(tiny: str, tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["serve", "--model", tiny, "--hw", "my-h100.box", "--tp", "1", "--rate", "5"])
    assert isinstance(missing.exception, TrnsimError) and "--prices" in str(missing.exception)
    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[instances."my-h100.box"]\naccelerator = "h100"\naccelerators = 8\nhbm_gib_per_accelerator = 80\n'
        'usd_per_hour = 16.0\nregion = "on-prem"\n'
    )
    power = tmp_path / "power.toml"
    power.write_text('[server_overhead_w]\n"my-h100.box" = { value = 1000.0, source = "our meter" }\n')
    args = ["--model", tiny, "--hw", "my-h100.box", "--tp", "1", "--rate", "5", *WORK]
    out = run("serve", *args, "--prices", str(prices), "--power-table", str(power))
    tokens_per_hour = out["throughput_tok_s"] * 3600
    assert out["usd_per_mtok"] == pytest.approx(16.0 / 8 / tokens_per_hour * 1e6, rel=1e-9)
    watts = (8 * 700.0 + 1000.0) * load_power().cooling_for("air").pue.value / 8  # h100 chips at 700 W
    assert out["j_per_tok"] == pytest.approx(watts * out["duration_s"] / (out["requests"] * 8), rel=1e-9)
    cmp = run(
        "compare",
        "--model",
        tiny,
        "--hw",
        "my-h100.box:tp=1",
        "--slo-ttft-ms",
        "500",
        "--rate",
        "5",
        *WORK[:2],
        "--prompt",
        "40",
        "--output",
        "8",
        "--prices",
        str(prices),
        "--power-table",
        str(power),
    )
    assert cmp["sides"][0]["price_per_replica_hour"] == pytest.approx(2.0)


def test_heads_are_padded_when_tp_does_not_divide_them(tiny: str) -> None:
    """tp=3 on 8 heads runs 9 (three per rank), as transformers-neuronx / NxD Inference pad them: the same
    step times, weights and KV cache as a model that really has 9 heads of the same size."""
    from trnsim.compiler.tensor_parallel import local_heads, shard_config
    from trnsim.models import model_facts
    from trnsim.models.config import resolve_config
    from trnsim.serve.setup import served_model

    assert local_heads(64, 8, 24) == (3, 1)  # Llama-2-70B on inf2.48xlarge's 24 NeuronCores
    local = shard_config(resolve_config("llama-2-70b"), 24)
    assert (local.num_attention_heads, local.num_key_value_heads, local.head_dim) == (3, 1, 128)
    facts = model_facts("llama-2-70b")
    padded = served_model("llama-2-70b", 24)
    extra = facts.n_layers * (2 * (72 - 64) + 2 * (24 - 8)) * 128 * facts.hidden_size * 2  # q,o and k,v heads
    assert padded.weight_bytes == facts.weight_bytes(2) + extra
    assert padded.kv_bytes_per_token == 2 * facts.n_layers * 24 * 128 * 2

    config = json.loads(Path(tiny).read_text())
    nine = Path(tiny).with_name("tiny9.json")
    wide = {"hidden_size": 288, "head_dim": 32}  # 288 = 9 x 32, a multiple of 8 and 9 heads (transformers checks)
    nine.write_text(json.dumps(config | wide | {"num_attention_heads": 9, "num_key_value_heads": 9}))
    eight = Path(tiny).with_name("tiny8.json")
    eight.write_text(json.dumps(config | wide))
    args = ["--hw", "inf2.48xlarge", "--tp", "3", "--rate", "5", *WORK]
    out8, out9 = run("serve", "--model", str(eight), *args), run("serve", "--model", str(nine), *args)
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert out8[key] == pytest.approx(out9[key], rel=1e-9)
    assert served_model(str(eight), 3).weight_bytes == served_model(str(nine), 3).weight_bytes


def test_serve_saves_a_benchmark_result(tiny: str, tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    args = ["--hw", "p5.48xlarge", "--tp", "1", "--rate", "5", "--burstiness", "0.5", *WORK]
    timeline = tmp_path / "serve_trace.json"
    out = run(
        "serve",
        "--model",
        tiny,
        *args,
        "--percentiles",
        "50,99.9",
        "--save-result",
        str(path),
        "--timeline",
        str(timeline),
    )
    names = {e["name"] for e in json.loads(timeline.read_text())["traceEvents"]}
    assert {"queued", "prefill", "decode", "batch", "queue depth", "KV cache used %"} <= names
    saved = json.loads(path.read_text())
    assert saved["schema"] == "trnsim.serve.result/1" and saved["burstiness"] == 0.5
    assert (saved["total_input_tokens"], saved["total_output_tokens"]) == (24 * 40, 24 * 8)
    assert set(saved["itl_ms"]) == {"mean", "std", "p50", "p99.9"} and saved["itl_ms"]["p50"] > 0
    assert saved["ttft_ms"]["p50"] == pytest.approx(out["ttft_ms"]["p50"], rel=1e-12)
    usd, usd_all = saved["usd_per_mtok_output"], saved["usd_per_mtok_input_output"]
    assert usd_all == pytest.approx(usd * 8 / (40 + 8), rel=1e-12)
    assert out["steady_state"]["requests"] == 24
    bad = CliRunner().invoke(app, ["serve", "--model", tiny, *args[:-6], "--burstiness", "0", *WORK])
    assert isinstance(bad.exception, TrnsimError) and "--burstiness" in str(bad.exception)

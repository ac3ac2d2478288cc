"""`trnsim plan --deployment FILE`: a fleet of instances each packed with several models, sized by power or
demand against the closed forms from the price and power tables; `trnsim report` shows the tenants side by
side."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.cost import load_power, load_prices, server_power
from trnsim.errors import TrnsimError


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two small Llama configs packed on one trn2.48xlarge (cores on different HBM stacks), private caches."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("plan_packing")
    models = []
    for name, hidden in (("narrow", 256), ("wide", 512)):
        config = {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": hidden,
            "intermediate_size": 4 * hidden,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "vocab_size": 1024,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
        }
        (root / f"{name}.json").write_text(json.dumps(config))
        models.append(str(root / f"{name}.json"))
    tenant = "concurrency = 8\nrequests = 24\nprompt = 40\noutput = 8\n"
    text = 'instance = "trn2.48xlarge"\nlnc = 1\n'
    text += f'[[tenant]]\nname = "chat"\nmodel = "{models[0]}"\ncores = "0-1"\n{tenant}'
    text += f'[[tenant]]\nname = "code"\nmodel = "{models[1]}"\ncores = "2-3"\n{tenant}'
    path = root / "packed.toml"
    path.write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.setattr(esc, "GRID_RATIO", {"batches": 1 << 30, "new_tokens": 1 << 30, "contexts": 1 << 30})
        reset_default_cache(None)
        yield path
        reset_default_cache(None)


def plan(path: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["plan", "--deployment", str(path), *args, "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_a_power_budget_buys_copies_of_the_packed_instance(packed: Path, tmp_path: Path) -> None:
    out = plan(packed, "--power", "1MW", "--cooling", "liquid")
    tenants = out["tenants"]
    per_instance = {n: t["tokens_per_s_per_instance"] for n, t in tenants.items()}
    assert set(per_instance) == {"chat", "code"} and all(v > 0 for v in per_instance.values())
    # the closed form: instances = floor(budget / PUE / server peak), from the tables
    peak = server_power("trn2.48xlarge").peak_w
    pue = load_power().cooling_for("liquid").pue.value
    instances = math.floor(1e6 / pue / peak)
    assert out["instances"] == instances and out["chips"] == 16 * instances
    assert out["tokens_per_s"] == pytest.approx(instances * sum(per_instance.values()))
    for name, t in tenants.items():
        assert t["fleet_tokens_per_s"] == pytest.approx(instances * per_instance[name])
        assert t["share_of_tokens"] == pytest.approx(per_instance[name] / sum(per_instance.values()))
        assert t["interference"] == "none" and t["where"] in ("cores 0-1", "cores 2-3")
    hourly = load_prices().instance("trn2.48xlarge").usd_per_hour
    assert out["instances_usd_per_year"] == pytest.approx(instances * hourly * 8760)
    # the wider model does more work per token on the same two cores: fewer tokens/s
    assert per_instance["code"] < per_instance["chat"]

    # `trnsim report` reads it: the plan, and the tenants in columns side by side
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(out))
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(saved), "-o", str(html)])
    assert result.exit_code == 0, result.output
    page = html.read_text()
    assert "tenants of each trn2.48xlarge, side by side" in page and "<th>Chat</th>" in page and "<th>Code</th>" in page


def test_a_demand_is_served_in_the_files_mix(packed: Path) -> None:
    out = plan(packed, "--tokens-per-s", "1e6")
    per_instance = sum(t["tokens_per_s_per_instance"] for t in out["tenants"].values())
    assert out["instances"] == math.ceil(1e6 / per_instance)
    assert sum(t["fleet_tokens_per_s"] for t in out["tenants"].values()) == pytest.approx(1e6)


def test_plan_needs_a_model_or_a_deployment(packed: Path) -> None:
    result = CliRunner().invoke(app, ["plan", "--power", "1MW"])
    assert result.exit_code == 2 and "Missing option '--model'" in result.output
    result = CliRunner().invoke(app, ["plan", "--deployment", str(packed)])
    assert isinstance(result.exception, TrnsimError) and "exactly one of --power" in str(result.exception)

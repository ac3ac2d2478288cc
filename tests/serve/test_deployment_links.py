"""Tenants whose tensor-parallel collectives cross the same chip share its NeuronLink bandwidth; tenants on
disjoint chips do not interfere. Measured in each tenant's serving latencies (`serve --deployment --json`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.hw.presets import get_spec
from trnsim.serve.deployment import parse_deployment
from trnsim.serve.deployment_links import chips_of, link_factor, link_neighbours, with_link_bandwidth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A two-layer Llama config, private kernel and step-latency caches, a 2-point grid per axis."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("deployment_links")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 384,
        "intermediate_size": 768,
        "num_hidden_layers": 2,
        "num_attention_heads": 12,
        "num_key_value_heads": 12,
        "vocab_size": 768,
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


def deployment(model: str, a: str, b: str) -> dict[str, Any]:
    tenant = {"model": model, "concurrency": 8, "requests": 24, "prompt": "40", "output": "8"}
    return {
        "instance": "trn2.48xlarge",
        "lnc": 2,  # 4 NeuronCores per chip; a NeuronCore is a whole HBM stack, so only links can be shared
        "tenant": [tenant | {"name": "chat", "cores": a}, tenant | {"name": "batch", "cores": b}],
    }


def serve(tmp_path: Path, data: dict[str, Any]) -> dict[str, Any]:
    lines = [f'instance = "{data["instance"]}"', f"lnc = {data['lnc']}"]
    for t in data["tenant"]:
        lines.append("[[tenant]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in t.items()]
    path = tmp_path / "deploy.toml"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["serve", "--deployment", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout)["tenants"])


def test_which_tenants_share_links() -> None:
    # LNC=2 on trn2: NeuronCores 0-3 on chip 0, 4-7 on chip 1, ...
    dep = parse_deployment(deployment("llama-3.1-8b", "0-5", "6-11"))
    chat, batch = dep.tenants
    assert chips_of(dep, chat) == {0, 1} and chips_of(dep, batch) == {1, 2}
    assert link_neighbours(dep, chat) == {"batch": frozenset({1})}
    # one neighbour busy on the wire a share u of the time: the closed form 1 / (1 + u)
    assert link_factor(dep, chat, {"batch": 0.25}) == (pytest.approx(1 / 1.25), ["batch"])
    apart = parse_deployment(deployment("llama-3.1-8b", "0-5", "8-13"))
    assert all(link_neighbours(apart, t) == {} for t in apart.tenants)
    # tp=4 fits one chip, so the estimate prices "2-5" on one chip (ranks packed) though the range straddles two
    straddle = parse_deployment(deployment("llama-3.1-8b", "2-5", "6-13"))
    assert chips_of(straddle, straddle.tenants[0]) == {0, 1}
    assert all(link_neighbours(straddle, t) == {} for t in straddle.tenants)
    one_chip = parse_deployment(deployment("llama-3.1-8b", "0-3", "4-5"))  # on one chip each: no links used
    assert all(link_factor(one_chip, t, {"chat": 1.0, "batch": 1.0}) == (1.0, []) for t in one_chip.tenants)


def test_link_bandwidth_scaling_touches_only_the_instance_links() -> None:
    spec = get_spec("trn2")
    half = with_link_bandwidth(spec, "trn2-ultraserver", 0.5)
    us, base = half.instance("trn2-ultraserver"), spec.instance("trn2-ultraserver")
    assert us.link_bytes_per_ns == base.link_bytes_per_ns / 2
    assert us.inter_node_link_bytes_per_ns == base.inter_node_link_bytes_per_ns / 2
    assert half.instance("trn2.48xlarge") == spec.instance("trn2.48xlarge")
    free = with_link_bandwidth(spec, "trn2.48xlarge", math.inf).instance("trn2.48xlarge")
    assert free.link_bytes_per_ns == math.inf and free.inter_node_link_bytes_per_ns == 0.0  # unset stays unset


def test_shared_links_slow_both_tenants_and_disjoint_chips_do_not(tiny: str, tmp_path: Path) -> None:
    shared = serve(tmp_path, deployment(tiny, "0-5", "6-11"))  # both span chip 1
    apart = serve(tmp_path, deployment(tiny, "0-5", "8-13"))  # chips {0,1} and {2,3}
    for name, other in (("chat", "batch"), ("batch", "chat")):
        a, s = apart[name], shared[name]
        assert a["link_neighbours"] == [] and a["link_bandwidth_factor"] == 1.0
        assert a["tpot_ms"] == a["tpot_ms_alone"] and a["ttft_ms"]["p50"] > 0
        assert s["hbm_stack_neighbours"] == [] and s["link_neighbours"] == [other]
        # the neighbour's collectives occupy its links part of the time; the closed form of the sharing
        u = s_other = shared[other]["link_busy_alone"]
        assert 0 < s_other < shared[other]["utilization_alone"]
        assert s["link_bandwidth_factor"] == pytest.approx(1 / (1 + u))
        # ... and it shows in the tenant's own latencies: every decode step waits on its all-reduces
        assert s["tpot_ms"]["p50"] > s["tpot_ms_alone"]["p50"]
        assert s["ttft_ms"]["p50"] >= s["ttft_ms_alone"]["p50"]
        assert s["tpot_ms_alone"] == a["tpot_ms_alone"]  # alone, the placement is all that differs: same chips count

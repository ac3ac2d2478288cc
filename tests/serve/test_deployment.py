"""`trnsim serve --deployment FILE`: tenants on one instance's NeuronCores, each with its serve metrics;
interference only between tenants that share an HBM stack; bad partitions are one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.errors import TrnsimError
from trnsim.hw.presets import get_spec
from trnsim.serve.deployment import bandwidth_factor, parse_deployment


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A two-layer Llama config, private kernel and step-latency caches, a 2-point grid per axis."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("deployment")
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


def toml(model: str, a: str, b: str, lnc: int = 1, extra: str = "") -> str:
    tenant = 'name = "{n}"\nmodel = "{m}"\ncores = "{c}"\nconcurrency = 8\nrequests = 24\nprompt = 40\noutput = 8\n'
    return (
        f'instance = "trn2.48xlarge"\nlnc = {lnc}\n'
        + f"[[tenant]]\n{tenant.format(n='chat', m=model, c=a)}{extra}"
        + f"[[tenant]]\n{tenant.format(n='batch', m=model, c=b)}"
    )


def serve(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "deploy.toml"
    path.write_text(text)
    return CliRunner().invoke(app, ["serve", "--deployment", str(path), "--json"])


def test_tenants_interfere_only_through_a_shared_hbm_stack(tiny: str, tmp_path: Path) -> None:
    # trn2 at LNC=1: stacks hold cores (0,1), (2,3), ...; "0-2" and "3-5" share the stack of cores 2 and 3
    shared = serve(tmp_path, toml(tiny, "0-2", "3-5"))
    apart = serve(tmp_path, toml(tiny, "0-1", "2-3"))
    assert shared.exit_code == 0 and apart.exit_code == 0, (shared.output, apart.output)
    s, a = json.loads(shared.stdout)["tenants"], json.loads(apart.stdout)["tenants"]
    for name in ("chat", "batch"):
        assert a[name]["hbm_stack_neighbours"] == [] and a[name]["hbm_bandwidth_factor"] == 1.0
        assert a[name]["tpot_ms"] == a[name]["tpot_ms_alone"]
        assert s[name]["hbm_stack_neighbours"] == ["batch" if name == "chat" else "chat"]
    # the factor is the closed form: one core each on the shared stack, the neighbour busy u of the time
    spec = get_spec("trn2")
    d = spec.core.dma.queues * spec.core.dma.queue_bytes_per_ns
    stack = spec.chip.hbm_bytes_per_ns / 4
    for name, other in (("chat", "batch"), ("batch", "chat")):
        u = s[other]["utilization_alone"]
        assert s[name]["hbm_bandwidth_factor"] == pytest.approx(min(d, stack / (1 + u)) / min(d, stack))
        # closed loop keeps the neighbour busy (u ~ 1): 2 x 368 GB/s wanted from a 725 GB/s stack
        assert u > 0.97 and s[name]["hbm_bandwidth_factor"] < 1
        assert s[name]["tpot_ms"]["p50"] > s[name]["tpot_ms_alone"]["p50"]


def test_bad_partitions_are_one_line_and_exit_2(tiny: str, tmp_path: Path) -> None:
    cases = [
        (toml(tiny, "0-3", "3-4"), "both ask for NeuronCore 3"),
        (toml(tiny, "0-3", "120-130"), "instance has 128 at LNC=1"),
        (toml(tiny, "0", "1", extra="lnc = 2\n"), "compiled for LNC=2 but the instance runs at LNC=1"),
        (toml(tiny, "0", "1", lnc=3), "LNC must be 1 or 2"),
        ('instance = "trn2.48xlarge"\n', "at least one [[tenant]]"),
    ]
    for text, message in cases:
        result = serve(tmp_path, text)  # a TrnsimError: the `trnsim` entry point prints it as one line, exit 2
        assert isinstance(result.exception, TrnsimError), result.exception
        assert message in str(result.exception) and "\n" not in str(result.exception)


def test_the_partition_rules_without_the_cli() -> None:
    dep = parse_deployment(
        {
            "instance": "trn2.48xlarge",
            "lnc": 2,
            "tenant": [
                {"name": "a", "model": "llama-3.1-8b", "cores": "0-1", "rate": 1.0},
                {"name": "b", "model": "llama-3.1-8b", "cores": "2", "rate": 1.0},
            ],
        }
    )
    # at LNC=2 a NeuronCore is a whole stack: tenants never share one
    for t in dep.tenants:
        assert bandwidth_factor(dep, t, {"a": 1.0, "b": 1.0}) == (1.0, [])

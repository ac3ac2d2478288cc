"""`trnsim serve --tp T --ep E`: a mixture-of-experts replica of E expert-parallel groups of T tensor-parallel ranks.
Checked on a tiny Qwen3-MoE config against closed forms and against the tp-only parts: a replica step is its busiest
group's (tp-sharded attention of 1/E of the sequences), each MoE layer adds the dispatch/combine all-to-alls of
1/T of the rows and the tp all-gather / reduce-scatter of the busiest group's rows (in the experts' part), and the
replica stores the tp-sharded non-expert weights E times and the experts once."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import transformers
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.compiler.expert_parallel_comm import ep_layout
from trnsim.compiler.expert_parallel_routing import sampled_routing
from trnsim.hw.presets import get_spec
from trnsim.serve.expert_parallel_setup import ep_served_model
from trnsim.serve.setup import served_model
from trnsim.serve.step_components import StepComponents
from trnsim.serve.step_components_ep import EPStepComponents

HIDDEN, HEADS, KV, HEAD_DIM, EXPERTS, TOP_K, WIDTH, LAYERS = 256, 8, 4, 32, 8, 2, 128, 2


@pytest.fixture(autouse=True, scope="module")
def small_grids(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Private step-latency and kernel caches and a 2-point grid per axis, to stay fast."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("serve_tp_ep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.setattr(esc, "GRID_RATIO", {"batches": 1 << 30, "new_tokens": 1 << 30, "contexts": 1 << 30})
        reset_default_cache(None)
        yield
        reset_default_cache(None)


@pytest.fixture(scope="module")
def tiny_moe(tmp_path_factory: pytest.TempPathFactory) -> str:
    config = transformers.Qwen3MoeConfig(
        hidden_size=HIDDEN,
        num_attention_heads=HEADS,
        num_key_value_heads=KV,
        head_dim=HEAD_DIM,
        intermediate_size=512,
        moe_intermediate_size=WIDTH,
        num_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        num_hidden_layers=LAYERS,
        vocab_size=1024,
        max_position_embeddings=4096,
    )
    folder = tmp_path_factory.mktemp("tiny_moe")
    config.save_pretrained(folder)
    return str(Path(folder) / "config.json")


def test_replica_stores_tp_sharded_shared_weights_per_group_and_experts_once(tiny_moe: str) -> None:
    tp, ep = 2, 4
    whole = served_model(tiny_moe, tp)  # the model at tp=2 (its heads split evenly: no padding here)
    experts = LAYERS * EXPERTS * 3 * HIDDEN * WIDTH * 2  # gate, up, down of every expert, bf16
    replica, rank = ep_served_model(tiny_moe, ep, 2, None, None, tp)
    assert replica.weight_bytes == pytest.approx(ep * (whole.weight_bytes - experts) + experts)
    assert rank == pytest.approx((whole.weight_bytes - experts) / tp + experts / (ep * tp))
    assert replica.kv_bytes_per_token == 2 * LAYERS * KV * HEAD_DIM * 2  # 2 KV heads on each of a group's 2 ranks


def test_a_replica_step_is_its_busiest_groups_tensor_parallel_step(tiny_moe: str, rng: np.random.Generator) -> None:
    tp, ep = 2, int(rng.choice([2, 4]))
    replica = EPStepComponents(tiny_moe, "trn2", ep, None, "bfloat16", tp=tp)
    group = StepComponents(tiny_moe, "trn2", tp, None, "bfloat16")
    batch, prefill, context = int(rng.integers(1, 64)), int(rng.integers(0, 2048)), int(rng.integers(16, 4096))
    b = math.ceil(batch / ep)
    replica._split = {1: (0.0, 0.0), 4096: (0.0, 0.0)}  # no dense part: attention, logits and overhead only
    group._dense[b + prefill] = 0.0
    assert replica.step_time_s(batch, batch + prefill, context) == pytest.approx(
        group.step_time_s(b, b + prefill, context), rel=1e-12
    )


def test_the_experts_part_holds_the_layouts_collectives(tiny_moe: str, rng: np.random.Generator) -> None:
    tp, ep, n = 2, 2, int(rng.choice([32, 64, 128]))  # tokens on every group
    parts = EPStepComponents(tiny_moe, "trn2", ep, None, "bfloat16", tp=tp)
    profile = parts.rank_profile(n)
    routing = sampled_routing(ep * n, EXPERTS, TOP_K, ep)
    busiest = max(routing.rank_rows)
    assert parts.dispatch_bytes[n] == math.ceil(max(n * TOP_K, busiest) / tp) * HIDDEN * 2
    layout = ep_layout(get_spec("trn2"), tp, ep)
    moves = {r.node: r for r in profile.records if r.node.startswith("ep_")}
    assert sorted(moves) == ["ep_combine", "ep_dispatch", "ep_rows_gather", "ep_rows_scatter"]
    assert moves["ep_dispatch"].device_us == pytest.approx(layout.dispatch_us(parts.dispatch_bytes[n]), rel=1e-12)
    assert moves["ep_rows_gather"].device_us == pytest.approx(layout.gather_us(busiest * HIDDEN * 2), rel=1e-12)
    grouped = [r for r in profile.records if r.kernel.startswith("grouped_matmul")]
    in_experts = sum(r.total_device_us for r in [*moves.values(), *grouped])
    assert parts._parts_at(n)[1] == pytest.approx(1e-6 * in_experts, rel=1e-9)


def test_serve_cli_runs_tensor_parallel_expert_groups(tiny_moe: str) -> None:
    args = ["serve", "--model", tiny_moe, "--hw", "trn2.48xlarge", "--tp", "2", "--ep", "2"]
    args += ["--requests", "12", "--prompt", "64", "--output", "8", "--rate", "20", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads(result.stdout)
    assert (out["tp"], out["ep"], out["requests"]) == (2, 2, 12)
    replica, _ = ep_served_model(tiny_moe, 2, 2, None, None, 2)
    assert out["weight_bytes"] == pytest.approx(replica.weight_bytes)

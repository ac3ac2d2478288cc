"""`trnsim serve --ep N`: a mixture-of-experts replica of N expert-parallel ranks (attention data-parallel, routed
experts split, dispatch/combine all-to-alls). Checked on a tiny Qwen3-MoE config against closed forms: a
replica step is its busiest rank's (1/N of the sequences, the step's prompt tokens) with the experts' work of
the whole group's tokens; each MoE layer adds two all-to-alls of the
bytes the routing sends (on one trn2 chip: every byte read and written through HBM); the replica stores the
non-expert weights N times and the experts once. Bad combinations are refused (--tp with --ep:
test_serve_tp_ep.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transformers
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.compiler.expert_parallel_routing import sampled_routing
from trnsim.hw.presets import get_spec
from trnsim.serve.errors import ServeError
from trnsim.serve.expert_parallel_setup import ep_served_model
from trnsim.serve.setup import served_model
from trnsim.serve.step_components import StepComponents
from trnsim.serve.step_components_ep import EPStepComponents

HIDDEN, HEADS, KV, HEAD_DIM, EXPERTS, TOP_K, WIDTH, LAYERS = 256, 8, 4, 32, 8, 2, 128, 2


@pytest.fixture(autouse=True, scope="module")
def small_grids(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Private step-latency and kernel caches and a 2-point grid per axis, to stay fast."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("serve_ep")
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
        vocab_size=512,
        max_position_embeddings=4096,
    )
    folder = tmp_path_factory.mktemp("tiny_moe")
    config.save_pretrained(folder)
    return str(Path(folder) / "config.json")


def test_a_replica_step_is_its_busiest_ranks_step(tiny_moe: str, rng: np.random.Generator) -> None:
    """Attention, logits and overhead: one rank's at ceil(B / ep) sequences holding the step's prompt tokens."""
    ep = int(rng.choice([2, 4]))
    replica = EPStepComponents(tiny_moe, "trn2", ep, None, "bfloat16")
    rank = StepComponents(tiny_moe, "trn2", 1, None, "bfloat16")
    batch, prefill, context = int(rng.integers(1, 64)), int(rng.integers(0, 2048)), int(rng.integers(16, 4096))
    tokens = batch + prefill
    b = math.ceil(batch / ep)
    replica._split = {1: (0.0, 0.0), 4096: (0.0, 0.0)}  # no dense part: attention, logits and overhead only
    rank._dense[b + prefill] = 0.0
    assert replica.step_time_s(batch, tokens, context) == pytest.approx(
        rank.step_time_s(b, b + prefill, context), rel=1e-12
    )


def test_dense_part_is_the_ranks_tokens_plus_the_groups_experts(tiny_moe: str, rng: np.random.Generator) -> None:
    """rank(n) at the busiest rank's n tokens and experts(N / ep), each linear between the estimated points."""
    ep = 4
    replica = EPStepComponents(tiny_moe, "trn2", ep, None, "bfloat16")
    lo, hi = 16, 1024
    (r_lo, e_lo), (r_hi, e_hi) = rng.uniform(1e-4, 1e-2, 2), rng.uniform(1e-4, 1e-2, 2)
    replica._split = {lo: (r_lo, e_lo), hi: (r_hi, e_hi)}
    batch, prefill = 8, int(rng.integers(100, 900))
    tokens = batch + prefill
    n, per_rank = 2 + prefill, tokens / ep  # busiest rank: ceil(8 / 4) sequences and the prompt tokens
    want = r_lo + (r_hi - r_lo) * (n - lo) / (hi - lo) + e_lo + (e_hi - e_lo) * (per_rank - lo) / (hi - lo)
    replica._split[1] = (0.0, 0.0)
    with_dense = replica.step_time_s(batch, tokens, 64)
    replica._split = {1: (0.0, 0.0), lo: (0.0, 0.0), hi: (0.0, 0.0)}
    assert with_dense - replica.step_time_s(batch, tokens, 64) == pytest.approx(want, rel=1e-9)


def test_each_moe_layer_adds_dispatch_and_combine_all_to_alls(tiny_moe: str, rng: np.random.Generator) -> None:
    ep, n = 2, int(rng.choice([32, 64, 128]))  # tokens on every rank
    parts = EPStepComponents(tiny_moe, "trn2", ep, None, "bfloat16")
    profile = parts.rank_profile(n)
    routing = sampled_routing(ep * n, EXPERTS, TOP_K, ep)
    rows = max(n * TOP_K, max(routing.rank_rows))  # the larger of what the busiest rank sends and receives
    nbytes = rows * HIDDEN * 2
    assert parts.dispatch_bytes[n] == nbytes
    spec = get_spec("trn2")
    # both ranks on one chip: each swaps half its buffer with the other through HBM, read and written
    want_us = 2 * (ep - 1) * nbytes / spec.chip.hbm_bytes_per_ns / 1000
    moves = [r for r in profile.records if r.kernel == "all_to_all"]
    assert sorted(r.node for r in moves) == ["ep_combine", "ep_dispatch"]
    for r in moves:
        assert r.count == LAYERS and r.device_us == pytest.approx(want_us, rel=1e-12)
    assert parts._parts_at(n)[1] >= 1e-6 * sum(r.device_us * r.count for r in moves)  # in the experts' part


def test_replica_stores_shared_weights_per_rank_and_experts_once(tiny_moe: str) -> None:
    ep = 4
    whole = served_model(tiny_moe, 1)
    experts = LAYERS * EXPERTS * 3 * HIDDEN * WIDTH * 2  # gate, up, down of every expert, bf16
    replica, rank = ep_served_model(tiny_moe, ep, 2, None, None)
    assert replica.weight_bytes == pytest.approx(ep * (whole.weight_bytes - experts) + experts)
    assert rank == pytest.approx(whole.weight_bytes - experts + experts / ep)
    assert replica.kv_bytes_per_token == 2 * LAYERS * KV * HEAD_DIM * 2  # every rank keeps all KV heads


def _serve(model: str, *extra: str) -> Any:
    args = ["serve", "--model", model, "--hw", "trn2.48xlarge", *extra]
    args += ["--requests", "12", "--prompt", "64", "--output", "8", "--rate", "20", "--json"]
    return CliRunner().invoke(app, args)


def test_serve_cli_runs_an_expert_parallel_replica(tiny_moe: str) -> None:
    result = _serve(tiny_moe, "--tp", "1", "--ep", "2")
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads(result.stdout)
    assert out["ep"] == 2 and out["requests"] == 12
    replica, _ = ep_served_model(tiny_moe, 2, 2, None, None)
    assert out["weight_bytes"] == pytest.approx(replica.weight_bytes)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tp", "1", "--ep", "2", "--pp", "2"], "does not combine with --pp"),
        (["--tp", "1", "--ep", "3"], "must divide the 8 routed experts"),
    ],
)
def test_serve_cli_refuses_what_ep_does_not_model(tiny_moe: str, extra: list[str], message: str) -> None:
    result = _serve(tiny_moe, *extra)
    assert result.exit_code != 0
    assert isinstance(result.exception, ServeError) and message in str(result.exception)


def test_ep_of_a_dense_model_is_refused() -> None:
    with pytest.raises(ServeError, match="no routed experts"):
        ep_served_model("llama-3.1-8b", 2, 2, None, None)

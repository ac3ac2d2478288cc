"""`trnsim estimate --ep N --json` on a small mixture-of-experts config.json: the JSON is the library's
expert-parallel estimate with the routing's numbers, --ep with --tp > 1 runs tensor-parallel groups, and --ep with
--training is the project's CompileError."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from trnsim.cli import app
from trnsim.compiler.expert_parallel import ep_estimate
from trnsim.errors import CompileError
from trnsim.models import build_model

CONFIG = {
    "model_type": "qwen3_moe",
    "architectures": ["Qwen3MoeForCausalLM"],
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "intermediate_size": 512,
    "moe_intermediate_size": 128,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 512,
    "num_hidden_layers": 2,
    "tie_word_embeddings": False,
}


def test_cli_ep_matches_the_library(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    args = ["estimate", "--model", str(path), "--batch", "1", "--prompt", "64", "--ep", "4", "--routing-skew", "0.5"]
    result = CliRunner().invoke(app, [*args, "--exact", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{") :])
    ids = torch.zeros(1, 64, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = ep_estimate(build_model(path), (ids,), ep=4, skew=0.5, extrapolate=False)
    assert out["device_time_us"] == pytest.approx(lib.profile.device_time_us, rel=1e-9)
    e = out["expert_parallel"]
    assert (e["ep"], e["experts_per_rank"], e["group_tokens"]) == (4, 2, 256)
    assert e["busiest_rank_rows"] == max(lib.routing.rank_rows) and e["imbalance"] >= 1.0
    assert e["mean_rank_rows"] == pytest.approx(256 * 2 / 4)


def test_cli_ep_with_tp_runs_tensor_parallel_groups(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    args = ["estimate", "--model", str(path), "--prompt", "64", "--ep", "2", "--tp", "2", "--exact", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    e = json.loads(result.stdout[result.stdout.index("{") :])["expert_parallel"]
    assert (e["ep"], e["tp"], e["ranks"], e["group_tokens"]) == (2, 2, 4, 128)
    assert e["gather_bytes"] == e["busiest_rank_rows"] * CONFIG["hidden_size"] * 2


def test_cli_ep_with_training_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    result = CliRunner().invoke(app, ["estimate", "--model", str(path), "--ep", "2", "--training"])
    assert isinstance(result.exception, CompileError) and "inference" in str(result.exception)

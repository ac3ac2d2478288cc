"""`trnsim estimate --decode --context C --dtype fp8 --json` on a small config.json: the JSON is the library's
decode estimate, and a format the target lacks is the project's CompileError."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from typer.testing import CliRunner

import trnsim
from trnsim.cli import app
from trnsim.errors import CompileError
from trnsim.models import build_model

CONFIG = {
    "model_type": "llama",
    "hidden_size": 512,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 128,
    "intermediate_size": 1024,
    "vocab_size": 2048,
    "num_hidden_layers": 2,
    "tie_word_embeddings": False,
}


def test_cli_decode_fp8_matches_the_library(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    args = [
        "estimate",
        "--model",
        str(path),
        "--decode",
        "--batch",
        "2",
        "--context",
        "512",
        "--dtype",
        "fp8",
        "--exact",
    ]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{") :])
    ids = torch.zeros(2, 1, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = trnsim.estimate(build_model(str(path), device="meta"), (ids,), decode=True, context=512, dtype="fp8")
    assert out["tokens"] == 2
    assert abs(out["device_time_us"] - prof.device_time_us) <= 1e-6 * prof.device_time_us


def test_cli_fp4_on_trainium_is_a_compile_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    result = CliRunner().invoke(app, ["estimate", "--model", str(path), "--prompt", "8", "--dtype", "fp4"])
    # the console entry point prints the project's errors as one line (trnsim.cli main); the app raises them
    assert isinstance(result.exception, CompileError)
    assert "NeuronCores have no fp4 matmul" in str(result.exception)

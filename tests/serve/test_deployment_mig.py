"""`trnsim serve --deployment` on a p5.48xlarge: tenants on MIG slices of one H100 and on whole GPUs; each
slice serves on its share of SMs, bandwidth and memory; slices that do not fit the GPU are one-line errors."""

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
from trnsim.gpu.presets import load_gpu_preset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small Llama config, a private step-latency cache, a 2-point grid per axis."""
    root = tmp_path_factory.mktemp("deployment_mig")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 4,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    }
    path = root / "small.json"
    path.write_text(json.dumps(config))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.setattr(esc, "GRID_RATIO", {"batches": 1 << 30, "new_tokens": 1 << 30, "contexts": 1 << 30})
        yield str(path)


def write(tmp_path: Path, tenants: list[dict[str, Any]], instance: str = "p5.48xlarge") -> Path:
    lines = [f'instance = "{instance}"']
    for t in tenants:
        lines.append("[[tenant]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in t.items()]
    path = tmp_path / "deploy.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def tenant(name: str, model: str, **where: Any) -> dict[str, Any]:
    return {"name": name, "model": model, "concurrency": 4, "requests": 16, "prompt": "64", "output": "16"} | where


def test_mig_slices_serve_on_their_share_of_the_gpu(tiny: str, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            tenant("small", tiny, gpu=0, mig="3g.40gb"),
            tenant("large", tiny, gpu=0, mig="4g.40gb"),
            tenant("whole", tiny, gpus="1"),
        ],
    )
    result = CliRunner().invoke(app, ["serve", "--deployment", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["lnc"] is None
    t = out["tenants"]
    h100 = load_gpu_preset("h100")
    assert (t["small"]["sm_count"], t["large"]["sm_count"], t["whole"]["sm_count"]) == (56, 75, 132)
    assert t["small"]["hbm_tb_per_s"] == pytest.approx(h100.memory.hbm_tb_per_s / 2)
    assert (t["small"]["hbm_gib"], t["whole"]["hbm_gib"]) == (40.0, 80.0)
    assert {t["small"]["mig_first_memory_slice"], t["large"]["mig_first_memory_slice"]} == {0, 4}
    # fewer SMs and less bandwidth: every step slower, so the same traffic sees longer token times
    assert t["small"]["tpot_ms"]["p50"] > t["large"]["tpot_ms"]["p50"] > t["whole"]["tpot_ms"]["p50"]
    # each pays its compute share of one of the instance's eight GPUs
    assert t["small"]["instance_share"] == pytest.approx(3 / 7 / 8) and t["whole"]["instance_share"] == 1 / 8
    # `trnsim report` shows the tenants side by side
    saved, html = tmp_path / "mig.json", tmp_path / "mig.html"
    saved.write_text(result.stdout)
    assert CliRunner().invoke(app, ["report", str(saved), "-o", str(html)]).exit_code == 0
    page = html.read_text()
    assert "tenants of each p5.48xlarge, side by side" in page and "<th>Small</th>" in page and "3g.40gb" in page


def test_slices_that_do_not_fit_and_other_bad_files_are_one_line(tiny: str, tmp_path: Path) -> None:
    cases = [
        ([tenant("a", tiny, gpu=0, mig="4g.40gb"), tenant("b", tiny, gpu=0, mig="4g.40gb")], "do not fit one h100"),
        ([tenant("a", tiny, gpu=0, mig="3g.40gb"), tenant("b", tiny, gpus="0-1")], "GPU 0 is given to"),
        ([tenant("a", tiny, gpu=0, mig="3g.71gb")], "h100 has no MIG profile '3g.71gb'"),
        ([tenant("a", tiny, gpus="0-1", mig="1g.10gb")], "a MIG slice lives on one GPU"),
        ([tenant("a", tiny, gpus="7-8")], "not within the instance's 0-7"),
        ([tenant("a", tiny, cores="0-3")], "cores is for Trainium NeuronCores"),
    ]
    for tenants, message in cases:
        result = CliRunner().invoke(app, ["serve", "--deployment", str(write(tmp_path, tenants)), "--json"])
        assert isinstance(result.exception, TrnsimError), result.output
        assert message in str(result.exception) and "\n" not in str(result.exception)
    # B200 has no MIG model here: said so, not ignored
    b200 = write(tmp_path, [tenant("a", tiny, gpu=0, mig="1g.23gb")], instance="p6-b200.48xlarge")
    result = CliRunner().invoke(app, ["serve", "--deployment", str(b200), "--json"])
    assert isinstance(result.exception, TrnsimError) and "MIG is modelled on h100, h200" in str(result.exception)

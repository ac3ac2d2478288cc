"""`trnsim gpu measure`: the no-GPU error, the predicted-only output, and the timing procedure on CPU."""

from __future__ import annotations

import json
import statistics
import sys

import pytest
import torch
from typer.testing import CliRunner

from trnsim.cli import app, main
from trnsim.gpu import GpuError, GpuModel, gpu_step_time_s
from trnsim.gpu.measure import gpu_preset_for_device, measure_steps
from trnsim.models import model_facts

NO_CUDA = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA GPU is present: the command measures instead of failing")
def test_without_cuda_the_command_fails_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["trnsim", "gpu", "measure", "--model", "gpt2"])
    with pytest.raises(SystemExit) as exited:
        main()  # the installed `trnsim` entry point, with its one-line error handling
    assert exited.value.code == 2
    out = capsys.readouterr()
    first = out.err.splitlines()[0]
    assert first.startswith("error: no CUDA GPU is present")
    assert "--predicted-only" in first and "gpu_step_time_s" in first
    assert "Traceback" not in out.err and out.out == ""


def test_predicted_only_json_matches_the_step_model() -> None:
    result = CliRunner().invoke(
        app, ["gpu", "measure", "--model", "gpt2", "--batch", "2", "--prompt", "64", "--iters", "5", "--warmup", "2",
                  "--gpu", "h200", "--predicted-only", "--json"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    facts, h200 = model_facts("gpt2"), GpuModel.from_preset("h200")
    prefill, decode = data["steps"]
    assert (data["gpu"], data["device"], data["layers"]) == ("h200", "", 12)
    assert prefill["measured_ms"] is None and prefill["ratio"] is None
    assert prefill["predicted_ms"] == pytest.approx(1e3 * gpu_step_time_s(facts, h200, 1, 2, 64, 0, logits="all"))
    # Timed decode steps run on contexts prompt + warmup ... prompt + warmup + iters - 1.
    contexts = range(66, 71)
    assert decode["context"] == pytest.approx(statistics.fmean(contexts))
    expect = statistics.fmean(gpu_step_time_s(facts, h200, 1, 2, 1, c) for c in contexts)
    assert decode["predicted_ms"] == pytest.approx(1e3 * expect)


def test_predicted_only_table(tmp_path) -> None:
    result = CliRunner().invoke(app, ["gpu", "measure", "--model", "bert-base-uncased", "--predicted-only"])
    assert result.exit_code == 0, result.output
    assert "prefill" in result.stdout and "decode" not in result.stdout.split("Measured:")[0]


def test_timing_procedure_runs_on_cpu() -> None:
    """The same prefill + growing-cache decode loop, wall-clocked on CPU with a 1-layer GPT-2."""
    result = measure_steps("gpt2", batch=2, prompt=4, iters=2, warmup=1, layers=1, device="cpu", gpu="h100")
    assert result.layers == 1 and result.device.startswith("cpu")
    facts = model_facts("gpt2")
    from dataclasses import replace

    one = replace(facts, n_layers=1)
    for step in result.steps:
        assert step.measured_ms is not None and step.measured_ms > 0
        assert step.ratio == pytest.approx(step.measured_ms / step.predicted_ms)
    assert result.steps[0].predicted_ms == pytest.approx(
        1e3 * gpu_step_time_s(one, GpuModel.from_preset("h100"), 1, 2, 4, 0, logits="all")
    )


def test_device_names_map_to_presets() -> None:
    assert gpu_preset_for_device("NVIDIA H100 80GB HBM3") == "h100"
    assert gpu_preset_for_device("NVIDIA H200") == "h200"
    assert gpu_preset_for_device("NVIDIA B200") == "b200"
    with pytest.raises(GpuError, match="no GPU preset matches the device 'NVIDIA A100-SXM4-80GB'; pass --gpu"):
        gpu_preset_for_device("NVIDIA A100-SXM4-80GB")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--batch", "0"], "--batch must be >= 1"),
        (["--layers", "0"], "--layers must be >= 1"),
        (["--gpu", "a100"], "unknown GPU preset 'a100'"),
    ],
)
def test_bad_options(args: list[str], words: str) -> None:
    result = CliRunner().invoke(app, ["gpu", "measure", "--model", "gpt2", "--predicted-only", *args])
    assert result.exit_code != 0
    assert words in str(result.exception)


def test_models_without_tokens_are_refused() -> None:
    with pytest.raises(GpuError, match="vit-base-patch16-224 takes no token ids"):
        measure_steps("vit-base-patch16-224", predicted_only=True)

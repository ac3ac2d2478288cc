"""Serving in another number format (`trnsim serve/compare --dtype fp8`, `--kv-dtype fp8`): the weight matmuls
priced in fp8 (faster compute-bound prefill on trn2 and H100), the weights stored in fp8 (KV capacity by the
closed form (HBM - weights) / KV bytes per block), a grid per format, and formats a target lacks refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.errors import TrnsimError
from trnsim.serve.estimate_step_cost import EstimatedStepCost
from trnsim.serve.model import DEFAULT_BLOCK_TOKENS, DEFAULT_RESERVE_FRACTION, kv_cache_blocks
from trnsim.serve.setup import GridBounds, serving_setup
from trnsim.serve.step_components import StepComponents

LAYERS, HIDDEN, HEADS, KV_HEADS, INTER, VOCAB = 2, 256, 8, 2, 1024, 1024
BOUNDS = GridBounds(max_batch=4, max_context=256, max_new_tokens=64)


def llama(path: Path, hidden: int, inter: int) -> str:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }
    path.write_text(json.dumps(config))
    return str(path)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Private kernel and step-latency caches; two points per grid axis (1 and the bound)."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("serve_dtype")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.setattr(esc, "GRID_RATIO", {"batches": 1 << 30, "new_tokens": 1 << 30, "contexts": 1 << 30})
        reset_default_cache(None)
        yield root
        reset_default_cache(None)


@pytest.fixture(scope="module")
def tiny(root: Path) -> str:
    return llama(root / "tiny.json", HIDDEN, INTER)


@pytest.mark.parametrize("target", ["trn2", "h100"])
def test_fp8_prefill_is_faster_than_bf16(root: Path, target: str) -> None:
    """A 1024-token prefill of a 1024-wide model is compute-bound: fp8 weight matmuls (TensorE's double-row fp8
    rate on trn2, the FP8 tensor-core peak on an H100) make the step strictly faster; decode steps never slower."""
    path = llama(root / "wide.json", 1024, 4096)
    bf16 = StepComponents(path, target, 1, None, "bfloat16")
    fp8 = StepComponents(path, target, 1, None, "bfloat16", "fp8")
    assert fp8.step_time_s(1, 1024, 1024) < bf16.step_time_s(1, 1024, 1024)
    assert fp8.dense_s(1024) < bf16.dense_s(1024)
    assert fp8.step_time_s(4, 4, 512) <= bf16.step_time_s(4, 4, 512) * (1 + 1e-9)


def expected_weight_bytes(linear_bytes: float) -> float:
    """Closed form for the tiny Llama: embedding and norms in bf16, every linear (q, k, v, o, MLP, LM head) at
    `linear_bytes` per parameter."""
    head_dim = HIDDEN // HEADS
    per_layer = 2 * HIDDEN * HIDDEN + 2 * HIDDEN * KV_HEADS * head_dim + 3 * HIDDEN * INTER
    linear = LAYERS * per_layer + VOCAB * HIDDEN
    other = VOCAB * HIDDEN + (2 * LAYERS + 1) * HIDDEN  # embedding table, RMSNorm scales
    return 2 * other + linear_bytes * linear


def expected_blocks(memory: float, weights: float, kv_bytes: int) -> int:
    kv_per_token = 2 * LAYERS * KV_HEADS * (HIDDEN // HEADS) * kv_bytes
    return int((memory * (1 - DEFAULT_RESERVE_FRACTION) - weights) // (kv_per_token * DEFAULT_BLOCK_TOKENS))


def test_fp8_weights_and_kv_leave_more_cache_and_use_their_own_grid(tiny: str) -> None:
    bf16 = serving_setup(tiny, "trn2.48xlarge", 1, bounds=BOUNDS)
    fp8 = serving_setup(tiny, "trn2.48xlarge", 1, weight_format="fp8", bounds=BOUNDS)
    kv8 = serving_setup(tiny, "trn2.48xlarge", 1, weight_format="fp8", kv_dtype="fp8", bounds=BOUNDS)
    memory = bf16.replica.device_memory_bytes
    assert fp8.replica.device_memory_bytes == kv8.replica.device_memory_bytes == memory
    assert bf16.model.weight_bytes == pytest.approx(expected_weight_bytes(2), rel=1e-12)
    assert fp8.model.weight_bytes == pytest.approx(expected_weight_bytes(1), rel=1e-12)
    assert kv8.model.kv_bytes_per_token * 2 == bf16.model.kv_bytes_per_token
    for setup, weights, kv in ((bf16, 2, 2), (fp8, 1, 2), (kv8, 1, 1)):
        blocks = expected_blocks(memory, expected_weight_bytes(weights), kv)
        assert kv_cache_blocks(setup.model, setup.replica) == blocks
    assert kv_cache_blocks(fp8.model, fp8.replica) > kv_cache_blocks(bf16.model, bf16.replica)

    # each format has its own step-latency table: the fp8 grid was computed, not read from the bf16 one
    grids = [s.replica.step_cost for s in (bf16, fp8, kv8)]
    assert all(isinstance(g, EstimatedStepCost) for g in grids)
    g16, g8, gkv8 = (g for g in grids if isinstance(g, EstimatedStepCost))
    assert g16.key != g8.key and "weights=fp8" in g8.key and gkv8.key == g8.key
    assert g8.evaluated > 0 and gkv8.evaluated == 0  # the KV format changes capacity only: the fp8 grid is reused
    b, n, c = 1, BOUNDS.max_new_tokens, 1.0
    assert g8.step_time_s(b, n, c) != g16.step_time_s(b, n, c)


@pytest.mark.parametrize(
    ("hw", "dtype", "expected"),
    [
        ("trn2.48xlarge", "fp4", "NeuronCores have no fp4 matmul"),
        ("trn2.48xlarge", "mxfp8", "has no MX matmul"),
        ("p5.48xlarge", "fp4", "no float4 tensor cores"),
        ("trn2.48xlarge", "int3", "unknown estimate dtype"),
    ],
)
def test_a_format_the_target_lacks_is_one_line(tiny: str, hw: str, dtype: str, expected: str) -> None:
    args = ["serve", "--model", tiny, "--hw", hw, "--tp", "1", "--rate", "1", "--requests", "4", "--dtype", dtype]
    result = CliRunner().invoke(app, [*args, "--prompt", "16", "--output", "4", "--json"])
    assert isinstance(result.exception, TrnsimError), result.output  # the CLI's main() exits 2 with its message
    message = str(result.exception)
    assert expected in message and "\n" not in message


def test_an_unknown_kv_dtype_is_one_line(tiny: str) -> None:
    with pytest.raises(TrnsimError, match="--kv-dtype 'int4' is not a KV-cache format; use one of"):
        serving_setup(tiny, "trn2.48xlarge", 1, kv_dtype="int4", bounds=BOUNDS)


def test_serve_and_compare_cli_take_dtype(tiny: str) -> None:
    work = ["--requests", "8", "--prompt", "32", "--output", "4", "--json"]
    base = ["--model", tiny, "--hw", "trn2.48xlarge", "--tp", "1", "--rate", "2", *work]
    out = CliRunner().invoke(app, ["serve", *base, "--dtype", "fp8", "--kv-dtype", "fp8"])
    assert out.exit_code == 0, (out.output, out.exception)
    data = json.loads(out.stdout)
    assert (data["dtype"], data["kv_dtype"]) == ("fp8", "fp8") and data["requests"] == 8
    assert data["weight_bytes"] == pytest.approx(expected_weight_bytes(1), rel=1e-12)
    assert data["kv_bytes_per_token"] == 2 * LAYERS * KV_HEADS * (HIDDEN // HEADS) * 1
    hw = ["--hw", "trn2.48xlarge:tp=1", "--hw", "p5.48xlarge:tp=1"]
    cmp = CliRunner().invoke(
        app,
        [
            "compare",
            "--model",
            tiny,
            *hw,
            "--slo-ttft-ms",
            "1000",
            "--rate",
            "2",
            "--dtype",
            "fp8",
            "--no-load-curve",
            *work,
        ],
    )
    assert cmp.exit_code == 0, (cmp.output, cmp.exception)
    sides = json.loads(cmp.stdout)["sides"]
    assert [s["hw"] for s in sides] == ["trn2.48xlarge:tp=1", "p5.48xlarge:tp=1"]
    assert all(s["weight_bytes"] == pytest.approx(expected_weight_bytes(1), rel=1e-12) for s in sides)


def test_the_cli_exits_2_with_the_message(
    tiny: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trnsim.cli import main

    args = ["trnsim", "serve", "--model", tiny, "--hw", "trn2.48xlarge", "--tp", "1", "--rate", "1", "--dtype", "mxfp4"]
    monkeypatch.setattr("sys.argv", args)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "has no MX matmul" in capsys.readouterr().err


def test_dtype_with_a_deployment_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--deployment", str(tmp_path / "d.toml"), "--dtype", "fp8"])
    assert isinstance(result.exception, TrnsimError) and "--deployment" in str(result.exception)

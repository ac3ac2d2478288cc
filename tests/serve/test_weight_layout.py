"""Weights in the serving stacks' layout (serve/weight_layout.py): the re-pricing rule against a direct sum, and on
a small model's decode step, the linears never slower than on PyTorch's layout and the rest unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from trnsim.serve.errors import ServeError
from trnsim.serve.step_components import StepComponents, weight_layout_for
from trnsim.serve.weight_layout import linear_problem, parse_operands, relaid_seconds


@dataclass
class _Record:
    kind: str
    kernel: str
    shapes: str
    count: int
    device_us: float

    @property
    def total_device_us(self) -> float:
        return self.count * self.device_us


def test_operands_parse() -> None:
    assert parse_operands("[1, 1, 4096]:bfloat16, [128, 4096]:float8_e4m3") == [
        ((1, 1, 4096), "bfloat16"),
        ((128, 4096), "float8_e4m3"),
    ]
    assert linear_problem("[2, 3, 64]:bfloat16, [32, 64]:bfloat16") == (6, 64, 32, "bfloat16", "bfloat16")
    assert linear_problem("[2, 64]:bfloat16, [64, 32]:bfloat16") is None  # not x [..., K] with w [N, K]


def test_each_linear_takes_the_cheaper_layout_and_nothing_else_moves() -> None:
    rng = np.random.default_rng(11)
    records, expected_us, alt = [], 0.0, {}
    for i in range(40):
        kind, kernel = [("kernel", "linear"), ("kernel", "rmsnorm"), ("collective", "linear")][i % 3]
        k, n = int(rng.integers(64, 4096)), int(rng.integers(64, 4096))
        r = _Record(
            kind, kernel, f"[1, 1, {k}]:bfloat16, [{n}, {k}]:bfloat16", int(rng.integers(1, 80)), rng.uniform(1, 90)
        )
        records.append(r)
        alt[(k, n)] = None if i % 7 == 0 else rng.uniform(1, 90)  # None: the matmul cannot run it
        relaid = (kind, kernel) == ("kernel", "linear") and alt[(k, n)] is not None
        expected_us += r.count * (min(r.device_us, alt[(k, n)]) if relaid else r.device_us)
    got = relaid_seconds(records, lambda m, k, n, xd, wd: alt[(k, n)])
    assert got == pytest.approx(expected_us * 1e-6, rel=1e-12)


def _config(path: Path) -> str:
    path.write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": 512,
                "intermediate_size": 1024,
                "num_hidden_layers": 2,
                "num_attention_heads": 8,
                "num_key_value_heads": 2,
                "vocab_size": 1024,
                "max_position_embeddings": 4096,
                "rms_norm_eps": 1e-5,
                "tie_word_embeddings": False,
            }
        )
    )
    return str(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("layout")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        reset_default_cache(None)
        yield _config(root / "small.json")
        reset_default_cache(None)


def test_stack_layout_decode_is_never_slower_and_keys_apart(model: str) -> None:
    plain = StepComponents(model, "trn1", 2, "trn1.32xlarge", "bfloat16")
    with weight_layout_for("stack"):
        stacked = StepComponents(model, "trn1", 2, "trn1.32xlarge", "bfloat16")
    assert (plain.weight_layout, stacked.weight_layout) == ("pytorch", "stack")
    assert plain.cache_key() != stacked.cache_key()  # the two never share cached grid points
    assert stacked.dense_s(1) <= plain.dense_s(1)
    with pytest.raises(ServeError, match="weight_layout"), weight_layout_for("column-major"):
        pass

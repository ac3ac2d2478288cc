"""Step grids estimate dense(N) only up to the first new-tokens point in the compute-bound regime and at the top;
the points between lie on their line (serve/estimate_step_cost.py affine_tail, StepComponents.affine_tokens).

Reference: the same grid with dense(N) estimated at every point. At random (batch, new tokens, context) the two
grids must agree within 1%, and the skipped dense points must lie within 1% of their estimates."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from trnsim.compiler.kernel_runner import extrapolation
from trnsim.compiler.unpriced import unpriced_ops
from trnsim.serve.estimate_step_cost import _axes, _dense_parts, affine_tail
from trnsim.serve.step_components import SDPA, StepComponents
from trnsim.serve.step_grid import StepLatencyGrid

TARGET = "trn2"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small Llama whose linears still dominate dense(N), with private kernel caches."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("affine")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 2048,
        "max_position_embeddings": 16384,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }
    path = root / "small.json"
    path.write_text(json.dumps(config))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        reset_default_cache(None)
        yield str(path)
        reset_default_cache(None)


def test_affine_tail_keeps_the_first_compute_bound_point_and_the_top() -> None:
    axis = [1, 4, 16, 64, 256, 1024, 4096, 16384]
    assert affine_tail(axis, 868.0) == [1, 4, 16, 64, 256, 1024, 16384]
    assert affine_tail(axis, 1024.0) == [1, 4, 16, 64, 256, 1024, 16384]
    assert affine_tail(axis, 1025.0) == [1, 4, 16, 64, 256, 1024, 4096, 16384]
    assert affine_tail(axis, 20000.0) == axis
    assert affine_tail(axis, None) == axis


def test_no_affine_claim_on_gpus() -> None:
    assert StepComponents("llama-3.1-8b", "h100", 1, None, "bfloat16").affine_tokens() is None


def test_reduced_grid_matches_the_full_one(model: str) -> None:
    batches, tokens, contexts = _axes(64, 2048, 8192)
    reduced = StepComponents(model, TARGET, 1, None, "bfloat16")
    estimated = affine_tail(tokens, reduced.affine_tokens())
    skipped = [n for n in tokens if n not in estimated]
    assert skipped, (tokens, estimated)  # the claim must be exercised: trn2's knee puts 4096 on the line
    tail = [n for n in tokens if n >= estimated[-2]]  # the points that differ, and the two they lie between
    _dense_parts(reduced, tail)
    full = StepComponents(model, TARGET, 1, None, "bfloat16")
    full._dense = {n: reduced.dense_s(n) for n in estimated if n in tail}  # the estimates both grids share
    with extrapolation(True), unpriced_ops({SDPA}):
        for n in skipped:
            estimate = full.dense_s(n)
            assert reduced.dense_s(n) == pytest.approx(estimate, rel=0.01), n

    grids = [StepLatencyGrid(p.step_time_s, batches, tail, contexts) for p in (reduced, full)]
    rng = np.random.default_rng()
    for _ in range(300):
        n = int(rng.integers(tail[0], tail[-1] + 1))
        b = int(rng.integers(1, min(n, batches[-1]) + 1))
        c = float(rng.uniform(1, contexts[-1]))
        want = grids[1].step_time_s(b, n, c)
        assert grids[0].step_time_s(b, n, c) == pytest.approx(want, rel=0.01), (b, n, c)

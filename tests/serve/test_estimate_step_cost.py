"""Step latencies from the compiler's estimate: grid = direct evaluation, monotone, near the HBM roofline
for decode, sensitive to the spec's bandwidth, cached on disk, and the prefill pair count by brute force."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import trnsim.serve.estimate_step_cost as esc
from trnsim.errors import TrnsimError
from trnsim.hw.presets import get_spec
from trnsim.models import model_facts
from trnsim.serve.estimate_step_cost import StepComponents, estimated_step_cost, prefill_pairs

BOUNDS = {"max_batch": 16, "max_context": 1024, "max_new_tokens": 64}


def llama_config(path: Path, hidden: int, heads: int, kv_heads: int, inter: int, vocab: int) -> str:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }
    path.write_text(json.dumps(config))
    return str(path)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Private kernel and step-latency caches for this module; a 3 x 3 x 3 grid keeps builds to 3 estimates."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("step_cost")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.setattr(esc, "GRID_RATIO", {"batches": 4, "new_tokens": 8, "contexts": 32})
        reset_default_cache(None)
        yield root
        reset_default_cache(None)


@pytest.fixture(scope="module")
def tiny(env: Path) -> str:
    return llama_config(env / "tiny.json", hidden=256, heads=8, kv_heads=2, inter=512, vocab=1024)


@pytest.fixture(scope="module")
def built(tiny: str) -> esc.EstimatedStepCost:
    return estimated_step_cost(tiny, "trn2", **BOUNDS)


def test_grid_equals_direct_evaluation_is_monotone_and_cached(tiny: str, built: esc.EstimatedStepCost) -> None:
    g = built.grid
    assert built.evaluated == len(g.batches) * len(g.new_tokens) * len(g.contexts)
    for b in g.batches:
        for n in g.new_tokens:
            for c in g.contexts:
                direct = built.direct_step_time_s(int(b), int(n), c)
                assert built.step_time_s(int(b), int(n), c) == pytest.approx(direct, rel=1e-12)

    rng = np.random.default_rng()
    top_b, top_n, top_c = BOUNDS["max_batch"], BOUNDS["max_new_tokens"], BOUNDS["max_context"]
    for _ in range(200):
        b = int(rng.integers(1, top_b))
        n = int(rng.integers(b, top_n))
        c = float(rng.uniform(1, top_c - 1))
        t = built.step_time_s(b, n, c)
        assert built.step_time_s(b, n + int(rng.integers(1, top_n - n + 1)), c) >= t
        assert built.step_time_s(b, n, c + float(rng.uniform(1, top_c - c))) >= t
        # batch: decode steps (one new token per sequence) of more sequences
        more = b + int(rng.integers(1, top_b - b + 1))
        assert built.step_time_s(more, more, c) >= built.step_time_s(b, b, c)

    again = estimated_step_cost(tiny, "trn2", **BOUNDS)
    assert again.evaluated == 0 and again.estimate_calls == 0
    assert again.key == built.key
    np.testing.assert_array_equal(again.grid.table, built.grid.table)


def test_decode_step_near_hbm_roofline(env: Path) -> None:
    """Decode at batch 1 is bound by reading the weights once (the embedding table is gathered, not read) and
    the KV cache, at one logical core's DMA rate (its LNC physical cores' queues, capped by its share of the chip's
    HBM): between 1x and 2x of that roofline."""
    path = llama_config(env / "mid.json", hidden=2048, heads=16, kv_heads=4, inter=8192, vocab=8192)
    parts = StepComponents(path, "trn2", 1, None, "bfloat16")
    facts = model_facts(path)
    spec = get_spec("trn2")
    dma = spec.core.dma
    lnc = spec.chip.default_lnc
    ranks_per_chip = spec.chip.physical_cores // lnc
    bytes_per_s = min(lnc * dma.queues * dma.queue_bytes_per_ns, spec.chip.hbm_bytes_per_ns / ranks_per_chip) * 1e9
    context = 512
    weights = 2 * (facts.n_params - facts.vocab_size * facts.hidden_size)
    roofline = (weights + facts.kv_bytes_per_token() * context) / bytes_per_s
    device = parts.step_time_s(1, 1, context) - parts.overhead_s
    assert roofline <= device <= 2 * roofline


def test_doubled_bandwidth_gives_a_faster_decode(tiny: str) -> None:
    base = get_spec("trn2")
    # A core reaches HBM through its DMA queues: double both the chip's HBM and the queues' rate.
    dma = base.core.dma.model_copy(update={"queue_bytes_per_ns": 2 * base.core.dma.queue_bytes_per_ns})
    fast = base.model_copy(
        update={
            "core": base.core.model_copy(update={"dma": dma}),
            "chip": base.chip.model_copy(update={"hbm_bytes_per_ns": 2 * base.chip.hbm_bytes_per_ns}),
        }
    )
    quick = StepComponents(tiny, fast, 1, None, "bfloat16")
    slow = StepComponents(tiny, "trn2", 1, None, "bfloat16")
    assert quick.cache_key() != slow.cache_key()
    assert quick.step_time_s(1, 1, 1024) < slow.step_time_s(1, 1, 1024)


def test_gpu_target_h200_decodes_faster_than_h100(tiny: str) -> None:
    h100 = StepComponents(tiny, "h100", 1, None, "bfloat16")
    h200 = StepComponents(tiny, "h200", 1, None, "bfloat16")
    assert h100.family == "gpu" and h100.overhead_s > 0
    assert h200.step_time_s(16, 16, 1024) < h100.step_time_s(16, 16, 1024)


def test_tp_beyond_the_instance_is_a_clear_error(tiny: str) -> None:
    with pytest.raises(TrnsimError, match="tp=128"):
        estimated_step_cost(tiny, "trn2", 128, "trn2.48xlarge", **BOUNDS)
    with pytest.raises(TrnsimError, match="tp=16"):
        estimated_step_cost(tiny, "h100", 16, **BOUNDS)


def test_prefill_pairs_match_brute_force() -> None:
    """k sequences of q chunk queries, each the last q positions of `context` causal keys: count the keys each
    query sees one by one."""
    rng = np.random.default_rng()
    for _ in range(50):
        context = int(rng.integers(1, 200))
        k = int(rng.integers(1, 5))
        low = context * (k - 1) // k + 1  # q > context (k-1)/k, so ceil(k q / context) == k
        q = int(rng.integers(low, context + 1))
        keys_seen = sum(context - q + i + 1 for i in range(q))
        assert prefill_pairs(k * q, context) == pytest.approx(k * keys_seen, rel=1e-12)
    assert prefill_pairs(0, 100) == 0.0

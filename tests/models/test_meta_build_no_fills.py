"""Building on the meta device with torch.nn.init's fills skipped (models/build.py: no_init_fills) gives the same
model as transformers' own construction with the fills: parameter names, shapes, dtypes, tying, buffers and
module tree, on fresh random configs of several families; the same for one tensor-parallel rank (local_model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from trnsim.compiler.tensor_parallel import local_model
from trnsim.models import build_model
from trnsim.models.build import no_init_fills


def _config(rng: np.random.Generator, family: str):  # type: ignore[no-untyped-def]
    heads = int(rng.choice((2, 4)))
    hd = int(rng.choice((8, 16)))
    layers = int(rng.integers(2, 4))
    vocab = int(rng.integers(16, 300)) * 4  # divisible by tp=2 and 4
    tie = bool(rng.integers(2))
    if family == "gpt2":
        kw = {"n_embd": heads * hd, "n_head": heads, "n_layer": layers, "n_positions": 64, "vocab_size": vocab}
        kw["tie_word_embeddings"] = tie
    elif family == "bert":
        kw = {
            "hidden_size": heads * hd,
            "num_attention_heads": heads,
            "num_hidden_layers": layers,
            "intermediate_size": int(rng.integers(8, 64)),
            "vocab_size": vocab,
        }
    else:
        kw = {
            "hidden_size": heads * hd,
            "num_attention_heads": heads,
            "num_key_value_heads": int(rng.choice((1, 2))),
            "num_hidden_layers": layers,
            "intermediate_size": int(rng.integers(4, 64)) * 4,
            "vocab_size": vocab,
            "tie_word_embeddings": tie,
        }
        if family == "mixtral":
            kw |= {"num_local_experts": int(rng.integers(2, 5)), "num_experts_per_tok": 2}
    return CONFIG_MAPPING[family](**kw)


def _describe(m: torch.nn.Module) -> tuple[object, ...]:
    params = [(n, tuple(p.shape), p.dtype, p.device.type) for n, p in m.named_parameters()]
    every = [n for n, _ in m.named_parameters(remove_duplicate=False)]
    tied: dict[int, list[str]] = {}
    for n, p in m.named_parameters(remove_duplicate=False):
        tied.setdefault(id(p), []).append(n)
    buffers = [(n, tuple(b.shape), b.dtype, b.device.type) for n, b in m.named_buffers()]
    return (params, every, sorted(tied.values()), buffers, str(m), m.training)


def _reference(config, causal: bool) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    with torch.device("meta"):
        model = (AutoModelForCausalLM if causal else AutoModel).from_config(config, dtype=torch.bfloat16)
    return model.eval()


@pytest.mark.parametrize("family", ["llama", "gpt2", "mixtral", "qwen2", "bert"])
def test_meta_build_without_fills_is_the_same_model(family):
    rng = np.random.default_rng()
    config = _config(rng, family)
    fast = build_model(config, device="meta")
    ref = _reference(config, causal=family != "bert")
    assert _describe(fast) == _describe(ref)
    assert fast.config.to_dict() == ref.config.to_dict()


@pytest.mark.parametrize("family", ["llama", "gpt2"])  # rebuilt from a sharded config / cut module by module
def test_tp_rank_without_fills_is_the_same_rank(family):
    config = _config(np.random.default_rng(), family)
    full = build_model(config, device="meta")
    with no_init_fills():
        fast, _ = local_model(full, 2)
    ref, _ = local_model(full, 2)
    assert _describe(fast) == _describe(ref)
    assert getattr(fast, "_trnsim_tp_roles", None) == getattr(ref, "_trnsim_tp_roles", None)


def test_fills_are_restored_and_real_devices_keep_random_weights():
    original = torch.nn.init.kaiming_uniform_
    with no_init_fills():
        assert torch.nn.init.kaiming_uniform_ is not original
    assert torch.nn.init.kaiming_uniform_ is original
    config = _config(np.random.default_rng(), "llama")
    seed = int(np.random.default_rng().integers(2**31))
    torch.manual_seed(seed)
    model = build_model(config, device="cpu", dtype=torch.float32)
    torch.manual_seed(seed)
    ref = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # the same random weights as transformers' own construction (the fills ran), not untouched memory
    got, want = model.state_dict(), ref.state_dict()
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert torch.equal(got[name], value), name
    assert float(model.model.layers[0].mlp.up_proj.weight.detach().abs().max()) > 0


def test_estimate_is_unchanged_by_the_skipped_fills(monkeypatch):
    """trnsim.estimate of a random Llama at tp=2: the per-op records (graph nodes, kernels, device time, counts)
    with the fills skipped (model and rank) equal those of transformers' own construction with the fills run."""
    import contextlib

    import trnsim
    import trnsim.compiler.estimate as est

    config = _config(np.random.default_rng(), "llama")
    ids = torch.zeros(1, 16, dtype=torch.long, device="meta")

    def records(model: torch.nn.Module) -> list[tuple[object, ...]]:
        prof = trnsim.estimate(model, (ids,), tp=2)
        return [(r.node, r.op, r.kind, r.kernel, r.count, r.device_us, r.hbm_bytes) for r in prof.records] + [
            prof.device_time_us,
            prof.weight_bytes,
        ]

    fast = records(build_model(config, device="meta"))
    monkeypatch.setattr(est, "no_init_fills", contextlib.nullcontext)
    full = records(_reference(config, causal=True))
    assert fast == full


# Builds a small Llama on the CPU in a fresh interpreter, optionally after a meta build with the fills skipped
# (the first model of the process, so transformers' initialization module is first imported inside the skip);
# prints a digest of the weights, the norms' weights and the linear weights' std.
_FRESH_BUILD = """
import hashlib, json, sys
import torch
from transformers import LlamaConfig, AutoModelForCausalLM
from trnsim.models import build_model
config = LlamaConfig(**json.loads(sys.argv[1]))
if sys.argv[2] == "meta-first":
    build_model(config, device="meta")
torch.manual_seed(int(sys.argv[3]))
model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
digest = hashlib.sha256()
for name, p in sorted(model.state_dict().items()):
    digest.update(name.encode()); digest.update(p.detach().numpy().tobytes())
norms = [p for n, p in model.named_parameters() if n.endswith("norm.weight")]
linears = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
print(json.dumps({
    "digest": digest.hexdigest(),
    "norms_all_one": all(bool(torch.all(p == 1)) for p in norms),
    "linear_std": [float(w.detach().std()) for w in linears],
}))
"""


def test_a_meta_build_first_leaves_later_models_initialised():
    """Regression (CI, 2026-12-07): the first model of a process built on the meta device imported transformers'
    initialization module inside the skip, which recorded the no-op fills for good; every later model (on the CPU
    too) kept uninitialised weights. A fresh interpreter that builds on meta first must build later CPU models with
    the same weights as one that never did, and those weights must follow the config's init: norms are ones,
    linear weights are N(0, initializer_range^2)."""
    import json
    import subprocess
    import sys

    rng = np.random.default_rng()
    std = float(rng.uniform(0.01, 0.05))
    cfg = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 256,
        "initializer_range": std,
    }
    seed = str(int(rng.integers(2**31)))

    def run(mode: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-c", _FRESH_BUILD, json.dumps(cfg), mode, seed],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    after_meta, alone = run("meta-first"), run("cpu-only")
    assert after_meta["norms_all_one"] and alone["norms_all_one"]
    # 64x64 .. 256x64 entries: the sample std of N(0, std^2) lies within 10% of std
    for s in after_meta["linear_std"]:  # type: ignore[union-attr]
        assert abs(s - std) < 0.1 * std, (s, std)
    assert after_meta["digest"] == alone["digest"]

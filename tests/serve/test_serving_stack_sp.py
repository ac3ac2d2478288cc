"""NxD Inference's sequence-parallel context encoding (serve/stack_sequence_parallel.py): the norms and residual
adds it splits are those the library kernels price on [tokens, hidden], and the step saves (1 - 1/tp) of them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from trnsim.serve.errors import ServeError
from trnsim.serve.serving_stack import ServingStack, stack_for
from trnsim.serve.stack_sequence_parallel import SequenceParallelSaving
from trnsim.serve.step_components import StepComponents

LAYERS, HIDDEN = 2, 512


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepComponents]:
    """A small Llama (hidden 512, MLP 1536 so its gating mul is not [tokens, hidden]) over tp=2 on trn1."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("sp")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": 1536,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 1024,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }
    path = root / "small.json"
    path.write_text(json.dumps(config))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        reset_default_cache(None)
        yield StepComponents(str(path), "trn1", 2, None, "bfloat16")
        reset_default_cache(None)


def _kernel_us(parts: StepComponents, kernel: object, args: tuple[object, ...]) -> float:
    from trnsim.compiler.kernel_runner import extrapolation, run_kernel

    assert parts.spec is not None
    with extrapolation(True):
        _, cost = run_kernel(kernel, args, {}, parts.spec, functional=False)
    return float(cost.latency_us)


def test_token_wise_part_is_the_models_norms_and_residual_adds(parts: StepComponents) -> None:
    """2 norms per layer and the final norm, 2 residual adds per layer, each the library kernel on
    [1, tokens, hidden]: run directly, independently of the estimate's records."""
    from trnsim import dtypes, kernels
    from trnsim.nki.kernel import TensorSpec

    bf16 = dtypes.resolve("bfloat16")
    saving = SequenceParallelSaving(parts)
    tokens = 1024
    x, gamma = TensorSpec((1, tokens, HIDDEN), bf16), TensorSpec((HIDDEN,), bf16)
    norm_us = _kernel_us(parts, kernels.rmsnorm, (x, gamma))
    add_us = _kernel_us(parts, kernels.binary, (x, x, "add"))
    expected = (2 * LAYERS + 1) * norm_us + 2 * LAYERS * add_us
    assert saving.token_wise_s(tokens) * 1e6 == pytest.approx(expected, rel=1e-6)


class _Flat:
    def __init__(self, parts: StepComponents) -> None:
        self._parts = parts

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        return 1.0

    def components(self) -> StepComponents:
        return self._parts


def test_prefill_saves_all_but_one_tp_share_scaled_to_its_tokens(parts: StepComponents) -> None:
    stack = ServingStack("nxdi", (2048, 8192), (2048, 8192), sequence_parallel=True)
    wrapped = stack.wrap(_Flat(parts))
    saving = wrapped.sequence_parallel
    assert saving is not None
    per_token = saving.token_wise_s(4096) / 4096
    for prompt, padded in ((3000, 8192), (2048, 2048)):
        expected = 1.0 - (1 - 1 / 2) * per_token * padded if padded >= 4096 else None
        got = wrapped.step_time_s(1, prompt, prompt)
        if expected is not None:
            assert got == pytest.approx(expected, rel=1e-12)
        else:  # a prompt shorter than the reference is priced from its own estimate
            assert got == pytest.approx(1.0 - 0.5 * saving.token_wise_s(2048), rel=1e-12)
    assert wrapped.step_time_s(4, 4, 3000.0) == 1.0  # token generation runs without it
    off = ServingStack("nxdi", (2048, 8192), (2048, 8192)).wrap(_Flat(parts))
    assert off.sequence_parallel is None and off.step_time_s(1, 3000, 3000) == 1.0


def test_sequence_parallelism_is_refused_where_the_stack_has_none() -> None:
    with pytest.raises(ServeError, match="NxD Inference options"):
        stack_for("inf2", 4096, sequence_parallel=True)
    assert stack_for("trn2", 4096, sequence_parallel=True).sequence_parallel


def test_kernel_layout_reprices_exactly_the_qkv_and_mlp_weights(parts: StepComponents) -> None:
    """Every linear of a 512-token prefill is classified by its role in the config (q/k/v: in = hidden;
    gate/up/down: the rank's MLP width of 1536 / 2 = 768 on one side; o_proj: in = 4 heads x 64; the LM head:
    out = the rank's vocabulary), and only the deployment's projections are re-priced."""
    from trnsim.serve.stack_kernel_layout import KernelWeightLayout
    from trnsim.serve.stack_sequence_parallel import rank_records
    from trnsim.serve.weight_layout import linear_problem

    expected = {(HIDDEN, 768): "mlp", (768, HIDDEN): "mlp", (256, HIDDEN): "other", (HIDDEN, 512): "other"}
    both = KernelWeightLayout(parts, ("qkv", "mlp"))
    seen = set()
    for r in rank_records(parts, 512):
        problem = linear_problem(r.shapes) if r.kernel == "linear" else None
        if problem is None:
            continue
        k, n = problem[1], problem[2]
        role = both._projection(k, n)
        assert role == expected.get((k, n), "qkv" if k == HIDDEN else "?"), (k, n)
        seen.add(role)
    assert "mlp" in seen
    mlp_only, none = KernelWeightLayout(parts, ("mlp",)), KernelWeightLayout(parts, ())
    assert none.seconds(8192) == 0.0 and both.seconds(128) == 0.0  # decode-sized steps are relaid already
    assert mlp_only.seconds(8192) == pytest.approx(mlp_only.saving_s(4096) / 4096 * 8192, rel=1e-12)
    with pytest.raises(ValueError, match="unknown kernel projections"):
        KernelWeightLayout(parts, ("lm_head",))
    with pytest.raises(ServeError, match="NxD Inference options"):
        stack_for("trn1", 4096, kernel_weights=("mlp",))
    assert stack_for("trn2", 4096, kernel_weights=("qkv", "mlp")).kernel_weights == ("qkv", "mlp")

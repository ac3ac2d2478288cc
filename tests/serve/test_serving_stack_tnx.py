"""transformers-neuronx's step behaviour in serve/serving_stack.py: context buckets at half the token buckets,
prompt tokens past the largest context bucket encoded one at a time, and unfused context attention
(serve/stack_attention.py) checked against closed forms and the HBM traffic it cannot avoid."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from trnsim.hw.presets import get_spec
from trnsim.serve.errors import ServeError
from trnsim.serve.serving_stack import ServingStack, bucket_of, power_of_two_buckets, stack_for
from trnsim.serve.stack_attention import UnfusedContextAttention
from trnsim.serve.step_components import StepComponents


class _Linear:
    """step = a + b x new tokens + c x batch x context."""

    def __init__(self) -> None:
        self.a, self.b, self.c = 1e-3, 2e-6, 3e-8

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        return self.a + self.b * new_tokens + self.c * batch * context


def test_tnx_context_buckets_are_half_the_token_buckets_and_nxdi_keeps_its_own() -> None:
    rng = np.random.default_rng(3)
    for seq_len in rng.integers(200, 20000, 20):
        tnx = stack_for("inf2", int(seq_len))
        assert tnx.token_buckets == power_of_two_buckets(128, int(seq_len))
        assert tnx.context_buckets == tuple(b // 2 for b in tnx.token_buckets)
        assert tnx.leftover_by_token_generation and tnx.context_attention == "unfused"
        nxdi = stack_for("trn2", int(seq_len))
        assert nxdi.context_buckets == nxdi.token_buckets == power_of_two_buckets(128, int(seq_len))
        assert not nxdi.leftover_by_token_generation and nxdi.context_attention == "flash"


def test_prompt_past_the_largest_context_bucket_runs_token_by_token() -> None:
    stack = stack_for("trn1", 4096)  # context buckets up to 2,048; token buckets 128 ... 4,096
    inner = _Linear()
    wrapped = stack.wrap(inner)
    rng = np.random.default_rng(11)
    for batch, prompt in zip(rng.integers(1, 9, 5), rng.integers(2049, 4000, 5), strict=True):
        b, p = int(batch), int(prompt)
        expected = inner.a + inner.b * b * 2048 + inner.c * b * 2048  # the 2,048-token context graph
        for position in range(2048, p):  # each further prompt token: one token-generation step at its bucket
            kv = next(s for s in (128, 256, 512, 1024, 2048, 4096) if position + 1 <= s)
            expected += inner.a + inner.b * b + inner.c * b * kv
        assert wrapped.step_time_s(b, b * p, p) == pytest.approx(expected, rel=1e-12)
    # within the buckets nothing runs token by token, and NxD Inference never does
    assert wrapped.step_time_s(2, 2 * 1500, 1500) == pytest.approx(inner.step_time_s(2, 2 * 2048, 2048))
    nxdi = stack_for("trn2", 4096).wrap(inner)
    assert nxdi.step_time_s(1, 3000, 3000) == pytest.approx(inner.step_time_s(1, 4096, 4096))


def test_unknown_context_attention_is_refused() -> None:
    with pytest.raises(ServeError, match="context_attention"):
        ServingStack("x", (128,), (128,), context_attention="fused")
    assert bucket_of(5000, (128, 4096)) == 5000


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepComponents]:
    """A small Llama (8 heads of 64, 2 KV heads, 2 layers) on one trn1 core, with private kernel caches."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("tnx")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 512,
        "intermediate_size": 1024,
        "num_hidden_layers": 2,
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
        yield StepComponents(str(path), "trn1", 1, None, "bfloat16")
        reset_default_cache(None)


def test_unfused_attention_moves_every_score_through_hbm(parts: StepComponents) -> None:
    """Q @ K^T writes the scores, the mask reads and writes them, softmax reads and writes them, P @ V reads
    them: at least 6 x heads x queries x keys x 2 bytes at the chip's HBM bandwidth, and more than flash
    attention's causal pairs on chip."""
    attention = UnfusedContextAttention(parts)
    chip = get_spec("trn1").chip
    heads = parts.shape.heads
    for s in (1024, 2048):
        traffic_s = 6 * heads * s * s * 2 / (chip.hbm_bytes_per_ns * 1e9)
        unfused = attention.seconds(s, s)
        assert unfused >= traffic_s
        flash = parts.prefill_attention_s(s - 1, s) + parts.decode_attention_s(1, s)
        assert unfused > flash
    ratio = attention.seconds(2048, 2048) / attention.seconds(1024, 1024)
    assert 3.0 < ratio < 4.5  # every pair of the padded prompt: quadratic in its length


class _WithParts(_Linear):
    def __init__(self, parts: StepComponents) -> None:
        super().__init__()
        self._parts = parts

    def components(self) -> StepComponents:
        return self._parts


def test_unfused_stack_swaps_the_flash_attention_of_prefill_steps_only(parts: StepComponents) -> None:
    inner = _WithParts(parts)
    unfused = ServingStack("tnx", (256, 512, 1024), (128, 256, 512, 1024), context_attention="unfused")
    flash = ServingStack("nxdi", (256, 512, 1024), (128, 256, 512, 1024))
    wrapped, plain = unfused.wrap(inner), flash.wrap(inner)
    assert plain.attention is None and wrapped.attention is not None
    attention = wrapped.attention
    for batch, prompt in ((1, 700), (3, 1000)):
        padded = 1024
        flash_s = parts.decode_attention_s(batch, padded) + parts.prefill_attention_s(batch * (padded - 1), padded)
        extra = parts.shape.layers * (batch * attention.seconds(padded, padded) - flash_s)
        got = wrapped.step_time_s(batch, batch * prompt, prompt)
        assert got == pytest.approx(plain.step_time_s(batch, batch * prompt, prompt) + extra, rel=1e-12)
        assert got > plain.step_time_s(batch, batch * prompt, prompt)
    assert wrapped.step_time_s(4, 4, 900.0) == plain.step_time_s(4, 4, 900.0)  # decode keeps its kernel
    assert unfused.wrap(_Linear()).attention is None  # no compiler components: priced as the step cost says


def test_decode_norms_on_hidden_major_activations(parts: StepComponents) -> None:
    """Each of the 2 x 2 + 1 RMSNorms of a decode step is re-priced from [tokens, hidden] rows to the hidden
    spread over the 128 partitions: the library rmsnorm run directly on both shapes gives the saving."""
    from trnsim import dtypes, kernels
    from trnsim.compiler.kernel_runner import extrapolation, run_kernel
    from trnsim.nki.kernel import TensorSpec
    from trnsim.serve.stack_hsb_norm import HsbNormSaving

    assert parts.spec is not None
    bf16 = dtypes.resolve("bfloat16")
    hidden = parts.shape.hidden

    def norm_us(shape: tuple[int, ...]) -> float:
        with extrapolation(True):
            args = (TensorSpec(shape, bf16), TensorSpec((shape[-1],), bf16))
            _, cost = run_kernel(kernels.rmsnorm, args, {}, parts.spec, functional=False)
        return float(cost.latency_us)

    saving = HsbNormSaving(parts)
    for tokens in (1, 4):
        expected = (2 * parts.shape.layers + 1) * (
            norm_us((1, tokens, hidden)) - norm_us((1, 128 * tokens, hidden // 128))
        )
        assert saving.seconds(tokens) * 1e6 == pytest.approx(expected, rel=1e-6)
    tnx = stack_for("inf2", 4096)
    assert tnx.hidden_major_norms and not stack_for("trn2", 4096).hidden_major_norms
    inner = _WithParts(parts)
    wrapped = ServingStack("t", (1024,), (1024,), hidden_major_norms=True).wrap(inner)
    plain = ServingStack("t", (1024,), (1024,)).wrap(inner)
    assert wrapped.step_time_s(4, 4, 900.0) == pytest.approx(plain.step_time_s(4, 4, 900.0) - saving.seconds(4))
    assert wrapped.step_time_s(1, 700, 700) == plain.step_time_s(1, 700, 700)  # context encoding keeps its norms

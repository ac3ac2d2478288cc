"""`--serving-stack` (serve/stack_choice.py) and the per-prompt padding of continuous batching on a serving stack,
against closed forms from the bucket lists: which stack each chip gets, the sequence length a deployment compiles,
the grid bounds that hold every padded step, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trnsim.serve import (
    ChunkedPrefill,
    ClosedLoop,
    ContinuousBatching,
    Fixed,
    Poisson,
    ServedModel,
    StaticBatching,
    Uniform,
    Workload,
    simulate,
)
from trnsim.serve.errors import ServeError
from trnsim.serve.model import Replica
from trnsim.serve.schedulers import SpeculativeDecoding
from trnsim.serve.serving_stack import ServingStack, stack_for
from trnsim.serve.setup import grid_bounds
from trnsim.serve.stack_choice import choose_serving_stack, deployment_seq_len, exact_only, stack_grid_bounds

MODEL = ServedModel("m", weight_bytes=1e9, kv_bytes_per_token=1e4, params=5e8)


class _Linear:
    """step = a + b x new tokens + c x batch x context, recording every shape it is asked for."""

    def __init__(self) -> None:
        self.a, self.b, self.c = 1e-3, 2e-6, 3e-8
        self.calls: list[tuple[int, int, float]] = []

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        self.calls.append((batch, new_tokens, context))
        return self.a + self.b * new_tokens + self.c * batch * context


def _pow2_bucket(n: int, first: int = 128) -> int:
    return max(first, 1 << (n - 1).bit_length())


def _work(n: int, prompt: object, output: object, arrival: object | None = None) -> Workload:
    return Workload(n, arrival or Poisson(20.0), prompt=prompt, output=output, seed=3)  # type: ignore[arg-type]


def test_auto_picks_the_stack_aws_documents_for_each_generation() -> None:
    work = _work(10, Fixed(1000), Fixed(100))
    assert choose_serving_stack("auto", "trn1", work).name == "transformers-neuronx"
    assert choose_serving_stack("auto", "inf2", work).name == "transformers-neuronx"
    assert choose_serving_stack("auto", "trn2", work).name == "nxd-inference"
    assert choose_serving_stack("auto", "trn3", work).name == "nxd-inference"
    gpu = choose_serving_stack("auto", "h100", work)
    assert gpu.stack is None and "not a Neuron chip" in gpu.note
    assert choose_serving_stack("exact", "trn2", work).stack is None
    assert choose_serving_stack("NXD-Inference", "trn1", work).name == "nxd-inference"  # named: any Neuron chip


def test_the_sequence_length_holds_the_longest_request_and_every_prompt_in_a_context_bucket() -> None:
    rng = np.random.default_rng(11)
    for _ in range(30):
        prompt, output = int(rng.integers(1, 20000)), int(rng.integers(1, 4000))
        work = _work(4, Fixed(prompt), Fixed(output))
        assert deployment_seq_len("nxd-inference", work) == prompt + output  # as AWS's published configurations
        tnx = deployment_seq_len("transformers-neuronx", work)
        assert tnx == max(prompt + output, 2 * prompt), (prompt, output)
        assert stack_for("trn1", tnx).context_buckets[-1] >= prompt
    # capped at the model's context: Llama-2's 4,096 positions leave a 3,000-token prompt past tnx's 2,048 bucket
    assert deployment_seq_len("transformers-neuronx", _work(4, Fixed(3000), Fixed(96)), "llama-2-7b") == 4096
    assert deployment_seq_len("transformers-neuronx", _work(4, Fixed(128), Fixed(1024)), "llama-2-70b") == 1152


def test_continuous_prefill_pads_each_prompt_to_its_own_bucket() -> None:
    stack = stack_for("trn2", 8192)  # context buckets 128, 256, ..., 8192
    inner = _Linear()
    wrapped = stack.wrap(inner)
    rng = np.random.default_rng(5)
    for _ in range(20):
        prompts = [int(p) for p in rng.integers(1, 8192, int(rng.integers(1, 6)))]
        padded = [_pow2_bucket(p) for p in prompts]
        b, n = len(prompts), sum(padded)
        expected = inner.a + inner.b * n + inner.c * b * (n / b)
        assert wrapped.prefill_step_time_s(prompts, prompts) == pytest.approx(expected, rel=1e-12)
    equal = [1500] * 3  # equal prompts: the batched form step_time_s already prices
    assert wrapped.prefill_step_time_s(equal, equal) == pytest.approx(wrapped.step_time_s(3, 4500, 1500.0))


def test_continuous_prefill_past_the_largest_context_bucket_runs_token_by_token_per_sequence() -> None:
    stack = ServingStack("t", (256, 512), (128, 256, 512, 1024), leftover_by_token_generation=True)
    inner = _Linear()
    prompts = [300, 600, 700]  # 600 and 700 pass the 512 bucket
    seconds = stack.wrap(inner).prefill_step_time_s(prompts, prompts)
    padded = [512, 512, 512]
    expected = inner.a + inner.b * sum(padded) + inner.c * 3 * 512
    for position in range(512, 700):  # the sequences still holding prompt tokens, at the next token bucket
        active = (position < 600) + (position < 700)
        ctx = _pow2_bucket(position + 1)
        expected += inner.a + inner.b * active + inner.c * active * ctx
    assert seconds == pytest.approx(expected, rel=1e-12)


def test_continuous_batching_ttft_is_the_padded_prefill_of_the_prompts_admitted_together() -> None:
    stack = stack_for("trn2", 4096)
    inner = _Linear()
    work = Workload(3, ClosedLoop(3), prompt=Uniform(100, 3000), output=Fixed(4), seed=9)
    result = simulate(MODEL, Replica(64 * 1024**3, stack.wrap(inner)), work, ContinuousBatching())
    prompts = [int(p) for p in work.generate().prompt_tokens]
    n = sum(_pow2_bucket(p) for p in prompts)
    step = inner.a + inner.b * n + inner.c * n  # batch x (n / batch)
    assert np.allclose(result.metrics.ttft_ms.p50, step * 1e3, rtol=1e-9)


@pytest.mark.parametrize("scheduler", ["static", "continuous"])
@pytest.mark.parametrize("name", ["transformers-neuronx", "nxd-inference"])
def test_grid_bounds_hold_every_padded_step(scheduler: str, name: str) -> None:
    """Every shape the stack asks its inner step cost for lies inside the grid the bounds build (each axis ends at
    its bound rounded up to a power of two)."""
    work = _work(300, Uniform(50, 3000), Uniform(1, 300))
    choice = choose_serving_stack(name, "trn2", work, scheduler)
    assert choice.stack is not None
    inner = _Linear()
    config = StaticBatching(max_batch=8) if scheduler == "static" else ContinuousBatching(max_batch=64)
    bounds = stack_grid_bounds(grid_bounds(work, scheduler), work, config, choice.stack)
    simulate(MODEL, Replica(64 * 1024**3, choice.stack.wrap(inner)), work, config)
    top = {k: 1 << (v - 1).bit_length() for k, v in vars(bounds).items()}
    assert max(b for b, _, _ in inner.calls) <= top["max_batch"]
    assert max(n for _, n, _ in inner.calls) <= top["max_new_tokens"]
    assert max(c for _, _, c in inner.calls) <= top["max_context"]
    assert max(n for _, n, _ in inner.calls) > 3000  # padding reached past the longest prompt


def test_bad_values_and_uncovered_paths_are_refused_in_one_line() -> None:
    work = _work(10, Fixed(1000), Fixed(100))
    with pytest.raises(ServeError, match="not known; use one of auto, exact, transformers-neuronx, nxd-inference"):
        choose_serving_stack("tnx", "trn1", work)
    with pytest.raises(ServeError, match="not a Neuron chip"):
        choose_serving_stack("nxd-inference", "h100", work)
    with pytest.raises(ServeError, match="chunked"):
        choose_serving_stack("transformers-neuronx", "trn1", work, "chunked")
    auto = choose_serving_stack("auto", "trn1", work, "sarathi")
    assert auto.stack is None and "chunked" in auto.note
    with pytest.raises(ServeError, match="--pp"):
        exact_only("nxd-inference", "--pp")
    assert exact_only("auto", "--pp").stack is None
    for err in ("not known", "--pp"):
        try:
            exact_only("tnx" if err == "not known" else "nxd-inference", "--pp")
        except ServeError as exc:
            assert "\n" not in str(exc)


def test_nxd_inference_deployment_options_follow_the_name() -> None:
    work = _work(10, Fixed(1000), Fixed(100))
    tuned = choose_serving_stack("nxd-inference:sequence-parallel,qkv,mlp", "trn2", work).stack
    assert tuned is not None and tuned.sequence_parallel and tuned.kernel_weights == ("qkv", "mlp")
    only_mlp = choose_serving_stack("nxd-inference:mlp", "trn1", work).stack
    assert only_mlp is not None and not only_mlp.sequence_parallel and only_mlp.kernel_weights == ("mlp",)
    plain = choose_serving_stack("auto", "trn2", work).stack
    assert plain is not None and not plain.sequence_parallel and plain.kernel_weights == ()
    for bad, expected in (
        ("nxd-inference:flash", "unknown deployment option flash"),
        ("transformers-neuronx:qkv", "NxD Inference deployment options"),
        ("auto:qkv", "go with a stack's name"),
    ):
        with pytest.raises(ServeError, match=expected):
            choose_serving_stack(bad, "trn1", work)


def test_simulate_refuses_steps_a_stack_cannot_shape() -> None:
    replica = Replica(64 * 1024**3, stack_for("trn2", 4096).wrap(_Linear()))
    work = _work(4, Fixed(100), Fixed(10))
    with pytest.raises(ServeError, match="chunked prefill mixes prompt and decode tokens"):
        simulate(MODEL, replica, work, ChunkedPrefill())
    with pytest.raises(ServeError, match="speculative decoding"):
        simulate(MODEL, replica, work, ContinuousBatching(), speculative=SpeculativeDecoding(_Linear(), k=2, alpha=0.5))
    assert math.isfinite(simulate(MODEL, replica, work, StaticBatching()).metrics.ttft_ms.p50)

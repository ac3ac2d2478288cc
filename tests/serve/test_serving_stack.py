"""Neuron serving-stack bucketing (serve/serving_stack.py) against closed forms: the buckets the stacks'
documents describe, and static-batch latencies of a linear step cost priced at the padded shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trnsim.serve import ClosedLoop, Fixed, ServedModel, StaticBatching, Workload, simulate
from trnsim.serve.errors import ServeError
from trnsim.serve.model import Replica
from trnsim.serve.serving_stack import ServingStack, bucket_of, power_of_two_buckets, stack_for


def test_default_buckets_are_powers_of_two_from_128_ending_at_the_sequence_length() -> None:
    assert power_of_two_buckets(128, 8192) == (128, 256, 512, 1024, 2048, 4096, 8192)
    assert power_of_two_buckets(128, 3000) == (128, 256, 512, 1024, 2048, 3000)
    assert power_of_two_buckets(128, 100) == (100,)


def test_bucket_of_is_the_next_power_of_two_at_least_128() -> None:
    rng = np.random.default_rng(7)
    buckets = power_of_two_buckets(128, 16384)
    for length in rng.integers(1, 16384, 200):
        expected = max(128, 2 ** math.ceil(math.log2(length)))
        assert bucket_of(int(length), buckets) == expected
    assert bucket_of(20000, buckets) == 20000  # beyond the last bucket: unpadded


class _Linear:
    """step = a + b x new tokens + c x batch x context: a closed form the padding can be checked against."""

    def __init__(self) -> None:
        self.a, self.b, self.c = 1e-3, 2e-6, 3e-8
        self.calls: list[tuple[int, int, float]] = []

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        self.calls.append((batch, new_tokens, context))
        return self.a + self.b * new_tokens + self.c * batch * context


def test_wrapped_steps_run_at_the_padded_shapes() -> None:
    stack = stack_for("trn1", 8192)
    inner = _Linear()
    wrapped = stack.wrap(inner)
    wrapped.step_time_s(4, 4 * 1500, 1500)  # prefill of four 1,500-token prompts -> the 2,048 bucket
    wrapped.step_time_s(4, 4, 2100.0)  # decode at KV length 2,100 -> the 4,096 token-generation bucket
    assert inner.calls == [(4, 4 * 2048, 2048.0), (4, 4, 4096.0)]


def test_static_batch_latencies_match_the_closed_form_at_padded_shapes() -> None:
    batch, prompt, output = 4, 300, 200
    inner = _Linear()
    stack = ServingStack("test", (256, 512, 1024), (128, 256, 512, 1024))
    model = ServedModel("m", weight_bytes=1e9, kv_bytes_per_token=1e4, params=5e8)
    replica = Replica(64 * 1024**3, stack.wrap(inner))
    work = Workload(batch, ClosedLoop(batch), prompt=Fixed(prompt), output=Fixed(output))
    m = simulate(model, replica, work, StaticBatching(max_batch=batch)).metrics

    def bucket(n: float, sizes: tuple[int, ...]) -> int:
        return next(s for s in sizes if n <= s)

    ttft = inner.a + inner.b * batch * 512 + inner.c * batch * 512  # prompt 300 padded to 512
    # decode steps after the first token: the KV length grows from prompt + 1, read at its token bucket
    decode = [
        inner.a + inner.b * batch + inner.c * batch * bucket(prompt + i, (128, 256, 512, 1024))
        for i in range(1, output)
    ]
    assert m.ttft_ms.p50 == pytest.approx(ttft * 1e3, rel=1e-6)
    assert m.tpot_ms.p50 == pytest.approx(sum(decode) / (output - 1) * 1e3, rel=1e-6)


def test_bad_buckets_and_unknown_families_are_refused() -> None:
    with pytest.raises(ServeError, match="increasing"):
        ServingStack("x", (512, 256), (128,))
    with pytest.raises(ServeError, match="no Neuron serving stack"):
        stack_for("h100", 4096)
    with pytest.raises(ServeError, match="pow2"):
        stack_for("trn2", 4096, "2048 lots")
    assert stack_for("trn2", 12800, "2048 4096", "12800").token_buckets == (12800,)

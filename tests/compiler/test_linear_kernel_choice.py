"""A bias-free linear with a constant weight is lowered to whichever of the linear and matmul kernels is faster,
one token included (a single-token linear once kept the linear kernel unpriced against matmul: GPT-2's LM head
at one token took 552 us instead of 226 us on trn2).

Reference: both kernels simulated directly through run_kernel on the same shapes, outside the compiler."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import trnsim
from trnsim import kernels
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.hw import load_preset
from trnsim.nki.kernel import TensorSpec

BF16 = "bfloat16"


def _alternatives(tokens: int, k: int, n: int, target: str) -> dict[str, float]:
    """Latency (us) of each kernel that can compute x[tokens, k] @ w[n, k].T, w stored either way."""
    spec = load_preset(target)
    x = TensorSpec((tokens, k), BF16)
    options = {
        "linear": (kernels.linear, (x, TensorSpec((n, k), BF16))),
        "matmul": (kernels.matmul, (x, TensorSpec((k, n), BF16))),
    }
    out = {}
    for name, (kernel, args) in options.items():
        _, cost = run_kernel(kernel, args, {}, spec, False, KernelCache(use_disk=False), extrapolate=False)
        out[name] = cost.latency_us
    return out


def _chosen(x_shape: tuple[int, ...], k: int, n: int, target: str) -> tuple[str, float]:
    """(kernel, latency us on one physical core) the compiler's estimate priced the linear with."""
    net = torch.nn.Linear(k, n, bias=False, device="meta", dtype=torch.bfloat16)
    x = torch.zeros(*x_shape, device="meta", dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = trnsim.estimate(net, (x,), target=target, extrapolate=False)
    matmuls = [r for r in prof.records if r.kernel in ("linear", "matmul")]
    assert len(matmuls) == 1, [(r.op, r.kernel) for r in prof.records]
    # an estimate reports a logical core, which splits each kernel's time over its physical cores
    return matmuls[0].kernel, matmuls[0].device_us * prof.cores_per_rank


_rng = np.random.default_rng()
# one token in each spelling a decode step uses ([1, K], [1, 1, K], [K]) at random widths, plus two tokens
CASES = [
    ((1,), "trn2"),
    ((1, 1), "trn2"),
    ((), "trn1"),
    ((2,), "trn2"),
]


@pytest.mark.parametrize(("lead", "target"), CASES)
def test_the_faster_kernel_is_chosen_at_one_token(lead: tuple[int, ...], target: str) -> None:
    k = int(_rng.integers(1, 9)) * 128 + int(_rng.integers(0, 2)) * int(_rng.integers(1, 128))
    n = int(_rng.integers(1, 33)) * 128 + int(_rng.integers(0, 2)) * int(_rng.integers(1, 128))
    tokens = int(np.prod(lead)) if lead else 1
    kernel, latency = _chosen((*lead, k), k, n, target)
    alternatives = _alternatives(tokens, k, n, target)
    for other in alternatives.values():
        assert latency <= other * (1 + 1e-9), (k, n, kernel, latency, alternatives)
    assert latency == pytest.approx(alternatives[kernel], rel=1e-9)


def test_gpt2_lm_head_at_one_token_takes_the_matmul_kernel() -> None:
    # The case that exposed the gap: [1, 768] @ [50257, 768].T on trn2, where the K-major matmul is about
    # twice as fast (both simulated in full here).
    kernel, latency = _chosen((1, 768), 768, 50257, "trn2")
    alternatives = _alternatives(1, 768, 50257, "trn2")
    assert alternatives["matmul"] < alternatives["linear"]
    assert kernel == "matmul" and latency == pytest.approx(alternatives["matmul"], rel=1e-9)

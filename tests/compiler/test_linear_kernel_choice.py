"""A bias-free linear with a constant weight is lowered to the matmul kernel on the weight stored K-major ([in,
out], laid out offline as NxD Inference's weight layout optimization does), one token included; nothing else is
priced for it. A linear with a bias (an epilogue) or with a weight computed at run time keeps the linear kernel.

Reference: the kernels simulated directly through run_kernel on the same shapes, outside the compiler."""

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


def _direct_us(kernel_name: str, tokens: int, k: int, n: int, target: str) -> float:
    """Latency (us) of x[tokens, k] @ w.T run directly: "linear" on w [n, k], "matmul" on w.T [k, n]."""
    x = TensorSpec((tokens, k), BF16)
    kernel, w = (
        (kernels.linear, TensorSpec((n, k), BF16))
        if kernel_name == "linear"
        else (kernels.matmul, TensorSpec((k, n), BF16))
    )
    cache = KernelCache(use_disk=False)
    _, cost = run_kernel(kernel, (x, w), {}, load_preset(target), False, cache, extrapolate=False)
    return float(cost.latency_us)


def _priced(net: torch.nn.Module, args: tuple[torch.Tensor, ...], target: str) -> list[tuple[str, float]]:
    """(kernel, latency us on one physical core) of every GEMM kernel the compiler's estimate launched."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = trnsim.estimate(net, args, target=target, extrapolate=False)
    # an estimate reports a logical core, which splits each kernel's time over its physical cores
    return [(r.kernel, r.device_us * prof.cores_per_rank) for r in prof.records if r.kernel in ("linear", "matmul")]


def _width(rng: np.random.Generator, tiles: int) -> int:
    return int(rng.integers(1, tiles + 1)) * 128 + int(rng.integers(0, 2)) * int(rng.integers(1, 128))


_rng = np.random.default_rng()
# one token in each spelling a decode step uses ([1, K], [1, 1, K], [K]), a few tokens, a prefill-sized block
CASES = [((1,), "trn2"), ((1, 1), "trn2"), ((), "trn1"), ((int(_rng.integers(2, 9)),), "trn2"), ((1, 160), "trn1")]


@pytest.mark.parametrize(("lead", "target"), CASES)
def test_constant_weight_takes_the_matmul_kernel_on_the_k_major_weight(lead: tuple[int, ...], target: str) -> None:
    k, n = _width(_rng, 6), _width(_rng, 24)
    net = torch.nn.Linear(k, n, bias=False, device="meta", dtype=torch.bfloat16)
    x = torch.zeros(*lead, k, device="meta", dtype=torch.bfloat16)
    priced = _priced(net, (x,), target)
    assert [kernel for kernel, _ in priced] == ["matmul"], (k, n, priced)
    tokens = int(np.prod(lead)) if lead else 1
    assert priced[0][1] == pytest.approx(_direct_us("matmul", tokens, k, n, target), rel=1e-9)


def test_a_linear_with_a_bias_keeps_the_linear_kernel() -> None:
    k, n, tokens = _width(_rng, 4), _width(_rng, 8), int(_rng.integers(1, 40))
    net = torch.nn.Linear(k, n, bias=True, device="meta", dtype=torch.bfloat16)
    priced = _priced(net, (torch.zeros(tokens, k, device="meta", dtype=torch.bfloat16),), "trn2")
    assert [kernel for kernel, _ in priced] == ["linear"], priced


class _RuntimeWeight(torch.nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, w)


def test_a_weight_computed_at_run_time_keeps_the_linear_kernel() -> None:
    # not a constant: no offline layout exists, so the kernel reads w [N, K] as it comes
    k, n, tokens = _width(_rng, 4), _width(_rng, 8), int(_rng.integers(1, 40))
    x = torch.zeros(tokens, k, device="meta", dtype=torch.bfloat16)
    w = torch.zeros(n, k, device="meta", dtype=torch.bfloat16)
    priced = _priced(_RuntimeWeight(), (x, w), "trn2")
    assert [kernel for kernel, _ in priced] == ["linear"], priced
    assert priced[0][1] == pytest.approx(_direct_us("linear", tokens, k, n, "trn2"), rel=1e-9)


def test_the_k_major_weight_is_priced_where_the_linear_kernel_would_run_faster() -> None:
    # [4, 4096] @ [4096, 4096].T on trn2: the linear kernel (weight stationary, its tiles transposed on chip)
    # beats the matmul kernel on the K-major weight by ~4% here, yet the deployment's weight is K-major, so the
    # estimate prices the matmul kernel (it took the faster of both before the offline-layout model).
    net = torch.nn.Linear(4096, 4096, bias=False, device="meta", dtype=torch.bfloat16)
    priced = _priced(net, (torch.zeros(4, 4096, device="meta", dtype=torch.bfloat16),), "trn2")
    matmul_us, linear_us = _direct_us("matmul", 4, 4096, 4096, "trn2"), _direct_us("linear", 4, 4096, 4096, "trn2")
    assert linear_us < matmul_us
    assert [kernel for kernel, _ in priced] == ["matmul"] and priced[0][1] == pytest.approx(matmul_us, rel=1e-9)

"""Unpriced ops (compiler/unpriced.py): their kernels are not simulated, and nothing else in the estimate changes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import trnsim.compiler.kernel_runner as kernel_runner
from trnsim import kernels
from trnsim.compiler.estimate import estimate
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import extrapolation, extrapolation_enabled
from trnsim.compiler.unpriced import is_unpriced, unpriced_ops, unpriced_outputs
from trnsim.hw import load_preset
from trnsim.nki.kernel import TensorSpec

SDPA = "aten.scaled_dot_product_attention.default"


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(256, 3 * 256, bias=False)
        self.out = torch.nn.Linear(256, 256, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = (t.reshape(b, s, 2, 128).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(a.transpose(1, 2).reshape(b, s, 256)) + x


def _run(monkeypatch, unpriced: bool) -> tuple[list, list[str]]:
    launched: list[str] = []
    real = kernel_runner.run_kernel

    def spy(kernel, *args, **kwargs):  # type: ignore[no-untyped-def]
        launched.append(kernel.name)
        return real(kernel, *args, **kwargs)

    monkeypatch.setattr("trnsim.compiler.lowering.context.run_kernel", spy)
    net = Block().to(torch.bfloat16).to("meta")
    x = torch.empty(2, 384, 256, dtype=torch.bfloat16, device="meta")
    if unpriced:
        with unpriced_ops({SDPA}):
            assert is_unpriced(SDPA)
            profile = estimate(net, (x,), target="trn2")
    else:
        profile = estimate(net, (x,), target="trn2")
    return profile.records, launched


def test_unpriced_attention_is_not_simulated_and_the_rest_is_unchanged(monkeypatch) -> None:
    full, launched_full = _run(monkeypatch, unpriced=False)
    fast, launched_fast = _run(monkeypatch, unpriced=True)
    assert "flash_attention" in launched_full and "flash_attention" not in launched_fast
    assert any(r.op == SDPA and r.kind == "kernel" for r in full)
    assert not any(r.op == SDPA and r.kind == "kernel" for r in fast)
    kept = [(r.op, r.kernel, r.device_us, r.flops, r.hbm_bytes) for r in full if r.op != SDPA]
    assert kept == [(r.op, r.kernel, r.device_us, r.flops, r.hbm_bytes) for r in fast if r.op != SDPA]
    assert not is_unpriced(SDPA)


def _t(*shape: int, dtype: str = "bfloat16") -> TensorSpec:
    return TensorSpec(shape, dtype)


# Attention with an explicit mask lowers to these; each rule must give what the kernel itself returns.
RULES = [
    (kernels.flash_attention, (_t(1, 4, 256, 64), _t(1, 2, 256, 64), _t(1, 2, 256, 64)), {"causal": True}),
    (kernels.batched_matmul, (_t(3, 200, 128), _t(3, 128, 300)), {}),
    (kernels.batched_matmul, (_t(2, 128, 64), _t(2, 64, 256)), {"out_dtype": "float32"}),
    (kernels.softmax, (_t(2, 4, 100, 300),), {}),
    (kernels.fused_chain, (_t(2, 100, 300), [("multiply", 0.5), ("add", _t(100, 300))]), {}),
    (kernels.fused_chain, (_t(2, 100, 300), [("exp", None)]), {"dtype": "float32"}),
]


@pytest.mark.parametrize(("kernel", "args", "kwargs"), RULES, ids=lambda v: getattr(v, "name", None))
def test_shape_rules_match_the_kernels_outputs(kernel, args, kwargs) -> None:
    out, _ = kernel_runner.run_kernel(kernel, args, kwargs, load_preset("trn2"), False, KernelCache(use_disk=False))
    rule = unpriced_outputs(kernel.name, args, kwargs)
    assert rule is not None
    assert (tuple(rule.shape), rule.dtype) == (tuple(out.shape), out.dtype)


def test_an_estimates_default_inherits_the_enclosing_extrapolation(monkeypatch) -> None:
    monkeypatch.delenv("TRNSIM_EXTRAPOLATE", raising=False)
    with extrapolation(True):
        with extrapolation(None):
            assert extrapolation_enabled()
        with extrapolation(False):
            assert not extrapolation_enabled()
    with extrapolation(None):
        assert not extrapolation_enabled()

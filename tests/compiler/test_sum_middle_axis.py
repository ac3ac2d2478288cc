"""A sum over a short middle axis (an MoE's top-k expert outputs [T, k, H] summed over k) is a chain of slice
adds in one streamed pass: values against eager PyTorch, and its device time below the transposing copy the
general path would pay before its own reduction (closed form: the DMA move of all of x)."""

from __future__ import annotations

import pytest
import torch

import trnsim
from trnsim.compiler.move_cost import move_cost
from trnsim.hw import load_preset


class SumMiddle(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1) * 1.0


def test_sum_over_a_short_middle_axis_is_slice_adds(rng) -> None:
    rows, k, hidden = int(rng.integers(3, 300)), int(rng.integers(2, 9)), 128 * int(rng.integers(4, 24))
    x = torch.from_numpy(rng.standard_normal((rows, k, hidden)).astype("float32"))
    exe = trnsim.compile(SumMiddle(), (x,))
    torch.testing.assert_close(exe(x), x.sum(dim=1), rtol=1e-5, atol=1e-5)
    prof = exe.profile
    kernels = [r.kernel for r in prof.records if r.op == "aten.sum.dim_IntList"]
    assert kernels == ["fused_chain"]  # one streamed pass over every slice
    assert not [r for r in prof.records if r.kind == "move"]
    relayout_us, _ = move_cost(load_preset("trn2"), x.numel() * 4, 4)  # the transposing copy's strided runs
    assert sum(r.device_us for r in prof.records if r.op == "aten.sum.dim_IntList") < relayout_us


def test_top8_expert_sum_at_deepseek_width_stays_on_the_device(rng) -> None:
    rows = int(rng.integers(100, 2048))
    x = torch.empty(rows, 8, 7168, device="meta")  # DeepSeek-V3's hidden: 8 fp32 slices need shorter DMA runs
    exe = trnsim.compile(SumMiddle(), (x,), mode="timing")
    exe(x)
    records = [r for r in exe.profile.records if r.op == "aten.sum.dim_IntList"]
    assert [r.kernel for r in records] == ["fused_chain"] and not exe.profile.host_fallback
    relayout_us, _ = move_cost(load_preset("trn2"), x.numel() * 4, 4)
    assert sum(r.device_us for r in records) < relayout_us


@pytest.mark.parametrize("shape", [(64, 40, 512), (64, 4, 8)])  # axis too long / runs too short: general path
def test_long_axes_and_short_runs_keep_the_transposing_path(shape: tuple[int, int, int]) -> None:
    x = torch.randn(*shape)
    exe = trnsim.compile(SumMiddle(), (x,))
    torch.testing.assert_close(exe(x), x.sum(dim=1), rtol=1e-4, atol=1e-4)
    assert "fused_chain" not in [r.kernel for r in exe.profile.records if r.op == "aten.sum.dim_IntList"]

"""Teach the compiler a new op: `torch.cumprod` has no built-in lowering (it runs on the host CPU with a
warning). `trnsim.register_lowering` adds or replaces an entry of the lowering table: here it replaces the
built-in `torch.cumsum` lowering (a VectorE scan) by the library matmul, cumsum(x, -1) = x @ U with U
upper-triangular ones on TensorE. Run: python examples/07_custom_lowering.py
"""

import warnings

import torch

import trnsim
from trnsim import kernels
from trnsim.compiler.lowering.context import LowerContext, Unsupported
from trnsim.errors import TrnsimWarning


class RunningMean(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype)
        return torch.cumsum(x, dim=-1) / steps


class RunningProduct(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumprod(x, dim=-1)


def cumsum_as_matmul(ctx: LowerContext, x: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """aten.cumsum.default(x, dim, dtype=None) on TensorE; other cases go back to the host."""
    if dim not in (-1, x.dim() - 1) or dtype not in (None, x.dtype):
        raise Unsupported(f"cumsum over dim {dim} with dtype {dtype}")
    n = x.shape[-1]
    upper = torch.triu(torch.ones(n, n, dtype=x.dtype, device=x.device))  # meta tensors in timing mode
    out = ctx.kernel(kernels.matmul, x.reshape(-1, n), upper)
    return out.reshape(x.shape)


def main() -> None:
    x = torch.randn(256, 128)
    model = RunningMean()
    expected = model(x)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrnsimWarning)
        missing = trnsim.compile(RunningProduct(), (x,))
        missing(x)
    for w in caught:
        if issubclass(w.category, TrnsimWarning):
            print("without a lowering:", w.message)
    print(f"  host fallback ops: {[r.op for r in missing.profile.host_fallback]}")

    before = trnsim.compile(model, (x,))
    before(x)
    print(f"built-in cumsum: kernels {sorted(before.profile.by_kernel())}, {before.profile.device_time_us:.1f} us")

    trnsim.register_lowering(torch.ops.aten.cumsum.default, cumsum_as_matmul)
    after = trnsim.compile(model, (x,))
    out = after(x)
    err = (out - expected).abs().max().item()
    print(f"with the lowering: max |error| vs eager {err:.2e}, host fallback ops: {after.profile.host_fallback}")
    assert err < 1e-3
    print(f"  kernels: {sorted(after.profile.by_kernel())}, device time {after.profile.device_time_us:.1f} us")


if __name__ == "__main__":
    main()

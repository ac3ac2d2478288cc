"""Convolutions, pooling and inference batch norm (torchvision-style CNNs) -> library kernels."""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported
from trnsim.compiler.lowering.table import registered


def _pair(v: Any) -> tuple[int, int]:
    v = list(v) if isinstance(v, list | tuple) else [v]
    return (int(v[0]), int(v[-1]))


@registered("aten.convolution.default")
def convolution(
    ctx: LowerContext,
    x: Any,
    w: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
) -> Any:
    if transposed or x.dim() != 4 or x.dtype not in KERNEL_DTYPES:
        raise Unsupported("only 2-D, non-transposed convolutions")
    return ctx.kernel(
        kernels.conv2d,
        x,
        w,
        bias,
        stride=_pair(stride),
        padding=_pair(padding),
        dilation=_pair(dilation),
        groups=int(groups),
    )


@registered("aten.max_pool2d_with_indices.default")
def max_pool2d_with_indices(
    ctx: LowerContext,
    x: Any,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Any:
    if ceil_mode or _pair(dilation) != (1, 1) or x.dim() != 4 or x.dtype not in KERNEL_DTYPES:
        raise Unsupported("ceil_mode / dilation")
    if ctx.output_used(1):
        raise Unsupported("pooling indices are used (training)")
    out = ctx.kernel(
        kernels.max_pool2d, x, _pair(kernel_size), stride=_pair(stride) if stride else None, padding=_pair(padding)
    )
    return out, None


@registered("aten.avg_pool2d.default")
def avg_pool2d(
    ctx: LowerContext,
    x: Any,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Any = None,
) -> Any:
    if ceil_mode or not count_include_pad or divisor_override is not None or x.dtype not in KERNEL_DTYPES:
        raise Unsupported("avg_pool2d options")
    return ctx.kernel(
        kernels.avg_pool2d, x, _pair(kernel_size), stride=_pair(stride) if stride else None, padding=_pair(padding)
    )


@registered("aten._adaptive_avg_pool2d.default", "aten.adaptive_avg_pool2d.default")
def adaptive_avg_pool2d(ctx: LowerContext, x: Any, output_size: Any) -> Any:
    if _pair(output_size) != (1, 1) or x.dtype not in KERNEL_DTYPES:
        raise Unsupported("adaptive pooling to other than 1x1")
    n, c, h, w = x.shape
    return ctx.kernel(kernels.reduce_last, x.reshape(n * c, h * w), "mean").reshape(n, c, 1, 1)


@registered("aten._native_batch_norm_legit_no_training.default")
def batch_norm_inference(
    ctx: LowerContext, x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any, momentum: float, eps: float
) -> Any:
    if x.dtype not in KERNEL_DTYPES or x.dim() < 2:
        raise Unsupported("batch norm layout")
    # Per-channel scale and shift come from parameters only: computed once, like the compiler's constant folding.
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    scale = torch.rsqrt(running_var.float() + eps)
    if weight is not None:
        scale = scale * weight.float()
    shift = -running_mean.float() * scale
    if bias is not None:
        shift = shift + bias.float()
    scale, shift = scale.to(x.dtype).reshape(shape), shift.to(x.dtype).reshape(shape)
    out = ctx.kernel(kernels.fused_chain, x, [("multiply", scale), ("add", shift)])
    empty = x.new_empty((0,))
    return out, empty, empty

"""Elementwise ATen ops -> the library's unary / binary / fused_chain kernels (VectorE / ScalarE)."""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported, numpy_dtype
from trnsim.compiler.lowering.table import LOWERINGS, registered

# ATen op -> activation name of the ISA (trnsim.isa.alu.ACTIVATIONS)
UNARY = {
    "aten.relu.default": "relu",
    "aten.silu.default": "silu",
    "aten.sigmoid.default": "sigmoid",
    "aten.tanh.default": "tanh",
    "aten.exp.default": "exp",
    "aten.log.default": "log",
    "aten.sqrt.default": "sqrt",
    "aten.rsqrt.default": "rsqrt",
    "aten.reciprocal.default": "reciprocal",
    "aten.neg.default": "negative",
    "aten.abs.default": "abs",
    "aten.sin.default": "sin",
    "aten.cos.default": "cos",
    "aten.erf.default": "erf",
}

# ATen op -> ALU op of the ISA (trnsim.isa.alu.BINARY_OPS); comparisons give 1.0 / 0.0 on chip
BINARY = {
    "aten.add.Tensor": "add",
    "aten.add.Scalar": "add",
    "aten.sub.Tensor": "subtract",
    "aten.sub.Scalar": "subtract",
    "aten.rsub.Scalar": "rsub",
    "aten.mul.Tensor": "multiply",
    "aten.mul.Scalar": "multiply",
    "aten.div.Tensor": "divide",
    "aten.div.Scalar": "divide",
    "aten.maximum.default": "maximum",
    "aten.minimum.default": "minimum",
    "aten.pow.Tensor_Scalar": "power",
    "aten.eq.Scalar": "equal",
    "aten.eq.Tensor": "equal",
    "aten.ne.Scalar": "not_equal",
    "aten.ne.Tensor": "not_equal",
    "aten.lt.Scalar": "less",
    "aten.lt.Tensor": "less",
    "aten.le.Scalar": "less_equal",
    "aten.le.Tensor": "less_equal",
    "aten.gt.Scalar": "greater",
    "aten.gt.Tensor": "greater",
    "aten.ge.Scalar": "greater_equal",
    "aten.ge.Tensor": "greater_equal",
}
COMPARISONS = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}


def _float_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype in KERNEL_DTYPES


def _operand(ctx: LowerContext, x: Any) -> Any:
    """A Python number for scalars and one-element constants (an immediate on chip), else the tensor."""
    if isinstance(x, bool | int | float):
        return float(x)  # the fused_chain kernel reads an int operand as an index into its tensor list
    if isinstance(x, torch.Tensor):
        if x.dim() == 0:
            if x.device.type == "meta":
                return 1.0  # the value does not change the instruction stream
            return float(x.item())
        if x.dtype not in KERNEL_DTYPES:
            raise Unsupported(f"dtype {x.dtype}")
        return x
    raise Unsupported(f"operand {type(x).__name__}")


def _unary(name: str) -> Any:
    def lower(ctx: LowerContext, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not _float_tensor(x) or x.dim() == 0:
            raise Unsupported("not a float tensor")
        return ctx.kernel(kernels.unary, x, name)

    lower.__name__ = f"lower_{name}"
    return lower


def gelu(ctx: LowerContext, x: torch.Tensor, approximate: str = "none") -> Any:
    if not _float_tensor(x):
        raise Unsupported("not a float tensor")
    return ctx.kernel(kernels.unary, x, "gelu" if approximate == "none" else "gelu_apprx_tanh")


def _binary(name: str) -> Any:
    def lower(ctx: LowerContext, a: Any, b: Any, alpha: Any = 1, **kwargs: Any) -> Any:
        if alpha != 1 or kwargs.get("rounding_mode") is not None:
            raise Unsupported("alpha / rounding_mode")
        if not (_float_tensor(a) or _float_tensor(b)):
            raise Unsupported("no float tensor operand")
        out_dtype = torch.result_type(a, b)
        if out_dtype not in KERNEL_DTYPES:
            raise Unsupported(f"result dtype {out_dtype}")
        x, y = _operand(ctx, a), _operand(ctx, b)
        op = name
        if op == "rsub":  # b - a
            x, y, op = y, x, "subtract"
        if op == "power" and isinstance(y, int | float) and float(y) == 2.0:
            return ctx.kernel(kernels.unary, x, "square", dtype=numpy_dtype(out_dtype))
        if not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor):
            raise Unsupported("two scalars")
        out = ctx.kernel(kernels.binary, x, y, op, dtype=numpy_dtype(out_dtype))
        if op in COMPARISONS:
            return out.to(torch.bool)
        return out

    lower.__name__ = f"lower_{name}"
    return lower


@registered("elementwise_chains.elementwise_chain")
def elementwise_chain(
    ctx: LowerContext, x: torch.Tensor, steps: list[tuple[str, Any, bool, dict[str, Any]]], out_dtype: torch.dtype
) -> Any:
    """A chain of elementwise ops in one pass (made by the elementwise-fusion pass): fused_chain kernel.

    steps: (aten op name, other operand or None, reverse, kwargs); casts only decide the result's dtype
    (intermediates stay on chip at fp32 or 16-bit precision, see kernels.elementwise).
    """
    if not _float_tensor(x) or x.dim() == 0:
        raise Unsupported("not a float tensor")
    chain = [_chain_step(ctx, *step) for step in steps if step[0] != "aten._to_copy.default"]
    if out_dtype not in KERNEL_DTYPES:
        raise Unsupported(f"result dtype {out_dtype}")
    return ctx.kernel(kernels.fused_chain, x, chain, dtype=numpy_dtype(out_dtype))


def _chain_step(
    ctx: LowerContext, name: str, other: Any, reverse: bool, kwargs: dict[str, Any]
) -> tuple[str, Any, bool]:
    """One (kernel op, operand, reverse) step of the fused_chain kernel for an ATen elementwise op."""
    if name == "aten.gelu.default":
        return ("gelu" if kwargs.get("approximate", "none") == "none" else "gelu_apprx_tanh", None, False)
    if name in UNARY:
        return (UNARY[name], None, False)
    op = BINARY.get(name)
    if op is None or op in COMPARISONS:
        raise Unsupported(f"{name} in an elementwise chain")
    y = _operand(ctx, other)
    if op == "rsub":  # rsub(a, b) = b - a
        op, reverse = "subtract", not reverse
    if op == "power":
        if reverse or not isinstance(y, float):
            raise Unsupported("power with a tensor exponent")
        if y == 2.0:
            return ("square", None, False)
    return (op, y, reverse)


def to_copy(ctx: LowerContext, x: torch.Tensor, *, dtype: torch.dtype | None = None, **kwargs: Any) -> Any:
    if dtype is None or dtype == x.dtype:
        raise Unsupported("not a cast")
    if not _float_tensor(x) or dtype not in KERNEL_DTYPES or x.dim() == 0:
        raise Unsupported("not a float cast")
    return ctx.kernel(kernels.unary, x, "identity", dtype=numpy_dtype(dtype))


for _op, _name in UNARY.items():
    LOWERINGS[_op] = _unary(_name)
for _op, _name in BINARY.items():
    LOWERINGS[_op] = _binary(_name)
LOWERINGS["aten.gelu.default"] = gelu
LOWERINGS["aten._to_copy.default"] = to_copy

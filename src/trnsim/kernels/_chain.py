"""Compiling an elementwise op chain into on-chip steps (one instruction each) for elementwise.py.

Scalar multiplies and adds fold into ScalarE's free `data * scale + bias` in front of an activation
function, other scalar ops pair up into two-op tensor_scalar instructions, and tensor operands become
tensor_tensor (or scalar_tensor_tensor when one scalar op can ride along).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trnsim.kernels._elementwise_layout import _Operand

# Scalar ops that compose into ScalarE's free `data * scale + bias`.
_AFFINE_OPS = ("add", "subtract", "multiply", "divide")


@dataclass(frozen=True)
class _Step:
    """One instruction of the chain for a block.

    kind: "act" (ScalarE function of data*scale+bias), "affine" (data*scale+bias on either engine),
    "alu" (VectorE tensor_scalar with up to two scalar ops), "row" (per-row [P, 1] operand) or
    "tensor" (tensor_tensor with a full operand; a scale or bias first makes it scalar_tensor_tensor).
    """

    kind: str
    op: str = ""
    scale: float = 1.0
    bias: float = 0.0
    alu: tuple[tuple[str, float, bool], ...] = ()
    operand: int = -1
    reverse: bool = False


def _affine(pending: list[tuple[str, float, bool]]) -> tuple[float, float] | None:
    """Compose scalar ops into value*scale + bias, or None if one of them is not affine."""
    scale, bias = 1.0, 0.0
    for op, c, reverse in pending:
        if op not in _AFFINE_OPS or (op == "divide" and (reverse or c == 0.0)):
            return None
        if op == "add":
            bias += c
        elif op == "subtract":
            scale, bias = (-scale, c - bias) if reverse else (scale, bias - c)
        elif op == "multiply":
            scale, bias = scale * c, bias * c
        else:
            scale, bias = scale / c, bias / c
    return scale, bias


def _compile(chain: list[tuple[str, Any, bool]], operands: list[_Operand]) -> list[_Step]:
    """Fold scalar ops into ScalarE's scale/bias or pair them in tensor_scalars; tensor ops stay as they are."""
    steps: list[_Step] = []
    pending: list[tuple[str, float, bool]] = []

    def flush() -> None:
        aff = _affine(pending)
        if aff is not None and aff != (1.0, 0.0):
            steps.append(_Step("affine", scale=aff[0], bias=aff[1]))
        elif aff is None:
            for i in range(0, len(pending), 2):
                steps.append(_Step("alu", alu=tuple(pending[i : i + 2])))
        pending.clear()

    for op, operand, reverse in chain:
        if operand is None:
            if op == "negative":
                pending.append(("multiply", -1.0, False))
            elif op not in ("copy", "identity"):
                aff = _affine(pending)
                if aff is None:
                    flush()
                    aff = (1.0, 0.0)
                pending.clear()
                steps.append(_Step("act", op, scale=aff[0], bias=aff[1]))
        elif isinstance(operand, int):
            aff = _affine(pending)
            if not operands[operand].per_row and aff is not None and (aff[0] == 1.0 or aff[1] == 0.0):
                # one pending scalar op rides along: (value op0 c) op1 tensor is one scalar_tensor_tensor
                pending.clear()
                steps.append(_Step("tensor", op, scale=aff[0], bias=aff[1], operand=operand, reverse=reverse))
            else:
                flush()
                kind = "row" if operands[operand].per_row else "tensor"
                steps.append(_Step(kind, op, operand=operand, reverse=reverse))
        else:
            pending.append((op, float(operand), reverse))
    flush()
    return steps or [_Step("affine")]  # an empty chain is a copy (with a cast)

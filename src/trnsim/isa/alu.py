"""The arithmetic the engines perform, by name: ALU binary ops and activation functions.

Engines compute in fp32 (trainium.md §3.3), so every function here takes and returns float32 arrays
(integer/bitwise ops take the raw integer values). Activation functions use exact math, as NKI's own
simulator does, not the hardware's piecewise-polynomial approximations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Array = np.ndarray
Binary = Callable[[Array, Array], Array]
Unary = Callable[[Array], Array]


def _erf(x: Array) -> Array:
    return torch.special.erf(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def _sigmoid(x: Array) -> Array:
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(np.float32)


def _softplus(x: Array) -> Array:
    return np.logaddexp(np.float32(0), x)


_SQRT_2_OVER_PI = np.float32(np.sqrt(2.0 / np.pi))
_INV_SQRT_2 = np.float32(1.0 / np.sqrt(2.0))
_INV_SQRT_2PI = np.float32(1.0 / np.sqrt(2.0 * np.pi))


def _gelu(x: Array) -> Array:
    return 0.5 * x * (1.0 + _erf(x * _INV_SQRT_2))


def _gelu_dx(x: Array) -> Array:
    cdf = 0.5 * (1.0 + _erf(x * _INV_SQRT_2))
    return cdf + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _gelu_tanh(x: Array) -> Array:
    return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + np.float32(0.044715) * x * x * x)))


def _gelu_sigmoid_dx(x: Array) -> Array:
    # d/dx [x * sigmoid(1.702 x)] = s + 1.702 x s (1 - s)
    s = _sigmoid(np.float32(1.702) * x)
    return s + np.float32(1.702) * x * s * (1.0 - s)


def _abs_max(a: Array, b: Array) -> Array:
    # NKI docs (nl.abs_max): the signed input with the larger magnitude (abs_max(-5, 3) = -5); y on ties
    return np.where(np.abs(a) > np.abs(b), a, b)


def _abs_min(a: Array, b: Array) -> Array:
    # NKI docs (nl.abs_min): the signed input with the smaller magnitude; y on ties
    return np.where(np.abs(a) < np.abs(b), a, b)


def _silu_dx(x: Array) -> Array:
    s = _sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


# Activation functions (ScalarE `activation` ops and the unary math of nki.language).
ACTIVATIONS: dict[str, Unary] = {
    "copy": lambda x: x,
    "identity": lambda x: x,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: np.float32(1.0) / np.sqrt(x),
    "reciprocal": lambda x: np.float32(1.0) / x,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "arctan": np.arctan,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "gelu": _gelu,
    "gelu_dx": _gelu_dx,
    "gelu_apprx_tanh": _gelu_tanh,
    "gelu_apprx_sigmoid": lambda x: x * _sigmoid(np.float32(1.702) * x),
    "gelu_apprx_sigmoid_dx": _gelu_sigmoid_dx,
    "silu": lambda x: x * _sigmoid(x),
    "silu_dx": _silu_dx,
    "softplus": _softplus,
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "erf": _erf,
    "erf_dx": lambda x: np.float32(2.0 / np.sqrt(np.pi)) * np.exp(-x * x),
    "square": np.square,
    "abs": np.abs,
    "sign": np.sign,
    "ceil": np.ceil,
    "floor": np.floor,
    "trunc": np.trunc,
    "negative": np.negative,
}


def _int_op(fn: Binary) -> Binary:
    # Bitwise ops act on raw integer bits, so they take and return integers (never through fp32).
    def wrapped(a: Array, b: Array) -> Array:
        return fn(np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64))

    return wrapped


def _cmp(fn: Binary) -> Binary:
    def wrapped(a: Array, b: Array) -> Array:
        return fn(a, b).astype(np.float32)

    return wrapped


def _logical(fn: Binary) -> Binary:
    def wrapped(a: Array, b: Array) -> Array:
        return fn(a != 0, b != 0).astype(np.float32)

    return wrapped


# ALU binary ops (tensor_tensor, tensor_scalar, reductions).
BINARY_OPS: dict[str, Binary] = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "power": np.power,
    "fmod": np.fmod,
    "mod": np.mod,
    "equal": _cmp(np.equal),
    "not_equal": _cmp(np.not_equal),
    "greater": _cmp(np.greater),
    "greater_equal": _cmp(np.greater_equal),
    "less": _cmp(np.less),
    "less_equal": _cmp(np.less_equal),
    "logical_and": _logical(np.logical_and),
    "logical_or": _logical(np.logical_or),
    "logical_xor": _logical(np.logical_xor),
    "bitwise_and": _int_op(np.bitwise_and),
    "bitwise_or": _int_op(np.bitwise_or),
    "bitwise_xor": _int_op(np.bitwise_xor),
    "left_shift": _int_op(np.left_shift),
    "right_shift": _int_op(np.right_shift),
    "abs_max": _abs_max,
    "abs_min": _abs_min,
}

# Ops on raw integer bits: operands are read as integers, not through fp32.
INT_OPS = frozenset({"bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift"})

# The ALU's unary arithmetic ops (NKI docs, "Supported Math Operators for NKI ISA", "Arithmetic Unary"):
# tensor_scalar / tensor_scalar_reduce take them as op0/op1 with the operand None or 0, which they ignore.
UNARY_ALU_OPS: dict[str, Unary] = {k: ACTIVATIONS[k] for k in ("abs", "square", "relu", "rsqrt", "reciprocal")}
# Every op a tensor_scalar-style slot (op0/op1 with a scalar or [P, 1] operand) takes.
SCALAR_SLOT_OPS: dict[str, object] = {**BINARY_OPS, **UNARY_ALU_OPS}

# Ops legal as reductions (trainium.md §3.3) and their numpy reduction.
REDUCE_OPS: dict[str, Callable[..., Array]] = {
    "add": np.add.reduce,
    "multiply": np.multiply.reduce,
    "maximum": np.maximum.reduce,
    "minimum": np.minimum.reduce,
    "logical_and": lambda a, axis, keepdims: np.logical_and.reduce(a != 0, axis=axis, keepdims=keepdims),
    "logical_or": lambda a, axis, keepdims: np.logical_or.reduce(a != 0, axis=axis, keepdims=keepdims),
    "logical_xor": lambda a, axis, keepdims: np.logical_xor.reduce(a != 0, axis=axis, keepdims=keepdims),
    "bitwise_and": lambda a, axis, keepdims: np.bitwise_and.reduce(a.astype(np.int64), axis=axis, keepdims=keepdims),
    "bitwise_or": lambda a, axis, keepdims: np.bitwise_or.reduce(a.astype(np.int64), axis=axis, keepdims=keepdims),
    "bitwise_xor": lambda a, axis, keepdims: np.bitwise_xor.reduce(a.astype(np.int64), axis=axis, keepdims=keepdims),
}

# Ops ScalarE's tensor_scalar supports on NC-v3 (trainium.md §3.6: "only mul+add, mul, or add").
SCALAR_ENGINE_ALU_OPS = frozenset({"add", "multiply"})
# Ops that TensorE-free engines run at 1 element/cycle with both inputs bf16 (perf mode rules).
FAST_BF16_TT_OPS = frozenset({"add", "multiply", "subtract"})

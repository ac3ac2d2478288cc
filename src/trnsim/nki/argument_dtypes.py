"""The dtypes a kernel argument may have in HBM, checked where arrays enter a kernel launch.

A value computed in a type other than the one the user gave is a silent wrong answer, so an array of a dtype
NKI has no type for is refused with the list of those it has, and 64-bit integers are narrowed only when
every value survives the engines' fp32 arithmetic exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError
from trnsim.nki.context import user_location

# What an HBM argument may hold: NKI's own dtypes, and numpy bool (NKI's bool_). Anything else (complex,
# float64, 64-bit integers, objects) has no NKI type; computing it in another type would give wrong numbers
# without a word, so it is refused here rather than converted.
_KERNEL_DTYPE_NAMES = (
    "float32",
    "bfloat16",
    "float16",
    "float8_e4m3",
    "float8_e4m3fn",
    "float8_e5m2",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    # MX: packed x4 data (four fp8/fp4 values per element, raw bits) and e8m0 scales (nkilib passes them)
    "float8_e4m3fn_x4",
    "float8_e5m2_x4",
    "float4_e2m1fn_x4",
    "float8_e8m0fnu",
)
_KERNEL_DTYPES = frozenset(dtypes.resolve(n) for n in _KERNEL_DTYPE_NAMES) | {np.dtype(np.bool_)}
# 64-bit integers (torch's default for ids and indices) are narrowed to 32 bits, as the Neuron compiler does
# on device, but only when every value is within +-2^24: the engines compute in fp32, which holds those
# integers exactly, so no number a kernel computes from them differs from int64 arithmetic (barring overflow).
_NARROWED = {np.dtype(np.int64): np.dtype(np.int32), np.dtype(np.uint64): np.dtype(np.uint32)}
_EXACT_INT_LIMIT = 1 << 24  # largest integer magnitude fp32 represents with every integer below it


def _unsupported_dtype(dtype: np.dtype[Any], index: int | str, why: str = ", which NKI has no type for") -> DtypeError:
    allowed = ", ".join(_KERNEL_DTYPE_NAMES)
    return DtypeError(
        f"kernel argument {index} is {dtype}{why}; kernel arguments may be {allowed} "
        "(or bool); convert it first, e.g. x.astype(np.float32)",
        user_location(),
        rule="argument-dtype",
    )


def kernel_dtype(dtype: np.dtype[Any], index: int | str) -> np.dtype[Any]:
    """The dtype an argument of `dtype` gets in HBM (64-bit ints narrowed), or a DtypeError."""
    if dtype in _NARROWED:
        return _NARROWED[dtype]
    if dtype not in _KERNEL_DTYPES:
        raise _unsupported_dtype(dtype, index)
    return dtype


def exact_kernel_array(data: np.ndarray, index: int | str) -> np.ndarray:
    """`data` in an NKI dtype with every value unchanged, or a DtypeError saying what is allowed."""
    target = kernel_dtype(data.dtype, index)
    if target == data.dtype:
        return data
    if data.size and (data.min() < -_EXACT_INT_LIMIT or data.max() > _EXACT_INT_LIMIT):
        raise _unsupported_dtype(
            data.dtype,
            index,
            f" with values in [{data.min()}, {data.max()}] (64-bit integers are accepted, as {target}, only "
            "within +-2^24, where the engines' fp32 arithmetic is exact)",
        )
    return data.astype(target)

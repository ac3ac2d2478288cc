"""Dtypes of the machine: names, numpy types (bf16/fp8 via ml_dtypes) and sizes.

NKI dtype objects are plain numpy dtypes here, so `nl.bfloat16 == np.dtype(ml_dtypes.bfloat16)`.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from trnsim.errors import DtypeError

bfloat16 = np.dtype(ml_dtypes.bfloat16)
# NKI's float8_e4m3 is the IEEE-style e4m3 of NC-v2/v3 (max 240, has inf); float8_e4m3fn (max 448, no inf)
# is a separate, "extended range" type that only NC-v4 (Trn3) supports natively.
float8_e4m3 = np.dtype(ml_dtypes.float8_e4m3)
float8_e4m3fn = np.dtype(ml_dtypes.float8_e4m3fn)
float8_e5m2 = np.dtype(ml_dtypes.float8_e5m2)
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
# tfloat32 is stored as fp32; its reduced mantissa only matters inside the PE array.
tfloat32 = np.dtype(np.float32)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int16 = np.dtype(np.int16)
uint16 = np.dtype(np.uint16)
int32 = np.dtype(np.int32)
uint32 = np.dtype(np.uint32)
bool_ = np.dtype(np.uint8)  # NKI stores bool as uint8

_BY_NAME: dict[str, np.dtype[Any]] = {
    "bfloat16": bfloat16,
    "bf16": bfloat16,
    "float8_e4m3": float8_e4m3,
    "float8_e4m3fn": float8_e4m3fn,
    "fp8": float8_e4m3,
    "fp8_e4m3": float8_e4m3,
    "float8_e5m2": float8_e5m2,
    "fp8_e5m2": float8_e5m2,
    "float16": float16,
    "fp16": float16,
    "half": float16,
    "float32": float32,
    "fp32": float32,
    "float": float32,
    "tfloat32": tfloat32,
    "int8": int8,
    "uint8": uint8,
    "int16": int16,
    "uint16": uint16,
    "int32": int32,
    "uint32": uint32,
    "bool": bool_,
}

FP8_DTYPES = frozenset({float8_e4m3, float8_e4m3fn, float8_e5m2})
LOW_PRECISION_FLOATS = frozenset({bfloat16, float16})


def resolve(dtype: Any) -> np.dtype[Any]:
    """Turn a dtype name, numpy dtype, ml_dtypes type or torch dtype into a numpy dtype."""
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.").removeprefix("np.")
        if key in _BY_NAME:
            return _BY_NAME[key]
        raise DtypeError(f"unknown dtype {dtype!r}; known: {', '.join(sorted(set(_BY_NAME)))}")
    torch_name = getattr(dtype, "__module__", "") == "torch" or type(dtype).__name__ == "dtype"
    if torch_name and str(dtype).startswith("torch."):
        return resolve(str(dtype))
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise DtypeError(f"unknown dtype {dtype!r}") from exc


def is_float(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "f" or dtype in FP8_DTYPES or dtype == bfloat16


def name(dtype: np.dtype[Any]) -> str:
    """The NKI spelling of a dtype (bfloat16, float8_e4m3, ...)."""
    if dtype == float8_e4m3:
        return "float8_e4m3"
    return str(dtype)


def poison_value(dtype: np.dtype[Any]) -> float:
    """What uninitialised memory reads as: NaN for floats, 4 for integers (as NKI's simulator does)."""
    return float("nan") if is_float(dtype) else 4

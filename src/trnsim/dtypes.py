"""Dtypes of the machine: names, numpy types (bf16/fp8 via ml_dtypes) and sizes.

NKI dtype objects are plain numpy dtypes here, so `nl.bfloat16 == np.dtype(ml_dtypes.bfloat16)`.
"""

from __future__ import annotations

from functools import cache
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
# The MX shared-scale type: a power of two 2^(e-127), unsigned, 0xFF is NaN (OCP MX spec).
float8_e8m0fnu = np.dtype(ml_dtypes.float8_e8m0fnu)
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

# Packed MX element types of NC-v4's nc_matmul_mx / quantize_mx: one 32-bit (fp8) or 16-bit (fp4) element holds
# four values, element 0 in the lowest bits (NKI docs, nki.language dtypes). They are one-field structured dtypes
# over the raw bits, so they stay distinct from uint32/uint16 (kernels key dicts by them) and no arithmetic can
# treat them as numbers by accident; pack_x4/unpack_x4 convert.
# The fp8 ones hold their 32 bits in a float32 field: a host-side cast to float32 (np.asarray(out, np.float32))
# is then a copy of the bits, which nki-library's tests expect of NKI's simulator (test_mxfp_load's golden is the
# packed words `.view(np.float32)`, and simulation_setup casts each output to its golden's dtype), and a float32
# copy through an engine keeps every bit (a uint32 field read as float32 would round words above 2**24).
float8_e4m3fn_x4 = np.dtype([("float8_e4m3fn_x4", "<f4")])
float8_e5m2_x4 = np.dtype([("float8_e5m2_x4", "<f4")])
# fp4 keeps a uint16 field: as float16 bits, ordinary fp4 words (e.g. four values 6, -4, ...) would be NaNs.
float4_e2m1fn_x4 = np.dtype([("float4_e2m1fn_x4", "<u2")])
PACKED_X4: dict[np.dtype[Any], np.dtype[Any]] = {  # packed type -> the type of each of its four values
    float8_e4m3fn_x4: float8_e4m3fn,
    float8_e5m2_x4: float8_e5m2,
    float4_e2m1fn_x4: np.dtype(ml_dtypes.float4_e2m1fn),
}

_BY_NAME: dict[str, np.dtype[Any]] = {
    "bfloat16": bfloat16,
    "bf16": bfloat16,
    "float8_e4m3": float8_e4m3,
    "float8_e4m3fn": float8_e4m3fn,
    "fp8": float8_e4m3,
    "fp8_e4m3": float8_e4m3,
    "float8_e5m2": float8_e5m2,
    "float8_e8m0fnu": float8_e8m0fnu,
    "float8_e4m3fn_x4": float8_e4m3fn_x4,
    "float8_e5m2_x4": float8_e5m2_x4,
    "float4_e2m1fn_x4": float4_e2m1fn_x4,
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

FP8_DTYPES = frozenset({float8_e4m3, float8_e4m3fn, float8_e5m2, float8_e8m0fnu})
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


def to_float32(values: np.ndarray) -> np.ndarray:
    """`values.astype(np.float32)`; bfloat16 by moving its bits into the upper half of each float32 (the same bits,
    every one of the 65536 codes checked, 2.5x faster than ml_dtypes' per-element cast)."""
    if values.dtype == bfloat16:
        out = np.empty(values.shape, dtype=np.uint32)
        np.left_shift(values.view(np.uint16), 16, out=out, dtype=np.uint32)
        return out.view(np.float32)
    return values.astype(np.float32)


def is_float(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "f" or dtype in FP8_DTYPES or dtype == bfloat16


def is_packed(dtype: np.dtype[Any]) -> bool:
    """One of the 4-packed MX types (float8_e4m3fn_x4, float8_e5m2_x4, float4_e2m1fn_x4)."""
    return dtype in PACKED_X4


def unpack_x4(packed: np.ndarray, dtype: Any) -> np.ndarray:
    """The four values of each packed element, as `dtype`'s value type: the last dim grows 4x.

    `packed` holds the raw bits (the packed dtype itself or the same-size unsigned integer).
    """
    dt = resolve(dtype)
    if dt not in PACKED_X4:
        raise DtypeError(f"unpack_x4 takes a packed x4 dtype, got {name(dt)}; packed: {_packed_names()}")
    value_type = PACKED_X4[dt]
    bits = np.ascontiguousarray(packed).view(f"<u{dt.itemsize}")
    if dt.itemsize == 4:  # four fp8 bytes, little-endian
        return bits.view(np.uint8).view(value_type).reshape(*bits.shape[:-1], bits.shape[-1] * 4)
    nibbles = np.stack([(bits >> (4 * i)) & 0xF for i in range(4)], axis=-1).astype(np.uint8)
    return nibbles.view(value_type).reshape(*bits.shape[:-1], bits.shape[-1] * 4)


@cache
def _x4_table(dt: np.dtype[Any]) -> np.ndarray:
    """float32 values of every packed word of an fp4 x4 type ([65536, 4]) or of every byte of an fp8 one ([256])."""
    value_type = PACKED_X4[dt]
    if dt.itemsize == 4:
        return np.arange(256, dtype=np.uint8).view(value_type).astype(np.float32)
    words = np.arange(1 << 16, dtype=np.uint32)
    nibbles = np.stack([(words >> (4 * i)) & 0xF for i in range(4)], axis=-1).astype(np.uint8)
    return nibbles.view(value_type).astype(np.float32)


def unpack_x4_float32(packed: np.ndarray, dtype: Any) -> np.ndarray:
    """`unpack_x4(packed, dtype).astype(np.float32)`, the same bits, by one table lookup per word (fp4) or byte
    (fp8) instead of ml_dtypes' per-element conversion (3-9x faster on [128, 256] tiles)."""
    dt = resolve(dtype)
    if dt not in PACKED_X4:
        raise DtypeError(f"unpack_x4 takes a packed x4 dtype, got {name(dt)}; packed: {_packed_names()}")
    bits = np.ascontiguousarray(packed).view(f"<u{dt.itemsize}")
    if dt.itemsize == 4:
        return np.take(_x4_table(dt), bits.view(np.uint8)).reshape(*bits.shape[:-1], bits.shape[-1] * 4)
    return np.take(_x4_table(dt), bits, axis=0).reshape(*bits.shape[:-1], bits.shape[-1] * 4)


def pack_x4(values: np.ndarray, dtype: Any) -> np.ndarray:
    """Round `values` to the packed type's value type and pack each run of four into one element."""
    dt = resolve(dtype)
    if dt not in PACKED_X4:
        raise DtypeError(f"pack_x4 takes a packed x4 dtype, got {name(dt)}; packed: {_packed_names()}")
    v = np.asarray(values)
    if v.shape[-1] % 4:
        raise DtypeError(f"pack_x4 needs a last dim that is a multiple of 4, got shape {list(v.shape)}")
    narrow = np.ascontiguousarray(v.astype(PACKED_X4[dt])).view(np.uint8)
    groups = narrow.reshape(*v.shape[:-1], v.shape[-1] // 4, 4)
    if dt.itemsize == 4:
        return np.ascontiguousarray(groups).view("<u4").reshape(groups.shape[:-1]).view(dt)
    word = np.zeros(groups.shape[:-1], dtype="<u2")
    for i in range(4):
        word |= (groups[..., i].astype("<u2") & 0xF) << (4 * i)
    return word.view(dt)


def _packed_names() -> str:
    return ", ".join(name(d) for d in PACKED_X4)


def name(dtype: np.dtype[Any]) -> str:
    """The NKI spelling of a dtype (bfloat16, float8_e4m3, ...)."""
    if dtype == float8_e4m3:
        return "float8_e4m3"
    if dtype.names:  # the packed x4 types carry their NKI name as their one field
        return dtype.names[0]
    return str(dtype)


def poison_value(dtype: np.dtype[Any]) -> float:
    """What uninitialised memory reads as: NaN for floats, 4 for integers (as NKI's simulator does)."""
    return float("nan") if is_float(dtype) else 4

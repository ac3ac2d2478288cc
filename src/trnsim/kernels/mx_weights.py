"""MX weights as the MX GEMM kernels (mx_matmul.py) read them from HBM: quantised once, offline, on the host.

MX serving converts each weight matmul's W once, ahead of time, so the kernels never quantise it. The layout is
K-major and packs four consecutive contraction values into one x4 element:

- packed [..., K / 4, N] (raw bits: uint32 for the fp8 element types, uint16 for fp4): element (r, n) holds
  W[4r .. 4r + 3, n]. A K group of 512 values is 128 consecutive rows, i.e. one [128, N] tile whose partition
  p holds K values 4p .. 4p + 3: the layout nc_matmul_mx contracts over (partitions x 4 packed values).
- scales [..., K / 32, N] uint8 (biased e8m0 exponents): row j holds the block scale of K values 32j .. 32j + 31
  of each column, i.e. of 8 consecutive packed rows (OCP MX v1.0: 32 consecutive values per block).

The block scale is quantize_mx's (isa/instructions/quantize_mx.py, NKI 0.5.0's rule), so weights and the
activations the kernel quantises on chip use one rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError
from trnsim.isa.instructions import mx_format as mx
from trnsim.isa.instructions import quantize_mx as quantize_record

# MX weight formats by their packed NKI type name (the kernels' `w_dtype` argument)
WEIGHT_FORMATS = ("float8_e4m3fn_x4", "float8_e5m2_x4", "float4_e2m1fn_x4")
K_GROUP = mx.QUADRANT * mx.VALUES_PER_PACKED * 4  # 512: K values one nc_matmul_mx contracts (128 partitions x 4)
K_ALIGN = mx.QUADRANT * mx.VALUES_PER_PACKED  # 128: MX tiles take whole 32-partition quadrants of packed rows
SCALE_GROUP = mx.GROUP_PARTITIONS * mx.VALUES_PER_PACKED  # 32 values per e8m0 scale


def packed_dtype(w_dtype: Any) -> np.dtype[Any]:
    """The packed x4 dtype named by `w_dtype` (a name in WEIGHT_FORMATS or the dtype), or a DtypeError."""
    try:
        dt = dtypes.resolve(w_dtype)
    except DtypeError:
        dt = None
    if dt is None or dtypes.name(dt) not in WEIGHT_FORMATS:
        raise DtypeError(f"MX weight dtype {w_dtype!r} is not one of {', '.join(WEIGHT_FORMATS)}")
    return dt


def raw_dtype(w_dtype: Any) -> np.dtype[Any]:
    """The unsigned integer type a packed weight travels as in HBM (uint32 for fp8 x4, uint16 for fp4 x4)."""
    return np.dtype(f"<u{packed_dtype(w_dtype).itemsize}")


def quantize_weight(w: np.ndarray, w_dtype: Any = "float8_e4m3fn_x4") -> tuple[np.ndarray, np.ndarray]:
    """W [K, N] (or stacked [G, K, N]) -> (packed [.., K / 4, N] raw bits, scales [.., K / 32, N] uint8)."""
    dt = packed_dtype(w_dtype)
    w = np.asarray(w, dtype=np.float32)
    if w.ndim not in (2, 3) or w.shape[-2] % SCALE_GROUP:
        raise ShapeMismatchError(
            f"quantize_weight takes W [K, N] or [G, K, N] with K a multiple of {SCALE_GROUP}, got {list(w.shape)}"
        )
    if w.ndim == 3:
        parts = [quantize_weight(g, dt) for g in w]
        return np.stack([p for p, _ in parts]), np.stack([s for _, s in parts])
    k, n = w.shape
    # rows r = K / 4 on the partitions, (n, q) on the free axis: src[r, 4n + q] = W[4r + q, n], so that
    # quantize's groups of 8 partitions x 4 values are 32 consecutive K values of one column
    src = w.reshape(k // 4, 4, n).transpose(0, 2, 1).reshape(k // 4, 4 * n)
    values, biased = quantize_record.quantize(src, dtypes.PACKED_X4[dt])
    packed = dtypes.pack_x4(values, dt).reshape(k // 4, n)
    return packed.view(raw_dtype(dt)), biased.astype(np.uint8)


def dequantize_weight(packed: np.ndarray, scales: np.ndarray, w_dtype: Any = "float8_e4m3fn_x4") -> np.ndarray:
    """The values [K, N] (float32) that (packed, scales) of quantize_weight stand for."""
    dt = packed_dtype(w_dtype)
    rows, n = packed.shape
    values = dtypes.unpack_x4(np.ascontiguousarray(packed).view(dt), dt).astype(np.float32)  # [rows, 4 n]
    values = values.reshape(rows, n, 4).transpose(0, 2, 1).reshape(4 * rows, n)
    factors = np.repeat(mx.scale_factors(scales), SCALE_GROUP, axis=0)
    return values * factors

"""The OCP MX format as NC-v4 uses it: 32-element groups of 8 partitions x 4 packed values, e8m0 scales.

Shared by the nc_matmul_mx and quantize_mx records (not a record itself). Scale tiles use the compact
layout: one scale row per 8 data partitions, one column per packed element ([P // 8, F]), as the NKI
MX deep-dive's golden model does with `use_contiguous_scale=True`; the hardware's quadrant-spread scale
layout (each 32-partition quadrant's 4 scale rows at the quadrant's start) is not modelled.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.isa.operand import SBUF, Call, Operand

GROUP_PARTITIONS = 8  # a scale group spans 8 partitions x one packed element (4 values) = 32 values
VALUES_PER_PACKED = 4  # values in one x4-packed element (float8_*_x4, float4_e2m1fn_x4)
QUADRANT = 32  # MX data tiles span whole 32-partition quadrants
E8M0_BIAS = 127
E8M0_MAX_BIASED = 254  # 0xFF is NaN
SCALE_DTYPES = (dtypes.float8_e8m0fnu, dtypes.uint8)
# Largest unbiased exponent of each MX element type (NKI docs, nki.isa.quantize_mx: 8 for e4m3fn, 15 for e5m2).
MAX_EXPONENT: dict[np.dtype[Any], int] = {
    dtypes.float8_e4m3fn: 8,
    dtypes.float8_e5m2: 15,
    np.dtype(ml_dtypes.float4_e2m1fn): 2,
}


def scale_factors(biased: np.ndarray) -> np.ndarray:
    """2^(e - 127) of each biased e8m0 exponent (uint8 storage of float8_e8m0fnu or plain uint8)."""
    return np.ldexp(np.float32(1.0), biased.astype(np.int32) - E8M0_BIAS).astype(np.float32)


def biased_exponents(raw: np.ndarray) -> np.ndarray:
    """A scale tile's stored values as biased exponents (float8_e8m0fnu bits or uint8 values)."""
    return np.ascontiguousarray(raw).view(np.uint8) if raw.dtype.itemsize == 1 else raw.astype(np.uint8)


def expand_scales(scale: np.ndarray, partitions: int) -> np.ndarray:
    """[P // 8, F] scale factors -> [P, F, 1]: each applies to its 8 partitions x 4 packed values."""
    return np.repeat(scale, GROUP_PARTITIONS, axis=0)[:partitions, :, None]


def require_mx_target(call: Call, what: str, available: bool) -> None:
    if not available:
        raise UsageError(
            f"{what} needs NeuronCore-v4 or newer (MX formats); this target is NeuronCore-v{call.core.nc_version}",
            call.location,
            rule="mx-target",
        )


def require_sbuf(t: Operand, what: str, loc: str) -> None:
    if t.buffer != SBUF:
        raise UsageError(f"{what} {t} must be in SBUF, it is in {t.buffer.upper()}", loc, rule="buffer")


def require_quadrants(t: Operand, what: str, loc: str) -> None:
    """The partition size is a multiple of 32, at most 128."""
    if t.partitions % QUADRANT or not 0 < t.partitions <= 4 * QUADRANT:
        raise TileShapeError(
            f"{what} {t} has {t.partitions} partitions; MX tiles take a multiple of {QUADRANT} up to 128",
            loc,
            rule="mx-partitions",
        )


def check_scale(scale: Operand, data: Operand, what: str, loc: str) -> None:
    """A float8_e8m0fnu/uint8 SBUF tile of [P // 8, F] for data [P, F] (packed elements)."""
    require_sbuf(scale, what, loc)
    if scale.dtype not in SCALE_DTYPES:
        raise DtypeError(
            f"{what} must be float8_e8m0fnu or uint8, got {dtypes.name(scale.dtype)}", loc, rule="mx-dtype"
        )
    want = (data.partitions // GROUP_PARTITIONS, data.free)
    if (scale.partitions, scale.free) != want:
        raise ShapeMismatchError(
            f"{what} must be [{want[0]}, {want[1]}] (one scale per 8 partitions x 1 packed element of {data}), "
            f"got {list(scale.shape)}",
            loc,
            rule="mx-scale-shape",
        )

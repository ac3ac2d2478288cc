"""The OCP MX format as NC-v4 uses it: 32-element groups of 8 partitions x 4 packed values, e8m0 scales.

Shared by the nc_matmul_mx and quantize_mx records (not a record itself). A scale tile has one column per
packed element and one scale row per 32-value group (8 data partitions). Two row layouts are accepted:
- the hardware's: a group's scale stays in the 32-partition quadrant its data comes from, at the quadrant's
  start, so group g sits at tile partition (g // 4) * 32 + g % 4 and a tile for data spanning several
  quadrants is oversized ([P, F]; NKI MX deep-dive, "Scale Tensor"; Trainium3 arch guide). A view starting
  at partition 4, 8 or 12 packs a second tensor's scales into the same allocation (deep-dive, "packed scale").
- the compact [P // 8, F] of the deep-dive's golden model (`use_contiguous_scale=True`), for data over more
  than one quadrant with a scale tile of exactly P // 8 partitions. For data within one quadrant both agree.
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
SCALE_ROWS_PER_QUADRANT = QUADRANT // GROUP_PARTITIONS  # a quadrant's 4 groups keep their scales at its start
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
    """2^(e - 127) of each biased e8m0 exponent (uint8 storage of float8_e8m0fnu or plain uint8); 0xFF is NaN
    (OCP MX spec: e8m0 has no infinity), so a scale never read as written turns its group's values to NaN."""
    codes = biased.astype(np.int32)
    factors = np.ldexp(np.float32(1.0), codes - E8M0_BIAS).astype(np.float32)
    factors[codes > E8M0_MAX_BIASED] = np.nan
    return factors


def biased_exponents(raw: np.ndarray) -> np.ndarray:
    """A scale tile's stored values as biased exponents (float8_e8m0fnu bits or uint8 values)."""
    return np.ascontiguousarray(raw).view(np.uint8) if raw.dtype.itemsize == 1 else raw.astype(np.uint8)


def expand_scales(scale: np.ndarray, partitions: int) -> np.ndarray:
    """[P // 8, F] scale factors -> [P, F, 1]: each applies to its 8 partitions x 4 packed values."""
    return np.repeat(scale, GROUP_PARTITIONS, axis=0)[:partitions, :, None]


def scale_rows(data_partitions: int, scale_partitions: int) -> np.ndarray | None:
    """The scale-tile partition of each of the data's P // 8 groups, or None when the tile fits no layout.

    The hardware layout wins whenever the tile is tall enough for it; a tile of exactly P // 8 partitions for
    data over several quadrants is read as the compact layout.
    """
    groups = np.arange(data_partitions // GROUP_PARTITIONS)
    spread = (groups // SCALE_ROWS_PER_QUADRANT) * QUADRANT + groups % SCALE_ROWS_PER_QUADRANT
    if groups.size and scale_partitions > spread[-1]:
        return spread
    if scale_partitions == groups.size:
        return groups
    return None


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
    """A float8_e8m0fnu/uint8 SBUF tile of F columns for data [P, F] (packed elements) in one of the row layouts."""
    require_sbuf(scale, what, loc)
    if scale.dtype not in SCALE_DTYPES:
        raise DtypeError(
            f"{what} must be float8_e8m0fnu or uint8, got {dtypes.name(scale.dtype)}", loc, rule="mx-dtype"
        )
    groups = data.partitions // GROUP_PARTITIONS
    if scale.free != data.free or scale_rows(data.partitions, scale.partitions) is None:
        last = max(groups - 1, 0)
        spread = last // SCALE_ROWS_PER_QUADRANT * QUADRANT + last % SCALE_ROWS_PER_QUADRANT + 1
        layouts = (
            f"at least [{groups}, {data.free}]"
            if data.partitions <= QUADRANT
            else (
                f"at least [{spread}, {data.free}] (each quadrant's 4 scale rows at its start) or exactly "
                f"[{groups}, {data.free}] (compact)"
            )
        )
        raise ShapeMismatchError(
            f"{what} must be {layouts}: one scale per 8 partitions x 1 packed element of {data}, "
            f"got {list(scale.shape)}",
            loc,
            rule="mx-scale-shape",
        )

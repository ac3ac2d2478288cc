"""Stand-in for the `neuron_dtypes` helpers nki-library's tests use, over ml_dtypes and trnsim.dtypes."""

from typing import Any

import ml_dtypes
import numpy as np

from trnsim import dtypes as _d

bfloat16 = _d.bfloat16
float8_e4m3 = _d.float8_e4m3
float8_e4m3fn = _d.float8_e4m3fn
float8_e5m2 = _d.float8_e5m2
float8_e8m0fnu = _d.float8_e8m0fnu
float8_e4m3fn_x4 = _d.float8_e4m3fn_x4
float8_e5m2_x4 = _d.float8_e5m2_x4
float4_e2m1fn_x4 = _d.float4_e2m1fn_x4


def static_cast(array: Any, dtype: Any) -> np.ndarray:
    """Round-to-nearest-even cast (what the hardware's converters do), saturating for fp8."""
    target = _d.resolve(dtype)
    values = np.asarray(array)
    if values.dtype == target:
        return values.copy()
    if values.dtype in _d.PACKED_X4:  # x4 -> values: each element gives four along the last dim (nkilib's tests)
        values = np.asarray(_d.unpack_x4(values, values.dtype)).astype(np.float32)
    if target in _d.PACKED_X4:
        return _d.pack_x4(values, target)  # x4 types: four values of the last dim per element, as nkilib unpacks
    return values.astype(target)


def sizeinbytes(dtype: Any) -> int:
    return _d.resolve(dtype).itemsize


def is_float_type(dtype: Any) -> bool:
    return _d.is_float(_d.resolve(dtype))


def finfo(dtype: Any) -> Any:
    return ml_dtypes.finfo(_d.resolve(dtype))

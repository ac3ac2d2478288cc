"""Helpers shared by the library kernels: tile limits of the target, shape/dtype checks with clear errors.

Kernels read every hardware number from the target (nl.tile_size, the preset), never as literals,
so the same kernel tiles itself for trn1, inf2, trn2 and trn3.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError
from trnsim.hw.spec import CoreSpec
from trnsim.nki.context import current, outside_location

FLOAT_DTYPES = (dtypes.float32, dtypes.bfloat16, dtypes.float16, dtypes.float8_e4m3, dtypes.float8_e5m2)


def core() -> CoreSpec:
    """The target core of the kernel being traced."""
    return current().machine.spec.core


def pmax() -> int:
    return int(core().sbuf.partitions)


def psum_fmax() -> int:
    """fp32 elements per partition in one PSUM bank (512)."""
    return int(core().psum.bank_bytes // 4)


def moving_fmax() -> int:
    return int(core().tensor.moving_fmax)


def stationary_fmax() -> int:
    return int(core().tensor.pe_cols)


def sbuf_bytes_per_partition() -> int:
    return int(core().sbuf.partition_bytes)


def efficient_dma_row_bytes() -> int:
    """Contiguous bytes per partition a DMA needs to approach its queue's peak (the preset's, §3.7)."""
    return int(core().dma.efficient_row_bytes)


def saturating_dma_row_bytes() -> int:
    """Contiguous bytes per partition at which a DMA saturates its queue (the preset's, §3.7)."""
    return int(core().dma.saturating_row_bytes)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def require_dtype(name: str, t: Any, allowed: tuple[np.dtype[Any], ...], kernel: str) -> None:
    if t.dtype not in allowed:
        names = ", ".join(dtypes.name(d) for d in allowed)
        raise DtypeError(
            f"{kernel}: {name} is {dtypes.name(t.dtype)}; supported dtypes: {names}", outside_location(), rule="dtype"
        )


def require(cond: bool, message: str, rule: str = "shape") -> None:
    """Raise ShapeMismatchError(message) unless cond holds, located at the user's call of the kernel."""
    if not cond:
        raise ShapeMismatchError(message, outside_location(), rule=rule)

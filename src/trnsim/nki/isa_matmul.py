"""`nki.isa` wrappers: TensorEngine matmul / transpose and MX (re-exported by nki/isa.py)."""

from __future__ import annotations

from typing import Any

from trnsim.nki import (
    emit_matmul,
    emit_mx,
)
from trnsim.nki.isa_enums import (
    engine,
    matmul_perf_mode,
    to_engine,
)
from trnsim.nki.tensor import NkiTensor


def nc_matmul(
    dst: NkiTensor,
    stationary: NkiTensor,
    moving: NkiTensor,
    is_stationary_onezero: bool = False,
    is_moving_onezero: bool = False,
    is_transpose: bool = False,
    accumulate: bool | None = None,
    tile_position: Any = (),
    tile_size: Any = (),
    perf_mode: Any = matmul_perf_mode.none,
    name: Any = None,
) -> None:
    emit_matmul.nc_matmul(
        dst,
        stationary,
        moving,
        accumulate=accumulate,
        double_row=perf_mode == matmul_perf_mode.double_row,
        is_transpose=bool(is_transpose),
    )


def nc_transpose(dst: NkiTensor, data: NkiTensor, engine: Any = engine.unknown, name: Any = None) -> None:
    emit_matmul.nc_transpose(dst, data, engine=to_engine(engine))


def nc_matmul_mx(
    dst: NkiTensor,
    stationary: NkiTensor,
    moving: NkiTensor,
    stationary_scale: NkiTensor,
    moving_scale: NkiTensor,
    tile_position: Any = None,
    tile_size: Any = None,
    accumulate: bool | None = None,
    name: Any = None,
) -> None:
    """NC-v4 MXFP8/MXFP4 matmul; row tiling (tile_position/tile_size) places the tile, it changes no result."""
    emit_mx.nc_matmul_mx(dst, stationary, moving, stationary_scale, moving_scale, accumulate=accumulate)


def quantize_mx(dst: NkiTensor, src: NkiTensor, dst_scale: NkiTensor, name: Any = None) -> None:
    emit_mx.quantize_mx(dst, src, dst_scale)

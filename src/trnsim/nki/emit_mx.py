"""Builders of NC-v4's MX instructions: nc_matmul_mx (TensorE) and quantize_mx (VectorE).

MX tiles hold raw x4-packed bits, so these read stored values and unpack them (dtypes.unpack_x4) instead of
the fp32 reads other builders use; quantize_mx writes its packed data and its scale tile itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import mx_format as mx
from trnsim.isa.instructions import quantize_mx as quantize_record
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import TraceContext, current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import read_masked, read_stored, require_tensor, write
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.tiles import psum_group_open
from trnsim.nki.versions import declared_before

# NKI 0.5.0 (Neuron 2.31) release notes: quantize_mx "now uses a block scale two times larger than the sample
# conversion algorithm described in the OCP Microscaling specification". Kernels declared for an earlier release
# (trnsim.nki.versions.set_api_version("0.4") or older) get the OCP block scale they were written against.
QUANTIZE_MX_SCALE_CHANGED_IN = "0.5"


def _mx_values(ctx: TraceContext, t: NkiTensor, loc: str) -> np.ndarray:
    """A packed [P, F] tile's values as fp32 [P, F, 4]."""
    raw = read_stored(ctx, t, None, loc).reshape(t.partition_size(), t.free_size())
    return dtypes.unpack_x4_float32(raw, t.dtype).reshape(*raw.shape, mx.VALUES_PER_PACKED)


def _layout_rows(scale: NkiTensor, data_partitions: int) -> np.ndarray:
    """The scale tile's partition of each group (the record has checked that the tile fits a layout)."""
    rows = mx.scale_rows(data_partitions, scale.partition_size())
    assert rows is not None
    return rows


def _rows_mask(scale: NkiTensor, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(scale.shape, dtype=bool)
    mask[rows] = True
    return mask


def _scale_factors(ctx: TraceContext, t: NkiTensor, data: NkiTensor, loc: str) -> np.ndarray:
    """[P // 8, F] scale factors of `data`'s groups, read from the rows of the tile's layout."""
    rows = _layout_rows(t, data.partition_size())
    raw = read_stored(ctx, t, _rows_mask(t, rows), loc).reshape(t.partition_size(), t.free_size())
    return mx.scale_factors(mx.biased_exponents(raw[rows]))


def nc_matmul_mx(
    dst: Any,
    stationary: Any,
    moving: Any,
    stationary_scale: Any,
    moving_scale: Any,
    accumulate: bool | None = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "nc_matmul_mx dst", loc)
    tiles = {
        name: require_tensor(t, f"nc_matmul_mx {name}", loc)
        for name, t in (
            ("stationary", stationary),
            ("moving", moving),
            ("stationary_scale", stationary_scale),
            ("moving_scale", moving_scale),
        )
    }
    region = dst.region(None)
    acc = bool(accumulate) if accumulate is not None else psum_group_open(ctx, region)
    ins = issue(
        Opcode.NC_MATMUL_MX,
        dst,
        tiles,
        lambda _: {
            "stationary": _mx_values(ctx, tiles["stationary"], loc),
            "moving": _mx_values(ctx, tiles["moving"], loc),
            "stationary_scale": _scale_factors(ctx, tiles["stationary_scale"], tiles["stationary"], loc),
            "moving_scale": _scale_factors(ctx, tiles["moving_scale"], tiles["moving"], loc),
        },
        loc,
        accumulate=acc,
        label="nc_matmul_mx",
    )
    ctx.psum_touched.add(region)
    return ins


def quantize_mx(dst: Any, src: Any, dst_scale: Any, location: str | None = None) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "quantize_mx dst", loc)
    src = require_tensor(src, "quantize_mx src", loc)
    scale = require_tensor(dst_scale, "quantize_mx dst_scale", loc)
    quantized: dict[str, np.ndarray] = {}

    def compute() -> np.ndarray:
        values = read_masked(ctx, src, None, loc).reshape(src.partition_size(), src.free_size())
        element = dtypes.PACKED_X4.get(dst.dtype, dtypes.float8_e4m3fn)
        ocp = declared_before(QUANTIZE_MX_SCALE_CHANGED_IN)
        rounded, quantized["scale"] = quantize_record.quantize(values, element, ocp_scale=ocp)
        return dtypes.pack_x4(rounded, dst.dtype).reshape(dst.shape)

    ins = issue(
        Opcode.QUANTIZE_MX,
        dst,
        {"src": src},
        None,
        loc,
        outputs={"dst_scale": scale},
        extent=(src.partition_size(), src.free_size()),
        label="quantize_mx",
        compute=compute if ctx.machine.functional else None,
    )
    if "scale" in quantized:  # only the layout's rows: the others may hold another tensor's scales
        biased = quantized["scale"]
        stored = biased.view(dtypes.float8_e8m0fnu) if scale.dtype == dtypes.float8_e8m0fnu else biased
        rows = _layout_rows(scale, src.partition_size())
        full = np.zeros((scale.partition_size(), scale.free_size()), dtype=stored.dtype)
        full[rows] = stored
        write(scale, full.reshape(scale.shape), _rows_mask(scale, rows))
    return ins

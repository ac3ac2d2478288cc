"""`nki.language` names added in NKI 0.6: the ops abs_min and gelu_apprx_sigmoid_dx, the op values average,
prelu and bypass (passed as `op=` to nki.isa instructions, not called), and gather_flattened."""

from __future__ import annotations

from typing import Any

from trnsim import dtypes as _dt
from trnsim.errors import UsageError
from trnsim.nki import emit_gather, emit_movement
from trnsim.nki.context import current, user_location
from trnsim.nki.ops import BINARY, UNARY, NkiOp
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.tiles import _mark_fresh, new_tensor
from trnsim.sim.memory import MemoryKind

ABS_MIN_FROM_NC_VERSION = 4  # NKI docs (nl.abs_min): "Available only on NeuronCore-v4 (trn3) and newer"


class _NcV4Op(NkiOp):
    """An ALU op nki.language offers from NeuronCore-v4 on."""

    def __call__(self, x: Any, y: Any = None, *, dtype: Any = None, mask: Any = None, **kw: Any) -> Any:
        nc = current().machine.spec.core.nc_version
        if nc < ABS_MIN_FROM_NC_VERSION:
            raise UsageError(
                f"nl.{self.nki_name} needs NeuronCore-v{ABS_MIN_FROM_NC_VERSION} or newer (trn3); this target is "
                f"NeuronCore-v{nc}",
                user_location(),
                rule="nc-version",
            )
        return super().__call__(x, y, dtype=dtype, mask=mask, **kw)


abs_min = _NcV4Op("abs_min", "binary", BINARY["abs_min"].default_dtype)
gelu_apprx_sigmoid_dx = UNARY["gelu_apprx_sigmoid_dx"]


class OpValue:
    """An op that nki.language names for nki.isa's `op=` arguments only (no element-wise function of its own)."""

    def __init__(self, name: str, use: str) -> None:
        self.nki_name = self.__name__ = name
        self.use = use

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UsageError(f"nl.{self.nki_name} is an op value ({self.use}), not a function", user_location())

    def __repr__(self) -> str:
        return f"nl.{self.nki_name}"


average = OpValue("average", "e.g. nisa.tensor_partition_reduce(dst, nl.average, data)")
prelu = OpValue("prelu", "an activation op whose negative slope is relu_param")
bypass = OpValue("bypass", "op0/op1 of nisa.activate2 or tensor_scalar-style stages: skip the stage")


def gather_flattened(
    data: Any, indices: Any, axis: int = 0, dtype: Any = None, *, mask: Any = None, **_: Any
) -> NkiTensor:
    """out[p, j] = data[p, indices[p, j]] over each partition's flattened free elements (nc_n_gather)."""
    ctx = current()
    loc = user_location()
    if mask is not None:
        raise UsageError("nl.gather_flattened: mask= is not supported; slice the tiles instead", loc)
    for t, what in ((data, "data"), (indices, "indices")):
        if not isinstance(t, NkiTensor):
            raise UsageError(f"nl.gather_flattened {what} must be a tile, got {type(t).__name__}", loc)
    if axis not in (0, -1, data.ndim - 1):
        raise UsageError(
            f"nl.gather_flattened gathers along the flattened free elements (axis 0, the default, or the last "
            f"axis); got axis={axis}",
            loc,
        )
    if indices.dtype.kind not in "iu":
        raise UsageError(f"nl.gather_flattened indices must be an integer tile, got {_dt.name(indices.dtype)}", loc)
    idx = indices
    if indices.dtype != _dt.uint32:  # nc_n_gather reads uint32 indices: the compiler converts int32 ones
        idx = new_tensor(indices.shape, _dt.uint32, MemoryKind.SBUF, location=loc)
        emit_movement.tensor_copy(idx, indices, location=loc)
    out = new_tensor(indices.shape, data.dtype, MemoryKind.SBUF, location=loc)
    emit_gather.nc_n_gather(out, data, idx, location=loc)
    if dtype is None or _dt.resolve(dtype) == data.dtype:
        return _mark_fresh(ctx, out)
    cast = new_tensor(indices.shape, dtype, MemoryKind.SBUF, location=loc)
    emit_movement.tensor_copy(cast, out, location=loc)
    return _mark_fresh(ctx, cast)

"""dropout: zero each element of data with probability prob, keep it otherwise (VectorE).

NKI docs (nki.isa.dropout): prob is a scalar or a [P, 1] tile of per-partition drop probabilities; 1.0
drops everything and 0.0 keeps everything; kept values are not rescaled; dst has data's dtype; with
integer data, a prob tile must be float32. The draws come from VectorE's generators (rng.py): an element
is dropped when its uniform draw u = bits / 2**32 is below prob.
"""

from __future__ import annotations

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

_TWO_TO_MINUS_32 = np.float64(2.0**-32)


def semantics(data: np.ndarray, prob: np.ndarray, bits: np.ndarray) -> np.ndarray:
    u = bits.astype(np.float64) * _TWO_TO_MINUS_32
    keep = u >= np.asarray(prob, np.float64).reshape(-1, *([1] * (data.ndim - 1)))
    return np.where(keep.reshape(data.shape), data, np.zeros((), data.dtype))


def check(call: Call) -> None:
    dst, data = call.dst, call.inputs["data"]
    assert dst is not None
    if dst.dtype != data.dtype:
        raise DtypeError(
            f"dropout dst must have data's dtype {data.dtype.name}, got {dst} {dst.dtype.name}",
            call.location,
            rule="dtype",
        )
    if tuple(dst.shape) != tuple(data.shape):
        raise ShapeMismatchError(f"dropout dst {dst} and data {data} differ in shape", call.location, rule="shape")
    value = call.param("prob_value")
    if value is not None and not 0.0 <= value <= 1.0:
        raise UsageError(f"dropout prob is a probability in [0, 1], got {value}", call.location, rule="prob")
    prob = call.inputs.get("prob")
    if prob is None:
        return
    if prob.partitions != data.partitions or prob.free != 1:
        raise ShapeMismatchError(
            f"dropout prob must be a scalar or a [{data.partitions}, 1] tile, got {prob}", call.location, rule="shape"
        )
    if data.dtype.kind in "iu" and prob.dtype != np.float32:
        raise DtypeError(
            f"dropout of integer data takes a float32 prob tile, got {prob} {prob.dtype.name}",
            call.location,
            rule="dtype",
        )
    if not dtypes.is_float(prob.dtype):
        raise DtypeError(f"dropout prob must be a float tile, got {prob.dtype.name}", call.location, rule="dtype")


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "data")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N), N the elements per partition of data (§3.6 dropout)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.DROPOUT,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="trainium.md §3.6 dropout; NKI docs nki.isa.dropout",
)

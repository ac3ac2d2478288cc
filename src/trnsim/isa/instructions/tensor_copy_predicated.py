"""tensor_copy_predicated: dst = src where predicate (!= 0, or == 0 with reverse_pred), else dst unchanged."""

from __future__ import annotations

import numpy as np

from trnsim.errors import DtypeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import PSUM, Call
from trnsim.isa.record import InstructionRecord

PREDICATE_DTYPES = ("uint8", "uint16", "uint32")  # NKI docs, nki.isa.tensor_copy_predicated
# A numpy bool array (the docs' own example passes np.less_equal(a, b)) is NKI's bool_: one byte, as uint8.
BOOL_AS = "uint8"


def semantics(
    src: np.ndarray | float, predicate: np.ndarray, prior: np.ndarray, reverse_pred: bool = False
) -> np.ndarray:
    take = (predicate == 0) if reverse_pred else (predicate != 0)
    value = src if isinstance(src, np.ndarray) else np.float32(float(src))
    return np.where(take, value, prior).astype(np.float32)


def check(call: Call) -> None:
    pred, src = call.inputs["predicate"], call.inputs.get("src")
    if (BOOL_AS if pred.dtype == np.bool_ else str(pred.dtype)) not in PREDICATE_DTYPES:
        raise DtypeError(
            f"tensor_copy_predicated predicate must be {', '.join(PREDICATE_DTYPES)}, got {pred.dtype}",
            call.location,
            rule="dtype",
        )
    if src is not None:
        if call.dst is not None and src.dtype != call.dst.dtype:
            raise DtypeError(
                f"tensor_copy_predicated src ({src.dtype}) and dst ({call.dst.dtype}) must share a dtype",
                call.location,
                rule="dtype",
            )
        if src.buffer == PSUM and pred.buffer == PSUM:
            raise UsageError(
                "tensor_copy_predicated: src and predicate cannot both be in PSUM", call.location, rule="psum"
            )


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N) (§3.6 tensor_copy_predicated)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_COPY_PREDICATED,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="trainium.md §3.6 tensor_copy_predicated; NKI docs nki.isa.tensor_copy_predicated",
)

"""nc_transpose: swap partition and free axes, on TensorE (<= 128x128, SBUF -> PSUM) or VectorE (<= 32x32)."""

from __future__ import annotations

from trnsim.errors import ShapeMismatchError, TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, min_ii, stride_factor
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import PSUM, Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import require_buffer


def check(call: Call) -> None:
    dst, data, loc = call.dst, call.inputs["data"], call.location
    assert dst is not None
    on_tensor = call.engine is Engine.TENSOR
    limit = call.core.tensor.pe_cols if on_tensor else call.core.vector.transpose_max
    if data.partitions > limit or data.free > limit:
        raise TileShapeError(
            f"nc_transpose on the {call.engine.key} engine handles at most [{limit}, {limit}], got {list(data.shape)}",
            loc,
            rule="transpose-size",
        )
    if dst.partitions != data.free or dst.free != data.partitions:
        raise ShapeMismatchError(
            f"nc_transpose dst must be [{data.free}, {data.partitions}], got {list(dst.shape)}", loc, rule="shape"
        )
    if on_tensor:
        require_buffer(data, "nc_transpose data", loc, allow_psum=False)
        if dst.buffer != PSUM:
            raise UsageError("nc_transpose on the tensor engine writes to PSUM", loc, rule="buffer")


def cost_args(call: Call) -> CostArgs:
    data = call.inputs["data"]
    return CostArgs(n=data.free, p=data.partitions)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """TensorE: max(P, min(MIN_II, F)); VectorE: max(MIN_II, N) (§3.6)."""
    if engine is Engine.TENSOR:
        return float(max(a.p, min(core.tensor.min_ii_cycles, a.n)))
    return max(min_ii(core, engine), float(a.n)) * stride_factor(core, a)


RECORD = InstructionRecord(
    opcode=Opcode.NC_TRANSPOSE,
    engines=(Engine.TENSOR, Engine.VECTOR),
    cycles=cycles,
    semantics=sem.nc_transpose,
    check=check,
    cost_args=cost_args,
    source="trainium.md §3.6 nc_transpose",
)

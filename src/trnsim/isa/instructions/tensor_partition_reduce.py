"""tensor_partition_reduce: reduce a tile across its partitions, dst[1, F...] = op over data[P, F...] (GpSimd).

NKI docs (nki.isa.tensor_partition_reduce): op is add, average, max, bitwise_or or bitwise_and; the
docs' example reduces a [128, 32, 4] tile to [1, 32, 4] (np.sum(a, axis=0, keepdims=True)).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import ShapeMismatchError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, gpsimd_cycles
from trnsim.isa.instructions.iota import gpsimd_reachable
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import integer_bits

OPS = ("add", "average", "maximum", "bitwise_or", "bitwise_and")


def semantics(data: np.ndarray, op: str) -> np.ndarray:
    if op in ("bitwise_or", "bitwise_and"):
        fn = np.bitwise_or if op == "bitwise_or" else np.bitwise_and
        return fn.reduce(data.astype(np.int64), axis=0, keepdims=True)
    x = data.astype(np.float32)
    if op == "maximum":
        return x.max(axis=0, keepdims=True)
    total = x.sum(axis=0, keepdims=True, dtype=np.float32)
    return total / np.float32(x.shape[0]) if op == "average" else total


def check(call: Call) -> None:
    dst, data = call.dst, call.inputs["data"]
    assert dst is not None
    gpsimd_reachable("tensor_partition_reduce")(call)
    if dst.partitions != 1 or dst.size != data.free:
        raise ShapeMismatchError(
            f"tensor_partition_reduce dst must be one partition of {data.free} elements (data {data} reduced over "
            f"its {data.partitions} partitions), got {dst}",
            call.location,
            rule="shape",
        )
    integer_bits(call.param("op"), [data, dst], call.location)


def cost_args(call: Call) -> CostArgs:
    data = call.inputs["data"]
    return CostArgs(n=data.free, p=data.partitions)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """No published cost: GpSimd's documented rule, GPSIMD_START + N with N the elements per partition of
    data (each of the 8 cores reads its 16 partitions one element per partition per cycle)."""
    return gpsimd_cycles(core, a)


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_PARTITION_REDUCE,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.tensor_partition_reduce; cost: GpSimd rule (trainium.md §3.6 iota/affine_select)",
)

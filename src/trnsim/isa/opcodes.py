"""The instruction set: one opcode enum and the engines that execute it."""

from __future__ import annotations

from enum import IntEnum


class Engine(IntEnum):
    """Instruction streams of a NeuronCore. DMA stands for the core's DMA queues."""

    TENSOR = 0
    VECTOR = 1
    SCALAR = 2
    GPSIMD = 3
    SYNC = 4
    DMA = 5

    @property
    def key(self) -> str:
        return self.name.lower()


COMPUTE_ENGINES = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD, Engine.SYNC)


class Opcode(IntEnum):
    DMA_COPY = 0
    NC_MATMUL = 1
    NC_TRANSPOSE = 2
    ACTIVATION = 3
    TENSOR_TENSOR = 4
    TENSOR_SCALAR = 5
    TENSOR_REDUCE = 6
    TENSOR_COPY = 7
    MEMSET = 8
    IOTA = 9
    AFFINE_SELECT = 10
    BN_STATS = 11
    BN_AGGR = 12
    SELECT = 13
    BARRIER = 14
    TENSOR_TENSOR_SCAN = 15
    SCALAR_TENSOR_TENSOR = 16
    RECIPROCAL = 17

    @property
    def key(self) -> str:
        return self.name.lower()


# Engines each opcode may run on; the first is the default when a kernel does not choose.
ALLOWED_ENGINES: dict[Opcode, tuple[Engine, ...]] = {
    Opcode.DMA_COPY: (Engine.DMA,),
    Opcode.NC_MATMUL: (Engine.TENSOR,),
    Opcode.NC_TRANSPOSE: (Engine.TENSOR, Engine.VECTOR),
    Opcode.ACTIVATION: (Engine.SCALAR,),
    Opcode.TENSOR_TENSOR: (Engine.VECTOR, Engine.GPSIMD),
    Opcode.TENSOR_SCALAR: (Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD),
    Opcode.TENSOR_REDUCE: (Engine.VECTOR,),
    Opcode.TENSOR_COPY: (Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD),
    Opcode.MEMSET: (Engine.VECTOR, Engine.GPSIMD),
    Opcode.IOTA: (Engine.GPSIMD,),
    Opcode.AFFINE_SELECT: (Engine.GPSIMD,),
    Opcode.BN_STATS: (Engine.VECTOR,),
    Opcode.BN_AGGR: (Engine.VECTOR,),
    Opcode.SELECT: (Engine.VECTOR, Engine.GPSIMD),
    Opcode.BARRIER: (Engine.SYNC,),
    Opcode.TENSOR_TENSOR_SCAN: (Engine.VECTOR,),
    Opcode.SCALAR_TENSOR_TENSOR: (Engine.VECTOR,),
    Opcode.RECIPROCAL: (Engine.VECTOR,),
}

"""The instruction set's names: the engines and one opcode per instruction (records: isa/instructions/)."""

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
    TENSOR_SCALAR_REDUCE = 18
    MAX8 = 19
    TENSOR_COPY_PREDICATED = 20
    NONZERO_WITH_COUNT = 21
    NC_STREAM_SHUFFLE = 22
    NC_FIND_INDEX8 = 23
    NC_MATCH_REPLACE8 = 24
    NC_MATMUL_MX = 25
    QUANTIZE_MX = 26
    EXPONENTIAL = 27
    ACTIVATE2 = 28
    TENSOR_SCALAR_CUMULATIVE = 29
    SELECT_REDUCE = 30
    RANGE_SELECT = 31
    NC_N_GATHER = 32
    SEQUENCE_BOUNDS = 33
    # NKI 0.6's remaining public instructions (50+: room for other families to append below 40)
    TENSOR_PARTITION_REDUCE = 50
    LOCAL_GATHER = 51
    TOPK = 52
    RNG = 53
    RAND2 = 54
    DROPOUT = 55
    SET_RNG_SEED = 56
    RAND_SET_STATE = 57
    RAND_GET_STATE = 58
    DMA_COMPUTE = 59
    REGISTER_LOAD = 60
    REGISTER_STORE = 61
    DMA_TRANSPOSE = 62
    # multi-rank instructions (sim/instance_timing.py adds the wait for partners and the link time)
    SENDRECV = 40
    CORE_BARRIER = 41
    COLLECTIVE = 42

    @property
    def key(self) -> str:
        return self.name.lower()

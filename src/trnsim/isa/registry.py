"""Every instruction's record, by opcode: the one table the kernel language, planners and tests ask."""

from __future__ import annotations

from trnsim.isa.instructions import (
    activate2,
    activation,
    affine_select,
    barrier,
    bn_aggr,
    bn_stats,
    collective,
    core_barrier,
    dma_copy,
    exponential,
    iota,
    max8,
    memset,
    nc_find_index8,
    nc_match_replace8,
    nc_matmul,
    nc_matmul_mx,
    nc_n_gather,
    nc_stream_shuffle,
    nc_transpose,
    nonzero_with_count,
    quantize_mx,
    range_select,
    reciprocal,
    scalar_tensor_tensor,
    select,
    select_reduce,
    sendrecv,
    sequence_bounds,
    tensor_copy,
    tensor_copy_predicated,
    tensor_reduce,
    tensor_scalar,
    tensor_scalar_cumulative,
    tensor_scalar_reduce,
    tensor_tensor,
    tensor_tensor_scan,
)
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.record import InstructionRecord

RECORDS: dict[Opcode, InstructionRecord] = {
    m.RECORD.opcode: m.RECORD
    for m in (
        dma_copy,
        nc_matmul,
        nc_transpose,
        activation,
        tensor_tensor,
        tensor_scalar,
        tensor_reduce,
        tensor_copy,
        memset,
        iota,
        affine_select,
        bn_stats,
        bn_aggr,
        select,
        barrier,
        tensor_tensor_scan,
        scalar_tensor_tensor,
        reciprocal,
        tensor_scalar_reduce,
        max8,
        tensor_copy_predicated,
        nonzero_with_count,
        nc_stream_shuffle,
        nc_find_index8,
        nc_match_replace8,
        nc_matmul_mx,
        quantize_mx,
        exponential,
        activate2,
        tensor_scalar_cumulative,
        select_reduce,
        range_select,
        nc_n_gather,
        sequence_bounds,
        sendrecv,
        core_barrier,
        collective,
    )
}

# Engines each opcode may run on; the first is the default when a kernel does not choose.
ALLOWED_ENGINES: dict[Opcode, tuple[Engine, ...]] = {op: r.engines for op, r in RECORDS.items()}


def record(op: Opcode) -> InstructionRecord:
    return RECORDS[op]

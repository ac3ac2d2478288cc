"""`nki.isa` (current NKI, 0.2+): explicit-destination instructions, `dst` first.

The wrappers live in nki/isa_<family>.py (mirroring nki/emit_<family>.py); this module re-exports them
and keeps the public names (__all__) in one place.
"""

from __future__ import annotations

from trnsim.nki.isa_arith import (
    activate2,
    activation,
    activation_reduce,
    exponential,
    reciprocal,
    scalar_tensor_tensor,
    tensor_scalar,
    tensor_scalar_cumulative,
    tensor_tensor,
    tensor_tensor_scan,
)
from trnsim.nki.isa_dma_engine import dma_engine
from trnsim.nki.isa_enums import (
    dge_mode,
    engine,
    get_nc_version,
    gpsimd_engine,
    matmul_perf_mode,
    nc_version,
    oob_mode,
    reduce_cmd,
    scalar_engine,
    tensor_engine,
    unknown_engine,
    vector_engine,
)
from trnsim.nki.isa_instruction import NkiInstruction, NkiValidationError
from trnsim.nki.isa_matmul import (
    nc_matmul,
    nc_matmul_mx,
    nc_transpose,
    quantize_mx,
)
from trnsim.nki.isa_movement import (
    dma_copy,
    dma_transpose,
    memset,
    tensor_copy,
)
from trnsim.nki.isa_partition import dma_compute, local_gather, tensor_partition_reduce, topk
from trnsim.nki.isa_random import dropout, rand2, rand_get_state, rand_set_state, rng, set_rng_seed
from trnsim.nki.isa_ranks import (
    core_barrier,
    sendrecv,
)
from trnsim.nki.isa_reduce import (
    bn_aggr,
    bn_stats,
    max8,
    nc_find_index8,
    nc_match_replace8,
    tensor_reduce,
    tensor_scalar_reduce,
)
from trnsim.nki.isa_registers import (
    VirtualRegister,
    register_alloc,
    register_load,
    register_move,
    register_store,
)
from trnsim.nki.isa_select import (
    affine_select,
    iota,
    nc_n_gather,
    nc_stream_shuffle,
    nonzero_with_count,
    range_select,
    select,
    select_reduce,
    sequence_bounds,
    tensor_copy_predicated,
)

__all__ = [
    "activation",
    "activation_reduce",
    "affine_select",
    "bn_aggr",
    "bn_stats",
    "dge_mode",
    "dma_copy",
    "dma_engine",
    "dma_transpose",
    "engine",
    "get_nc_sub_version",
    "get_nc_version",
    "gpsimd_engine",
    "iota",
    "matmul_perf_mode",
    "max8",
    "memset",
    "nc_find_index8",
    "nc_match_replace8",
    "nc_matmul",
    "nc_stream_shuffle",
    "nc_transpose",
    "nc_version",
    "nonzero_with_count",
    "oob_mode",
    "reciprocal",
    "reduce_cmd",
    "scalar_engine",
    "scalar_tensor_tensor",
    "select",
    "tensor_copy",
    "tensor_copy_predicated",
    "tensor_engine",
    "tensor_reduce",
    "tensor_scalar",
    "tensor_scalar_reduce",
    "tensor_tensor",
    "tensor_tensor_scan",
    "unknown_engine",
    "vector_engine",
]


__all__ += ["core_barrier", "sendrecv"]


__all__ += ["nc_matmul_mx", "quantize_mx"]


__all__ += ["exponential"]


__all__ += ["activate2"]


__all__ += ["tensor_scalar_cumulative"]


__all__ += ["select_reduce"]


__all__ += ["range_select"]


__all__ += ["nc_n_gather"]


__all__ += ["sequence_bounds"]

__all__ += ["dma_compute", "local_gather", "tensor_partition_reduce", "topk"]
__all__ += ["dropout", "rand2", "rand_get_state", "rand_set_state", "rng", "set_rng_seed"]
__all__ += ["VirtualRegister", "register_alloc", "register_load", "register_move", "register_store"]
__all__ += ["NkiInstruction", "NkiValidationError"]


def get_nc_sub_version() -> int:
    """The NeuronCore's sub-version within its generation (0 for the chips trnsim models: no revisions)."""
    get_nc_version()  # the same context rules as get_nc_version
    return 0

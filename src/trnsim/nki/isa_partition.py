"""`nki.isa` wrappers of the cross-partition GpSimd instructions and dma_compute (re-exported by nki/isa.py)."""

from __future__ import annotations

from typing import Any

from trnsim.errors import UsageError
from trnsim.nki import emit_dma_compute, emit_partition
from trnsim.nki.context import user_location
from trnsim.nki.isa_enums import oob_mode as _oob
from trnsim.nki.isa_instruction import NkiInstruction
from trnsim.nki.tensor import NkiTensor


def tensor_partition_reduce(dst: NkiTensor, op: Any, data: NkiTensor, name: Any = None) -> NkiInstruction:
    return NkiInstruction(emit_partition.tensor_partition_reduce(dst, op, data))


def local_gather(
    dst: NkiTensor,
    src_buffer: NkiTensor,
    index: NkiTensor,
    num_elem_per_idx: int = 1,
    num_valid_indices: int | None = None,
    name: Any = None,
) -> NkiInstruction:
    return NkiInstruction(emit_partition.local_gather(dst, src_buffer, index, num_elem_per_idx, num_valid_indices))


def topk(val_dst: NkiTensor, idx_dst: NkiTensor, src: NkiTensor, n: int, name: Any = None) -> NkiInstruction:
    return NkiInstruction(emit_partition.topk(val_dst, idx_dst, src, n))


def dma_compute(
    dst: NkiTensor,
    srcs: Any,
    reduce_op: Any,
    scales: Any = None,
    unique_indices: bool = True,
    oob_mode: Any = _oob.error,
    name: Any = None,
) -> NkiInstruction:
    if oob_mode not in (_oob.error, _oob.skip):
        raise UsageError(
            f"dma_compute oob_mode must be nki.isa.oob_mode.error or .skip, got {oob_mode!r}", user_location()
        )
    return NkiInstruction(emit_dma_compute.dma_compute(dst, srcs, reduce_op, scales, unique_indices))

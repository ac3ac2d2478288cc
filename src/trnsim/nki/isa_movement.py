"""`nki.isa` wrappers: data movement (dma_copy, tensor_copy, memset, dma_transpose) (re-exported by nki/isa.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.isa.instructions import dma_transpose as dma_transpose_record
from trnsim.nki import (
    emit_movement,
)
from trnsim.nki.context import current, user_location
from trnsim.nki.isa_enums import (
    dge_mode,
    engine,
    oob_mode,
    to_engine,
)
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.versions import removed_dtype
from trnsim.sim.memory import MemoryKind

_OOB_SKIP = oob_mode.skip  # the parameter of the same name hides the enum inside dma_copy


def dma_copy(
    dst: NkiTensor,
    src: NkiTensor,
    priority: Any = None,
    oob_mode: Any = oob_mode.error,
    dge_mode: Any = dge_mode.unknown,
    engine: Any = engine.unknown,
    name: Any = None,
) -> None:
    emit_movement.dma_copy(dst, src, oob_skip=oob_mode is _OOB_SKIP)


def tensor_copy(
    dst: NkiTensor, src: NkiTensor, engine: Any = engine.unknown, name: Any = None, dtype: Any = None
) -> None:
    removed_dtype("nki.isa.tensor_copy", dst, dtype)  # NKI Beta's dtype= (tutorials still write it)
    emit_movement.tensor_copy(dst, src, engine=to_engine(engine))


def memset(dst: NkiTensor, value: Any, engine: Any = engine.unknown, name: Any = None) -> None:
    emit_movement.memset(dst, value, engine=to_engine(engine))


# dma_transpose's default permutation by rank (NKI docs, nki.isa.dma_transpose)
_DMA_TRANSPOSE_AXES = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}
_DMA_TRANSPOSE_MAX_LAST = 128  # src.shape[-1] <= 128 for the DGE transposes (NKI docs)
dge_mode_enum = dge_mode  # the parameter of the same name hides the enum inside dma_transpose
_DGE_MODES = {m.value: m.name for m in dge_mode}  # unknown, swdge, hwdge (the DGE transposes' limits), none


def dma_transpose(
    dst: NkiTensor,
    src: NkiTensor,
    axes: Any = None,
    priority: Any = None,
    dge_mode: Any = dge_mode.unknown,
    oob_mode: Any = oob_mode.error,
    name: Any = None,
) -> None:
    """dst = src with its axes permuted.

    Into SBUF on NeuronCore-v3+ it is the DMA engines' transpose (isa/instructions/dma_transpose.py: up to
    90% / 50% of DMA throughput from HBM / SBUF). Elsewhere (NC-v2, or into HBM) it is one DMA whose access
    pattern does the transpose: single-element descriptors, priced as for nl.load_transpose2d.
    """
    loc = user_location()
    if not isinstance(src, NkiTensor) or not isinstance(dst, NkiTensor):
        raise UsageError("nisa.dma_transpose takes tensors dst and src", loc)
    perm = tuple(axes) if axes is not None else _DMA_TRANSPOSE_AXES.get(src.ndim)
    if perm is None or sorted(perm) != list(range(src.ndim)):
        raise UsageError(
            f"nisa.dma_transpose: src {src!r} needs axes that permute its {src.ndim} dims (2-4 dims by default)", loc
        )
    mode = getattr(dge_mode, "value", dge_mode)  # the enum, or its int as nki-library passes it (0 .. 3)
    if mode is not None and (isinstance(mode, bool) or mode not in _DGE_MODES):
        raise UsageError(
            f"nisa.dma_transpose dge_mode must be one of nisa.dge_mode's {', '.join(_DGE_MODES.values())}, "
            f"got {dge_mode!r}",
            loc,
            rule="dge-mode",
        )
    dge = mode in (dge_mode_enum.swdge.value, dge_mode_enum.hwdge.value)  # none = "not using DGE" (NKI docs)
    if dge and src.dtype.itemsize != 2:
        raise UsageError(f"nisa.dma_transpose with a DGE mode moves 2-byte dtypes only, got {src!r}", loc, rule="dtype")
    if dge and src.shape[-1] > _DMA_TRANSPOSE_MAX_LAST:
        raise UsageError(
            f"nisa.dma_transpose: src's last dim must be <= {_DMA_TRANSPOSE_MAX_LAST}, got {src!r}", loc, rule="shape"
        )
    want = tuple(src.shape[a] for a in perm)
    if tuple(dst.shape) != want:
        raise ShapeMismatchError(
            f"nisa.dma_transpose: dst must have the transposed shape {list(want)} of src, got {dst!r}",
            loc,
            rule="shape",
        )
    # index arrays: element [i_0, i_1, ...] of the view is src[...] with src's dim perm[k] indexed by i_k
    grids = np.ix_(*[np.arange(n) for n in want])
    index: list[Any] = [None] * src.ndim
    for k, a in enumerate(perm):
        index[a] = grids[k]
    permuted = src[tuple(index)]
    if dst.buffer is MemoryKind.SBUF and dma_transpose_record.supported(current().machine.spec.core):
        emit_movement.dma_transpose(dst, permuted, loc)  # NC-v3+: the DMA engines' transpose, at its own rate
    else:  # no DMA transpose before NC-v3, none into HBM: a DMA whose access pattern does the transpose
        emit_movement.dma_copy(dst, permuted, location=loc)

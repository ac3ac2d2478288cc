"""Indirect DMA views: an HBM tensor indexed by an on-chip integer tile (gather on load, scatter on store).

NKI's docs (nl.load/nl.store and nisa.dma_copy indirect examples) write `data[idx_tile, i_f]` or
`data[idx_tile[i_p, 0], i_f]`: partition p of the view addresses row `idx_tile[p]` of `data`, and the
other index entries (index expressions, slices, ints) pick within each row as usual. The index tile is an
SBUF tile of integers holding one index per partition ([P, 1]); it indexes dim 0 of the HBM tensor, as
`.ap(vector_offset=..., indirect_dim=0)` and `vector_select(0, ...)` do ("different partitions read
different rows"). The indices are read when the view is made, as for `.ap(vector_offset=)`; in timing mode
tiles hold no values and the rows are taken as 0 (addresses do not change time in trnsim's model).

A view built this way is checked when a DMA uses it, under the DMA's `oob_mode` (NKI docs,
nisa.dma_copy): `oob_mode.error` (the default) raises IndexError naming the first out-of-bounds element
of the tensor's flattened storage, as NKI's simulator does (the trnsim BoundsError with the kernel line
is its cause); `oob_mode.skip` leaves out the elements whose row is out of bounds.
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np

from trnsim.errors import BoundsError, ShapeMismatchError, UsageError
from trnsim.nki.context import user_location
from trnsim.nki.tensor_views import _dynamic_values
from trnsim.sim.memory import MemoryKind

if TYPE_CHECKING:
    from trnsim.nki.tensor import NkiTensor


def indirect_key(t: NkiTensor, index: tuple[Any, ...], tile_type: type) -> tuple[Any, ...]:
    """The key of `t[index]` where `index[0]` is an index tile (an instance of `tile_type`, NkiTensor): per allocation
    dim an int or an integer array of the view's shape, with absolute (storage) indices."""
    loc = user_location()
    if t.buffer is not MemoryKind.HBM:
        raise UsageError(
            f"indexing {t!r} by a tile is an indirect DMA, which reads or writes HBM rows: index an HBM tensor "
            "(on chip, gather with nisa.local_gather or nisa.nc_n_gather)",
            loc,
        )
    if t.has_index_arrays:
        raise UsageError(
            f"{t!r} is already indexed by index arrays or an index tile; an indirect view cannot be indexed again "
            "(index the tensor it came from)",
            loc,
        )
    visible = [d for d, k in enumerate(t.key) if isinstance(k, tuple)]
    index = _expand(index, len(visible), t, loc)
    tile_dims = [pos for pos, idx in enumerate(index) if isinstance(idx, tile_type)]
    if tile_dims != [0]:
        raise UsageError(
            f"an index tile can index only dim 0 of {t!r} (one row per partition), got one for dim {tile_dims[-1]}",
            loc,
        )
    rows = _tile_rows(index[0], loc)
    rel = _relative_entries(t, index, rows, loc)
    key: list[Any] = list(t.key)
    for d, r in zip(visible, rel):
        start, _stop, step = key[d]
        key[d] = start + r * step
    shapes = [np.shape(k) for k in key if isinstance(k, np.ndarray)]
    full = np.broadcast_shapes(*shapes)
    return tuple(np.array(np.broadcast_to(k, full)) if isinstance(k, np.ndarray) else k for k in key)


def _expand(index: tuple[Any, ...], ndim: int, t: NkiTensor, loc: str | None) -> tuple[Any, ...]:
    if any(i is Ellipsis for i in index):
        pos = next(i for i, v in enumerate(index) if v is Ellipsis)
        index = index[:pos] + (slice(None),) * (ndim - (len(index) - 1)) + index[pos + 1 :]
    if len(index) > ndim:
        raise BoundsError(f"too many indices for {t!r}: got {len(index)}, it has {ndim} dims", loc)
    return index + (slice(None),) * (ndim - len(index))


def _tile_rows(tile: NkiTensor, loc: str | None) -> np.ndarray:
    """The index tile's values, one row index per partition (zeros in timing mode)."""
    if tile.buffer is not MemoryKind.SBUF:
        raise UsageError(f"an index tile must be in SBUF (load the indices first), got {tile!r}", loc)
    if tile.ndim < 1 or prod(tile.shape[1:]) != 1:
        raise ShapeMismatchError(
            f"an index tile holds one row index per partition: an SBUF tile of shape [P, 1], got {tile!r}",
            loc,
            rule="shape",
        )
    vals = _dynamic_values(tile, "an index tile", loc)
    p = tile.shape[0]
    return np.zeros(p, dtype=np.int64) if vals is None else vals.reshape(p)


def _relative_entries(t: NkiTensor, index: tuple[Any, ...], rows: np.ndarray, loc: str | None) -> list[Any]:
    """Each visible dim's index relative to the view: the rows on result axis 0, then the other entries.

    Index expressions (nl.arange / nl.mgrid arrays) broadcast numpy-style with the rows as [P, 1, ...];
    without them, each slice becomes its own result axis after the partition axis."""
    others = index[1:]
    exprs = [i for i in others if isinstance(i, np.ndarray)]
    if exprs and any(isinstance(i, slice) or type(i).__name__ == "DynSlice" for i in others):
        raise UsageError(
            "with an index tile, index the other dims either all with index expressions (nl.arange/nl.mgrid) "
            "or all with slices and ints, not both",
            loc,
        )
    n_axes = max([2, *(e.ndim for e in exprs)]) if exprs else 1 + sum(not _is_int(i) for i in others)
    out: list[Any] = [rows.reshape((-1,) + (1,) * (n_axes - 1))]
    axis = 1
    for pos, idx in enumerate(others, start=1):
        length = t.shape[pos]
        if isinstance(idx, np.ndarray):
            arr = np.asarray(idx, dtype=np.int64)
        elif _is_int(idx):
            i = int(idx) + (length if int(idx) < 0 else 0)
            arr = np.asarray(i, dtype=np.int64)
        else:
            start, stop, step = _slice_bounds(idx, length, loc)
            shape = [1] * n_axes
            shape[axis] = len(range(start, stop, step))
            arr = np.arange(start, stop, step, dtype=np.int64).reshape(shape)
            axis += 1
        if arr.size and (arr.min() < 0 or arr.max() >= length):
            raise BoundsError(
                f"index reaches {int(arr.min())}..{int(arr.max())} in dim {pos} of {t!r} (allowed 0..{length - 1})",
                loc,
                rule="bounds",
            )
        out.append(arr)
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _slice_bounds(idx: Any, length: int, loc: str | None) -> tuple[int, int, int]:
    if isinstance(idx, slice):
        return idx.indices(length)
    if type(idx).__name__ == "DynSlice":  # nl.ds(start, size)
        return idx.start, idx.start + idx.size * idx.step, idx.step
    raise UsageError(f"unsupported index {idx!r} beside an index tile", loc)


def in_bounds(t: NkiTensor) -> np.ndarray:
    """Which elements of the indirect view `t` address storage inside its tensor (shape of the view)."""
    ok = np.ones(t.shape, dtype=bool)
    for k, d in zip(t.key, t.alloc.shape):
        if isinstance(k, np.ndarray):
            ok &= (k >= 0) & (k < d)
    return ok


def check_in_bounds(t: NkiTensor, mask: np.ndarray | None, location: str) -> None:
    """oob_mode.error: the first out-of-bounds element (flat order, where the mask lets it through) raises
    NKI's IndexError, caused by trnsim's BoundsError naming the kernel line and the row."""
    bad = ~in_bounds(t)
    if mask is not None:
        bad &= np.broadcast_to(mask, t.shape)
    if not bad.any():
        return
    first = np.unravel_index(int(np.argmax(bad)), t.shape)
    at = [int(k[first]) if isinstance(k, np.ndarray) else (k[0] if isinstance(k, tuple) else int(k)) for k in t.key]
    strides = [prod(t.alloc.shape[d + 1 :]) for d in range(len(t.alloc.shape))]
    flat = sum(i * s for i, s in zip(at, strides))
    size = prod(t.alloc.shape)
    cause = BoundsError(
        f"indirect DMA: {t!r} addresses row {at[0]} of {t.alloc.describe()} (rows 0..{t.alloc.shape[0] - 1}); "
        "fix the index tile, or pass oob_mode=nisa.oob_mode.skip to skip out-of-bounds rows",
        location,
        rule="bounds",
    )
    # NKI's simulator reports it as numpy does for the flattened tensor (the NKI docs' dma_copy test checks it)
    raise IndexError(f"index {flat} is out of bounds for axis 0 with size {size}") from cause


def skip_out_of_bounds(
    dst: NkiTensor, src: NkiTensor, mask: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """oob_mode.skip for a DMA: (dst mask, src mask) leaving out elements whose dst or src row is out of
    bounds (the two views walk their elements in the same flat order)."""
    indirect = [v for v in (dst, src) if v.is_indirect_dma]
    if not indirect:
        return mask, None
    ok = np.ones(dst.shape, dtype=bool) if mask is None else np.array(np.broadcast_to(mask, dst.shape))
    for v in indirect:
        ok &= in_bounds(v).reshape(dst.shape)
    return ok, ok.reshape(src.shape)

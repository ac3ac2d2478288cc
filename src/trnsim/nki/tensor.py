"""NKI tensors: views into an allocation in HBM, SBUF or PSUM.

A view is the allocation plus one index entry per allocation dim: an int (dim dropped), a
(start, stop, step) slice, or an integer index array (legacy `nl.arange` expressions, which
broadcast like numpy). From the view come its shape, its memory region (for dependencies) and,
in functional mode, its values.
"""

from __future__ import annotations

import operator
import weakref
from math import prod
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import BoundsError, UsageError
from trnsim.isa.instruction import Region
from trnsim.nki import fast_paths
from trnsim.nki.context import user_location
from trnsim.nki.tensor_fast_index import TensorFastIndex
from trnsim.nki.tensor_indirect import check_in_bounds, indirect_key
from trnsim.nki.tensor_layout_views import TensorLayoutViews
from trnsim.nki.tensor_memory import Entry, Slice, TensorMemory, _slice_len
from trnsim.nki.tensor_ops import TileOperators, tile_language
from trnsim.nki.tensor_reshapes import TensorReshapes
from trnsim.nki.tensor_select import TensorSelect
from trnsim.nki.tensor_views import TensorViews, pattern_elements
from trnsim.sim.memory import Allocation, MemoryKind


class DynSlice:
    """`nl.ds(start, size)`: a slice of `size` elements from `start`."""

    __slots__ = ("size", "start", "step")

    def __init__(self, start: int, size: int, step: int = 1) -> None:
        try:
            self.start, self.size, self.step = operator.index(start), operator.index(size), operator.index(step)
        except TypeError:
            raise UsageError(
                f"nl.ds(start, size) takes integers, got nl.ds({start!r}, {size!r})", user_location()
            ) from None


class NkiTensor(
    TileOperators, TensorViews, TensorReshapes, TensorSelect, TensorLayoutViews, TensorFastIndex, TensorMemory
):
    """A tensor view. Shapes are numpy-like; for SBUF/PSUM tiles dim 0 is the partition dim."""

    __slots__ = ("__weakref__", "_arrays", "_pattern_run", "_region", "alloc", "key", "shape")
    __array_priority__ = 1000  # numpy defers binary operators to us
    is_indirect_dma = False  # rows from an index tile (IndirectTensor)

    def __init__(self, alloc: Allocation, key: tuple[Entry, ...] | None = None) -> None:
        self.alloc = alloc
        self.key: tuple[Entry, ...] = key if key is not None else tuple((0, d, 1) for d in alloc.shape)
        self._region: Region | None = None
        # contiguous run bytes of a static access-pattern view, set where it is made (tensor_views.py): its
        # bounds were checked there, its region and runs follow from its steps and counts
        self._pattern_run: int | None = None
        arrays = [k for k in self.key if isinstance(k, np.ndarray)]
        self._arrays = bool(arrays)  # the key never changes, so neither does this
        if arrays:
            self.shape: tuple[int, ...] = tuple(np.broadcast_shapes(*(a.shape for a in arrays)))
        else:
            self.shape = tuple(_slice_len(k) for k in self.key if isinstance(k, tuple))

    # -- basic properties ---------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype[Any]:
        return self.alloc.dtype

    @property
    def buffer(self) -> MemoryKind:
        return self.alloc.kind

    @property
    def name(self) -> str:
        return self.alloc.name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return prod(self.shape)

    @property
    def itemsize(self) -> int:
        return int(self.dtype.itemsize)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def has_index_arrays(self) -> bool:
        return self._arrays

    @property
    def is_whole(self) -> bool:
        return all(
            isinstance(k, tuple) and k[0] == 0 and k[1] == d and k[2] == 1 for k, d in zip(self.key, self.alloc.shape)
        )

    def __repr__(self) -> str:
        name = self.alloc.name or "tensor"
        return f"NkiTensor({name}, shape={list(self.shape)}, {dtypes.name(self.dtype)}, {self.buffer})"

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self) -> Any:
        raise UsageError("NKI tensors cannot be iterated over; index them with slices inside a loop", user_location())

    def __bool__(self) -> bool:
        """`if tensor:` is a presence test (a tensor, not None), as in NKI: its NkiTensor defines no truth
        value, so Python's default holds. Branching on data needs nl.fori_loop/while_loop or registers."""
        return True

    # -- indexing ------------------------------------------------------------------------------------
    def __getitem__(self, index: Any) -> NkiTensor:
        if fast_paths.enabled():
            view = self._fast_view(index)
            if view is not None:
                return view
        entries = index if isinstance(index, tuple) else (index,)
        if any(isinstance(i, NkiTensor) for i in entries):  # an index tile: indirect DMA rows (tensor_indirect.py)
            return IndirectTensor(self.alloc, indirect_key(self, entries, NkiTensor))
        return type(self)(self.alloc, self._compose(index))

    def _indirect_view(self, alloc: Allocation, key: tuple[Entry, ...]) -> NkiTensor:
        """A view whose addresses come from run-time values (checked at use: IndirectTensor)."""
        return IndirectTensor(alloc, key)

    def _lazy_pattern_view(
        self, alloc: Allocation, pairs: list[tuple[int, int]], start: int, bounds: tuple[int, int], run: int
    ) -> NkiTensor:
        """A static access-pattern view of HBM elements `start + sum(i_k * step_k)`, in bounds (checked by the
        caller) from element bounds[0] to bounds[1], in contiguous runs of `run` bytes (PatternTensor)."""
        view = PatternTensor.__new__(PatternTensor)
        view.alloc, view.shape, view._arrays, view._pattern = alloc, tuple(n for _, n in pairs), True, (pairs, start)
        view._region, view._pattern_run = None, run
        view._region = view._box([bounds[0]], [bounds[1]])
        return view

    def _compose(self, index: Any) -> tuple[Entry, ...]:
        """The key of `self[index]`: each visible dim's entry narrowed by its index (bounds-checked)."""
        index = self._full_index(index)
        if self.has_index_arrays:
            return self._compose_expression(index)
        visible = [d for d, k in enumerate(self.key) if isinstance(k, tuple)]
        key: list[Entry] = list(self.key)
        keeps_partition = self._keeps_partition()
        for pos, (d, idx) in enumerate(zip(visible, index)):
            start, stop, step = self.key[d]  # type: ignore[misc]
            rel = self._relative(idx, _slice_len((start, stop, step)), pos)
            if d == 0 and keeps_partition and isinstance(rel, int):
                rel = (rel, rel + 1, 1)  # NKI: an int on an on-chip tile's partition dim keeps it, size 1
            if isinstance(rel, tuple):
                key[d] = (start + rel[0] * step, start + rel[1] * step, step * rel[2])
            else:
                key[d] = start + rel * step  # an int, or an index array (bounds checked at use, under masks)
        if keeps_partition and len(visible) >= 2 and sum(isinstance(k, tuple) for k in key) < 2:
            # NKI language guide: on-chip tensors stay at least 2-D; an int on a free dim drops it "unless
            # dropping would make the result < 2-D, in which case the last free dim is kept at 1".
            d, last = visible[-1], key[visible[-1]]
            if d > 0 and isinstance(last, int):
                step = self.key[d][2]  # type: ignore[index]
                key[d] = (last, last + step, step)
        return tuple(key)

    def _keeps_partition(self) -> bool:
        """Whether an int index on dim 0 keeps it (size 1): on-chip tiles whose dim 0 is the partition dim."""
        blocks = self.alloc.blocks
        leading_blocks = self.alloc.root in BLOCK_TENSORS or (blocks is not None and blocks.par_axis > 0)
        return self.alloc.kind is not MemoryKind.HBM and not leading_blocks

    def _compose_expression(self, index: tuple[Any, ...]) -> tuple[Entry, ...]:
        """`self[index]` for a view made of index arrays (an index expression or `.ap()` pattern): the index
        picks positions of this view, and each array entry keeps the allocation indices at those positions."""
        rel = tuple(self._relative(idx, n, pos) for pos, (idx, n) in enumerate(zip(index, self.shape)))
        for pos, (r, n) in enumerate(zip(rel, self.shape)):
            if isinstance(r, np.ndarray) and r.size and (r.min() < 0 or r.max() >= n):
                raise BoundsError(
                    f"index expression reaches {int(r.min())}..{int(r.max())} in dim {pos} of {self!r} "
                    f"(allowed 0..{n - 1})",
                    user_location(),
                    rule="bounds",
                )
        picks = tuple(slice(*r) if isinstance(r, tuple) else r for r in rel)
        return tuple(
            np.array(np.broadcast_to(k, self.shape)[picks]) if isinstance(k, np.ndarray) else k for k in self.key
        )

    def _full_index(self, index: Any) -> tuple[Any, ...]:
        """`index` as one entry per visible dim (Ellipsis expanded, missing dims whole); no mixing of index
        expressions with slices."""
        if not isinstance(index, tuple):
            index = (index,)
        ndim = len(self.shape)
        if any(i is Ellipsis for i in index):
            pos = next(i for i, v in enumerate(index) if v is Ellipsis)
            fill = ndim - (len(index) - 1)
            index = index[:pos] + (slice(None),) * fill + index[pos + 1 :]
        if len(index) > ndim:
            raise BoundsError(f"too many indices for {self!r}: got {len(index)}, it has {ndim} dims", user_location())
        index = index + (slice(None),) * (ndim - len(index))
        arrays = [i for i in index if isinstance(i, np.ndarray) or _is_index_expr(i)]
        if arrays and any(isinstance(i, slice | DynSlice) for i in index):
            raise UsageError(
                "mixing index expressions (nl.arange/nl.mgrid) with slices in one index is not supported: "
                "use an index expression for every dim",
                user_location(),
            )
        return index

    def _relative(self, idx: Any, length: int, pos: int) -> Slice | int | np.ndarray:
        """One dim's index against a dim of `length`: a (start, stop, step) slice, an int or an index array."""
        dim_name = _DimName(pos, self)  # formatted only when an error message needs it
        if isinstance(idx, DynSlice):
            if idx.start < 0 or idx.size < 0 or idx.start + (idx.size - 1) * idx.step >= length + (idx.size == 0):
                raise BoundsError(
                    f"nl.ds({idx.start}, {idx.size}) is out of bounds for {dim_name} (size {length})",
                    user_location(),
                    rule="bounds",
                )
            return (idx.start, idx.start + idx.size * idx.step, idx.step)
        if isinstance(idx, slice):
            a, b, c = idx.start, idx.stop, idx.step
            c = 1 if c is None else int(c)
            if c <= 0:
                raise UsageError(f"slice step must be positive, got {c}", user_location())
            a = 0 if a is None else int(a) + (length if int(a) < 0 else 0)
            b = length if b is None else int(b) + (length if int(b) < 0 else 0)
            if not (0 <= a <= length and 0 <= b <= length):
                raise BoundsError(
                    f"slice {idx.start}:{idx.stop} is out of bounds for {dim_name} (size {length})",
                    user_location(),
                    rule="bounds",
                )
            return (a, max(a, b), c)
        if isinstance(idx, np.ndarray) or _is_index_expr(idx):
            return np.asarray(idx, dtype=np.int64)
        try:
            i = operator.index(idx)
        except TypeError:
            raise UsageError(f"unsupported index {idx!r} for {dim_name}", user_location()) from None
        i = i + length if i < 0 else i
        if not 0 <= i < length:
            raise BoundsError(
                f"index {idx} is out of bounds for {dim_name} (size {length})", user_location(), rule="bounds"
            )
        return i

    def __setitem__(self, index: Any, value: Any) -> None:
        if hasattr(value, "reduce_into"):  # nl.loop_reduce(...): the destination is the other operand
            value.reduce_into(self[index])
            return
        tile_language().assign(self[index], value)


class IndirectTensor(NkiTensor):
    """A view of an HBM tensor whose rows come from an index tile (gather/scatter DMA): its rows are
    checked when a DMA uses it, under the DMA's oob_mode (tensor_indirect.py)."""

    __slots__ = ()
    is_indirect_dma = True

    def check_bounds(self, mask: np.ndarray | None, location: str) -> None:
        check_in_bounds(self, mask, location)


class PatternTensor(NkiTensor):
    """A static `.ap()` view of HBM whose index array is built when its key is first read (values,
    re-indexing): a DMA in a timing run needs only its region and runs, known from the pattern."""

    __slots__ = ("_pattern",)
    _pattern: tuple[list[tuple[int, int]], int]  # (the [step, count] pairs, the first element)

    @property
    def key(self) -> tuple[Entry, ...]:
        try:
            return _KEY_SLOT.__get__(self)
        except AttributeError:
            pairs, start = self._pattern
            key = (pattern_elements(pairs, start),)
            _KEY_SLOT.__set__(self, key)
            return key

    @key.setter
    def key(self, value: tuple[Entry, ...]) -> None:
        _KEY_SLOT.__set__(self, value)


_KEY_SLOT: Any = NkiTensor.__dict__["key"]  # NkiTensor's slot, under PatternTensor's property


# Legacy block tensors ([blocks..., par_dim(P), free...]) allocated whole: their dim 0 is a block dim, which an
# int index drops (tiles.new_tensor registers them; block-by-block ones carry alloc.blocks).
BLOCK_TENSORS: weakref.WeakSet[Allocation] = weakref.WeakSet()


def _is_index_expr(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind in "iu"


class _DimName:
    """ "dim I of TENSOR" for error messages, built lazily: indexing is hot and almost never fails."""

    __slots__ = ("dim", "tensor")

    def __init__(self, dim: int, tensor: Any) -> None:
        self.dim = dim
        self.tensor = tensor

    def __str__(self) -> str:
        return f"dim {self.dim} of {self.tensor!r}"

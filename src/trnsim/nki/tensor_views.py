"""NkiTensor's storage-level members (NKI 0.6): strides, offset, access patterns, reinterpret_cast.

A view's layout is described against its allocation's storage flattened row-major: `offset` is the
first element, `strides` the element step of each visible dim, `get_pattern()` the `[[stride, count],
...]` pairs. `.ap(pattern, offset, scalar_offset, vector_offset, indirect_dim, dtype)` builds a view
from such a pattern directly (NKI docs, deep-dives/nki-aps): element `[i0, i1, ...]` of the result is
storage element `base + offset + sum(i_k * step_k)`, where `base` is this view's own offset; on SBUF/PSUM
the first pair must walk the partitions one by one. `scalar_offset` (a (1, 1) integer tile) adds
`value * stride(indirect_dim)`; `vector_offset` (one integer per partition, indirect_dim 0) adds
`vector[i0] * stride(0)` per partition. The dynamic values are read when the view is made, so in
functional mode they are the tile's values at that point of the program; in timing mode (no values)
they are taken as 0: addresses do not change engine time in trnsim's model.

Pattern views index the storage with integer arrays, so they cannot be sliced again (as in NKI, an
indirect view cannot be re-indexed).
"""

from __future__ import annotations

import operator
from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import BoundsError, DtypeError, ShapeMismatchError, UsageError
from trnsim.nki import fast_paths
from trnsim.nki.context import user_location
from trnsim.sim.memory import Allocation, MemoryKind

if TYPE_CHECKING:
    from trnsim.nki.tensor import NkiTensor


def alias_allocation(alloc: Allocation, shape: tuple[int, ...], dtype: np.dtype[Any] | None = None) -> Allocation:
    """`alloc`'s bytes seen with another shape and, for bit reinterpretation, another dtype."""
    dt = alloc.dtype if dtype is None else dtype
    root = alloc.root
    if dt == root.dtype:
        return alloc.alias(shape)
    a = alloc.alias(root.shape)  # the root's bytes, then seen as `dt` elements in `shape`
    a.dtype = dt
    a.shape = shape
    a.row_elems = prod(shape[1:]) if len(shape) > 1 else 1
    a.storage = None if root.storage is None else root.storage.reshape(-1).view(dt).reshape(shape)
    return a


def _pairs(pattern: Any, loc: str | None) -> list[tuple[int, int]]:
    try:
        pairs = [(operator.index(s), operator.index(n)) for s, n in pattern]
    except (TypeError, ValueError):
        raise UsageError(
            f"an access pattern is a list of [step, count] pairs such as [[512, 128], [1, 512]], got {pattern!r}", loc
        ) from None
    if not pairs or any(n < 1 for _, n in pairs):
        raise UsageError(f"an access pattern needs at least one [step, count] pair with count >= 1, got {pattern}", loc)
    return pairs


def _dynamic_values(t: Any, what: str, loc: str | None) -> np.ndarray | None:
    """The integer values of an offset tile (None in timing mode, where tiles hold no values)."""
    if t.buffer is not MemoryKind.SBUF:
        raise UsageError(f"{what} must be an SBUF tile, got {t!r}", loc)
    if t.dtype.kind not in "iu":
        raise DtypeError(f"{what} must hold integers, got {dtypes.name(t.dtype)}", loc, rule="dtype")
    if t.alloc.storage is None:
        return None
    return np.asarray(t.read(), dtype=np.int64)


class TensorViews:
    """Mixin for NkiTensor: storage layout queries and access-pattern views."""

    __slots__ = ()
    if TYPE_CHECKING:
        alloc: Allocation
        key: tuple[Any, ...]
        shape: tuple[int, ...]

        @property
        def dtype(self) -> np.dtype[Any]: ...
        @property
        def buffer(self) -> MemoryKind: ...
        @property
        def has_index_arrays(self) -> bool: ...
        def _indirect_view(self, alloc: Allocation, key: tuple[Any, ...]) -> NkiTensor: ...
        def _lazy_pattern_view(
            self, alloc: Allocation, pairs: list[tuple[int, int]], start: int, bounds: tuple[int, int], run: int
        ) -> NkiTensor: ...

    def _storage_strides(self) -> list[int]:
        return [prod(self.alloc.shape[d + 1 :]) for d in range(len(self.alloc.shape))]

    def _require_affine(self, what: str) -> None:
        if self.has_index_arrays:
            raise UsageError(
                f"{what} is not defined for a view indexed by index expressions or built by .ap(); "
                "take it from the tensor the view came from",
                user_location(),
            )

    @property
    def strides(self) -> tuple[int, ...]:
        """Element step in storage of each visible dim."""
        self._require_affine("strides")
        full = self._storage_strides()
        return tuple(k[2] * s for k, s in zip(self.key, full) if isinstance(k, tuple))

    @property
    def offset(self) -> int:
        """Storage element where the view starts."""
        self._require_affine("offset")
        full = self._storage_strides()
        return sum((k[0] if isinstance(k, tuple) else int(k)) * s for k, s in zip(self.key, full))

    def get_pattern(self) -> list[list[int]]:
        """The view as `[[stride, count], ...]`, one pair per dim (a starting point for `.ap()`)."""
        return [[s, n] for s, n in zip(self.strides, self.shape)]

    def is_contiguous(self) -> bool:
        """True if the view covers storage row-major without gaps (on chip: within each partition)."""
        if self.has_index_arrays:
            return False
        first = 0 if self.buffer is MemoryKind.HBM else 1
        expect = 1
        for d in range(len(self.shape) - 1, first - 1, -1):
            if self.shape[d] != 1 and self.strides[d] != expect:
                return False
            expect *= self.shape[d]
        return True

    def is_indirect(self) -> bool:
        """True if the view addresses storage through index arrays (dynamic offsets, index expressions)."""
        return self.has_index_arrays

    def reinterpret_cast(self, dtype: Any) -> NkiTensor:
        """The same bytes read as `dtype`; the last dim's count scales by the itemsize ratio."""
        loc = user_location()
        self._require_affine("reinterpret_cast")
        dt = _resolve(dtype, loc)
        old = self.dtype.itemsize
        strides, shape = list(self.strides), list(self.shape)
        if not shape or (shape[-1] > 1 and strides[-1] != 1):
            raise UsageError(f"reinterpret_cast needs a view whose last dim is contiguous, got {self!r}", loc)
        last_bytes = shape[-1] * old
        scaled = [s * old for s in strides[:-1]] + [self.offset * old]
        if last_bytes % dt.itemsize or any(b % dt.itemsize for b in scaled):
            raise ShapeMismatchError(
                f"reinterpret_cast({dtypes.name(dt)}): {self!r} does not split into whole {dt.itemsize}-byte "
                "elements (last dim, strides and offset must be multiples of it)",
                loc,
                rule="shape",
            )
        pattern = [[s * old // dt.itemsize, n] for s, n in zip(strides[:-1], shape[:-1])]
        pattern.append([1, last_bytes // dt.itemsize])
        return self._pattern_view(pattern, self.offset * old // dt.itemsize, dt, loc)

    def ap(
        self,
        pattern: Any,
        offset: int | None = None,
        scalar_offset: Any = None,
        vector_offset: Any = None,
        indirect_dim: int = 0,
        dtype: Any = None,
    ) -> NkiTensor:
        """A view given by an explicit `[[step, count], ...]` access pattern (see the module docstring)."""
        loc = user_location()
        pairs = _pairs(pattern, loc)
        dt = self.dtype if dtype is None else _resolve(dtype, loc)
        if scalar_offset is not None and vector_offset is not None:
            raise UsageError(".ap() takes at most one of scalar_offset and vector_offset", loc)
        base_bytes = (0 if self.has_index_arrays else self.offset) * self.dtype.itemsize
        if base_bytes % dt.itemsize:
            raise ShapeMismatchError(
                f".ap(dtype={dtypes.name(dt)}): the view starts at byte {base_bytes}, not a whole element",
                loc,
                rule="shape",
            )
        start = base_bytes // dt.itemsize + (0 if offset is None else operator.index(offset))
        if scalar_offset is None and vector_offset is None:
            return self._pattern_view(pairs, start, dt, loc)
        dyn_stride = self._indirect_stride(indirect_dim, dt, loc)
        if isinstance(scalar_offset, int | np.integer):  # a register value, e.g. a rank id from nki.collectives
            return self._pattern_view(pairs, start + int(scalar_offset) * dyn_stride, dt, loc, dynamic=True)
        if not hasattr(scalar_offset, "shape") and hasattr(scalar_offset, "__index__"):  # a VirtualRegister
            return self._pattern_view(pairs, start + operator.index(scalar_offset) * dyn_stride, dt, loc, dynamic=True)
        if scalar_offset is not None:
            if tuple(scalar_offset.shape) != (1, 1):
                raise ShapeMismatchError(
                    f"scalar_offset must be a (1, 1) tile, got shape {list(scalar_offset.shape)}", loc, rule="shape"
                )
            vals = _dynamic_values(scalar_offset, "scalar_offset", loc)
            at = start + (0 if vals is None else int(vals[0, 0])) * dyn_stride
            return self._pattern_view(pairs, at, dt, loc, dynamic=True)
        if indirect_dim != 0:
            raise UsageError(f"vector_offset supports indirect_dim=0 only, got {indirect_dim}", loc)
        if vector_offset.shape[0] != pairs[0][1] or vector_offset.size != vector_offset.shape[0]:
            raise ShapeMismatchError(
                f"vector_offset must hold one index per partition of the pattern ({pairs[0][1]}, 1), "
                f"got shape {list(vector_offset.shape)}",
                loc,
                rule="shape",
            )
        vals = _dynamic_values(vector_offset, "vector_offset", loc)
        rows = np.zeros(pairs[0][1], dtype=np.int64) if vals is None else vals.reshape(-1)
        # the leading step is ignored: each partition starts at its own row (NKI docs, vector dynamic access)
        return self._pattern_view([(0, pairs[0][1]), *pairs[1:]], start, dt, loc, rows * dyn_stride, dynamic=True)

    def _indirect_stride(self, indirect_dim: int, dt: np.dtype[Any], loc: str | None) -> int:
        self._require_affine("a dynamic offset")
        if not 0 <= indirect_dim < len(self.shape):
            raise UsageError(f"indirect_dim {indirect_dim} is out of range for {self!r}", loc)
        stride_bytes = self.strides[indirect_dim] * self.dtype.itemsize
        if stride_bytes % dt.itemsize:
            raise ShapeMismatchError(
                f"indirect_dim {indirect_dim} steps {stride_bytes} bytes, not whole {dtypes.name(dt)} elements",
                loc,
                rule="shape",
            )
        return stride_bytes // dt.itemsize

    def _pattern_view(
        self,
        pairs: Any,
        start: int,
        dt: np.dtype[Any],
        loc: str | None,
        partition_starts: np.ndarray | None = None,
        dynamic: bool = False,
    ) -> NkiTensor:
        """The view of storage elements `start + sum(i_k * step_k)`. A `dynamic` one (scalar_offset /
        vector_offset: addresses known at run time) is an indirect view: its bounds are checked when an instruction
        uses it, under a DMA's oob_mode (tensor_indirect.py), instead of here."""
        root = self.alloc.root
        total_bytes = prod(root.shape) * root.dtype.itemsize
        on_chip = root.kind is not MemoryKind.HBM
        row_bytes = (prod(root.shape[1:]) if len(root.shape) > 1 else 1) * root.dtype.itemsize
        if (row_bytes if on_chip else total_bytes) % dt.itemsize:
            raise ShapeMismatchError(
                f".ap(dtype={dtypes.name(dt)}): {self!r} does not split into whole {dt.itemsize}-byte elements",
                loc,
                rule="shape",
            )
        counts = [int(n) for _, n in pairs]
        n_elems = total_bytes // dt.itemsize
        # A static HBM pattern in the shortcut: its bounds, region and runs follow from its steps and counts, and
        # its index array is built only if something reads its key (values, re-indexing), not per DMA.
        lazy = not on_chip and not dynamic and fast_paths.enabled()
        flat = None if lazy else pattern_elements(pairs, start)
        if flat is not None and partition_starts is not None:
            flat = flat + partition_starts.reshape([-1] + [1] * (len(counts) - 1))
        if not dynamic:
            # an affine walk's extremes are the sums of each term's
            first = start + sum(s * (n - 1) for s, n in pairs if s < 0) if flat is None else int(flat.min())
            last = start + sum(s * (n - 1) for s, n in pairs if s > 0) if flat is None else int(flat.max())
            # On chip, a view past the end is an error only when an instruction uses it (its index arrays are
            # bounds-checked then, as NKI checks accesses): nkilib builds w.ap(..., offset=h) for every h of a loop
            # and uses it under `if h < h_size` (output_projection_tkg). HBM's lazy view needs its bounds now.
            if (first < 0 or last >= n_elems) and not on_chip:
                raise BoundsError(
                    f".ap() reaches storage elements {first}..{last} of {self.alloc.describe()}, "
                    f"which has {n_elems} {dtypes.name(dt)} elements",
                    loc,
                    rule="bounds",
                )
        if not on_chip:
            storage = alias_allocation(self.alloc, (n_elems,), dt)
            if flat is None:
                _finish_cast(root, dt)
                # runs continue while the last step is one element
                run = dt.itemsize * (counts[-1] if counts[-1] > 1 and pairs[-1][0] == 1 else 1)
                return self._lazy_pattern_view(storage, [(int(s), int(n)) for s, n in pairs], start, (first, last), run)
            key: tuple[Any, ...] = (flat,)
        else:
            assert flat is not None
            row = row_bytes // dt.itemsize
            if partition_starts is None and len(counts) > 1 and pairs[0][0] != row:
                raise UsageError(
                    f"on SBUF/PSUM the first [step, count] of an access pattern walks the partitions: its step must "
                    f"be the {row} elements of one partition, got {pairs[0][0]}",
                    loc,
                )
            storage = alias_allocation(self.alloc, (root.shape[0], row), dt)
            key = (flat // row, flat % row)
        _finish_cast(root, dt)
        if dynamic:
            return self._indirect_view(storage, key)
        return type(self)(storage, key)  # type: ignore[call-arg,return-value]


def pattern_elements(pairs: Any, start: int) -> np.ndarray:
    """Storage element `start + sum(i_k * step_k)` at each [i_0, i_1, ...] of the pattern's counts."""
    counts = [int(n) for _, n in pairs]
    flat = np.full(counts, start, dtype=np.int64)
    for axis, (step, n) in enumerate(pairs):
        shape = [1] * len(counts)
        shape[axis] = n
        flat = flat + (np.arange(n, dtype=np.int64) * step).reshape(shape)
    return flat


def _finish_cast(root: Allocation, dt: np.dtype[Any]) -> None:
    if dt != root.dtype and not root.fully_written:
        # written-element tracking is per root element; a reinterpreting view ends it (as view() does)
        root.poison_unwritten()
        root.mark_all_written()


def _resolve(dtype: Any, loc: str | None) -> np.dtype[Any]:
    try:
        return dtypes.resolve(dtype)
    except DtypeError as err:
        raise DtypeError(err.bare_message, loc, rule="dtype") from None

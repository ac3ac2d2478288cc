"""NkiTensor's shape-changing views: reshape, expand_dims, a dtype view of a whole tile, and assert_shape.

Each returns a new view of the same allocation (or the tensor itself); indexing and layout live in tensor.py
and tensor_views.py.
"""

from __future__ import annotations

import operator
from math import prod
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.nki.context import user_location
from trnsim.nki.tensor_views import alias_allocation as _alias
from trnsim.sim.memory import Allocation, MemoryKind


class TensorReshapes:
    """Mixin for NkiTensor: views with another shape or dtype."""

    __slots__ = ()
    if TYPE_CHECKING:
        alloc: Allocation
        key: tuple[Any, ...]
        shape: tuple[int, ...]

        def __init__(self, alloc: Allocation, key: tuple[Any, ...] | None = None) -> None: ...
        @property
        def dtype(self) -> np.dtype[Any]: ...
        @property
        def buffer(self) -> MemoryKind: ...
        @property
        def has_index_arrays(self) -> bool: ...
        @property
        def is_whole(self) -> bool: ...
        @property
        def size(self) -> int: ...
        @property
        def ndim(self) -> int: ...
        @property
        def itemsize(self) -> int: ...

    def reshape(self, *shape: Any) -> Self:
        try:
            new = tuple(int(s) for s in (shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape))
        except (TypeError, ValueError):
            raise UsageError(f"reshape takes a shape of ints, got {shape!r}", user_location()) from None
        if not self.is_whole:
            raise UsageError("reshape is supported on whole tensors only (not on slices)", user_location())
        if new.count(-1) > 1 or any(s < -1 for s in new):
            raise UsageError(f"reshape to {list(new)}: dims must be >= 0, with at most one -1", user_location())
        if -1 in new:
            known = prod(s for s in new if s != -1)
            if known == 0:  # -1 next to a 0 dim could be any size
                raise UsageError(
                    f"cannot reshape {self!r} to {list(new)}: -1 is ambiguous with a 0 dim", user_location()
                )
            new = tuple(self.size // known if s == -1 else s for s in new)
        if prod(new) != self.size:
            raise UsageError(f"cannot reshape {self!r} to {list(new)}: sizes differ", user_location())
        return type(self)(_alias(self.alloc, new))

    def expand_dims(self, axis: int) -> Self:
        """A view with a new size-1 dim at `axis` (nl.expand_dims); on-chip tiles keep dim 0 as partitions."""
        loc = user_location()
        try:
            ax = operator.index(axis)
        except TypeError:
            raise UsageError(f"expand_dims axis must be an int, got {axis!r}", loc) from None
        ax = ax + self.ndim + 1 if ax < 0 else ax
        lowest = 0 if self.buffer is MemoryKind.HBM else 1
        if not lowest <= ax <= self.ndim:
            raise UsageError(
                f"expand_dims axis {axis} is out of range for {self!r}: allowed {lowest}..{self.ndim}"
                + ("" if lowest == 0 else " (dim 0 of an on-chip tile is the partition dim)"),
                loc,
            )
        if self.has_index_arrays:
            raise UsageError("expand_dims of a tensor indexed with index expressions is not supported", loc)
        visible = [d for d, k in enumerate(self.key) if isinstance(k, tuple)]
        at = visible[ax] if ax < len(visible) else len(self.key)  # allocation dim to insert before
        shape = (*self.alloc.shape[:at], 1, *self.alloc.shape[at:])
        return type(self)(_alias(self.alloc, shape), (*self.key[:at], (0, 1, 1), *self.key[at:]))

    def view(self, dtype: Any) -> Self:
        """The whole tile's bytes reinterpreted as `dtype`; the last dim scales by the itemsize ratio."""
        loc = user_location()
        try:
            dt = dtypes.resolve(dtype)
        except DtypeError as err:
            raise DtypeError(err.bare_message, loc, rule="dtype") from None
        if dt == self.dtype:
            return self  # a view as its own dtype (the NKI docs' nc_matmul example) reinterprets nothing
        if self.buffer is MemoryKind.HBM or not self.is_whole or self.ndim < 2:
            raise UsageError(
                f"view({dtypes.name(dt)}) reinterprets a whole on-chip tile, got {self!r}"
                + ("" if self.is_whole else " (a slice)")
                + "; view the whole tile, then index the result",
                loc,
            )
        last_bytes = self.shape[-1] * self.itemsize
        if last_bytes % dt.itemsize:
            raise ShapeMismatchError(
                f"view({dtypes.name(dt)}): the last dim of {self!r} holds {last_bytes} bytes, not a multiple of "
                f"{dt.itemsize}",
                loc,
                rule="shape",
            )
        root = self.alloc.root
        if not root.fully_written:
            # Written-element tracking is per element of the root dtype; a reinterpreting view ends it for
            # this tile. Unwritten elements keep the poison value, but their reads no longer warn.
            root.poison_unwritten()
            root.mark_all_written()
        return type(self)(_alias(self.alloc, (*self.shape[:-1], last_bytes // dt.itemsize), dt))

    def assert_shape(self, shape: Any) -> Self:
        """Raise ShapeMismatchError unless this tensor has exactly `shape`."""
        want = tuple(shape) if isinstance(shape, tuple | list) else (shape,)
        if tuple(self.shape) != want:
            raise ShapeMismatchError(
                f"{self!r} has shape {list(self.shape)}, expected {list(want)}", user_location(), rule="shape"
            )
        return self

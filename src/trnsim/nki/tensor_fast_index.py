"""The common case of indexing a tensor view, in one pass: slices and ints on a view without index arrays.

A kernel indexes a tile for almost every instruction it issues (`acc[:m, :n]`, `x[i, :, c0:c1]`), so this
is the hottest Python of tracing. `_fast_view` builds exactly the key and shape NkiTensor's general path
(`_full_index`, `_relative`, `_compose`) would, for Python ints and slices of ints only; anything else (an
index expression, `nl.ds`, Ellipsis, a numpy integer, an index tile) or anything out of bounds returns None,
and the general path handles it (and raises its errors). Behind nki/fast_paths.py's switch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trnsim.sim.memory import Allocation

if TYPE_CHECKING:
    from trnsim.nki.tensor import NkiTensor

_WHOLE = slice(None)


class TensorFastIndex:
    """Mixin for NkiTensor: `self[index]` for ints and slices, or None where the general path must run."""

    __slots__ = ()
    if TYPE_CHECKING:
        alloc: Allocation
        key: tuple[Any, ...]
        shape: tuple[int, ...]
        _arrays: bool

        def _keeps_partition(self) -> bool: ...

    def _fast_view(self, index: Any) -> NkiTensor | None:
        entries = index if type(index) is tuple else (index,)
        shape = self.shape
        if self._arrays or len(entries) > len(shape):
            return None
        n_entries = len(entries)
        key = list(self.key)
        out_shape: list[int] = []
        pos = 0  # the visible dim (shape position) of allocation dim d
        for d, k in enumerate(key):
            if type(k) is not tuple:
                continue  # an int: a dim dropped by an earlier index
            start, _, step = k
            length = shape[pos]
            idx: Any = entries[pos] if pos < n_entries else _WHOLE
            pos += 1
            kind = type(idx)
            if kind is slice:
                a, b, c = idx.start, idx.stop, idx.step
                if c is None:
                    c = 1
                elif type(c) is not int or c <= 0:
                    return None
                if a is None:
                    a = 0
                elif type(a) is not int:
                    return None
                elif a < 0:
                    a += length
                if b is None:
                    b = length
                elif type(b) is not int:
                    return None
                elif b < 0:
                    b += length
                if not (0 <= a <= length and 0 <= b <= length):
                    return None
                if b < a:
                    b = a
                lo, hi, st = start + a * step, start + b * step, step * c
                key[d] = (lo, hi, st)
                out_shape.append(max(0, -(-(hi - lo) // st)))
            elif kind is int:
                i = idx + length if idx < 0 else idx
                if not 0 <= i < length:
                    return None
                if d == 0 and self._keeps_partition():  # NKI: an int on an on-chip tile's partition dim keeps it
                    key[d] = (start + i * step, start + (i + 1) * step, step)
                    out_shape.append(1)
                else:
                    key[d] = start + i * step
            else:
                return None
        if len(out_shape) < 2 <= len(shape) and self._keeps_partition():
            return None  # an on-chip view kept 2-D (the last free dim at size 1): the general path
        cls = type(self)
        view: Any = cls.__new__(cls)  # NkiTensor's slots, filled as its __init__ would for this key
        view.alloc = self.alloc
        view.key = tuple(key)
        view.shape = tuple(out_shape)
        view._region = None
        view._pattern_run = None
        view._arrays = False
        return view

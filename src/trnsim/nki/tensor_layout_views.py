"""NkiTensor's layout view primitives of NKI 0.5: permute, broadcast, expand_dim, squeeze_dim, reshape_dim,
flatten_dims, rearrange (NKI docs, nki.language.NkiTensor). No data moves: each rewrites the view's access pattern (its
`[[stride, count], ...]` pairs, `get_pattern()`) and builds the `.ap()` view of it. On SBUF/PSUM the partition
dim stays first (the docs' "on-chip tensors: dim must not be 0"). They take views with a plain layout (whole
tensors, slices); a view built from index expressions or `.ap()` (which includes these views' own results)
has no pattern to rewrite, so chains go through one call: `rearrange` splits, reorders and merges at once.
"""

from __future__ import annotations

import operator
from math import prod
from typing import TYPE_CHECKING, Any

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.nki.context import user_location
from trnsim.sim.memory import MemoryKind

if TYPE_CHECKING:
    from trnsim.nki.tensor import NkiTensor


def _int(x: Any, what: str) -> int:
    try:
        return operator.index(x)
    except TypeError:
        raise UsageError(f"{what} must be an int, got {x!r}", user_location()) from None


def _split(pattern: list[list[int]], d: int, sizes: list[int]) -> list[list[int]]:
    """Pair d of `pattern` split into len(sizes) pairs, outermost first."""
    step = pattern[d][0]
    return pattern[:d] + [[step * prod(sizes[i + 1 :]), n] for i, n in enumerate(sizes)] + pattern[d + 1 :]


def _merge(pattern: list[list[int]], a: int, b: int, what: str) -> list[list[int]]:
    """Pairs a..b of `pattern` merged into one; they must walk storage with one stride."""
    for (s0, _), (s1, n1) in zip(pattern[a:b], pattern[a + 1 : b + 1]):
        if s0 != s1 * n1:
            raise UsageError(
                f"{what}: dims {a}..{b} are not contiguous in storage (pattern {pattern[a : b + 1]}); "
                "merge before permuting or slicing with a step",
                user_location(),
            )
    return [*pattern[:a], [pattern[b][0], prod(n for _, n in pattern[a : b + 1])], *pattern[b + 1 :]]


class TensorLayoutViews:
    """Mixin for NkiTensor: views that reorder, broadcast, split or merge dims."""

    __slots__ = ()

    def _layout(self, what: str, dim: Any = None, lowest_on_chip: int = 1, extra: int = 0) -> tuple[Any, int]:
        """(the tensor, `dim` checked: in range and, on chip, not the partition dim)."""
        me: Any = self
        if dim is None:
            return me, -1
        n = len(me.shape) + extra
        d = _int(dim, f"{what} dim")
        d = d + n if d < 0 else d
        lowest = 0 if me.buffer is MemoryKind.HBM else lowest_on_chip
        if not lowest <= d < n:
            raise UsageError(
                f"{what}: dim {dim} is out of range for {me!r}: allowed {lowest}..{n - 1}"
                + ("" if lowest == 0 else " (dim 0 of an on-chip tensor is the partition dim)"),
                user_location(),
            )
        return me, d

    def permute(self, dims: Any) -> NkiTensor:
        """The dims reordered: result dim i is this view's dim dims[i]."""
        me, _ = self._layout("permute")
        order = [_int(d, "permute dims") for d in dims]
        if sorted(order) != list(range(len(me.shape))):
            raise UsageError(
                f"permute dims {list(order)} must be a permutation of 0..{len(me.shape) - 1}", user_location()
            )
        if me.buffer is not MemoryKind.HBM and order[0] != 0:
            raise UsageError(
                f"permute of on-chip {me!r} must keep the partition dim first, got {order}", user_location()
            )
        pattern = me.get_pattern()
        return me.ap([pattern[d] for d in order])

    def broadcast(self, dim: int, size: int) -> NkiTensor:
        """A size-1 dim repeated `size` times (stride 0)."""
        me, d = self._layout("broadcast", dim)
        if me.shape[d] != 1:
            raise ShapeMismatchError(
                f"broadcast({dim}, {size}): dim {dim} of {me!r} has size {me.shape[d]}, not 1",
                user_location(),
                rule="shape",
            )
        pattern = me.get_pattern()
        pattern[d] = [0, _int(size, "broadcast size")]
        return me.ap(pattern)

    def expand_dim(self, dim: int) -> NkiTensor:
        """A new size-1 dim at position `dim`."""
        me, d = self._layout("expand_dim", dim, extra=1)
        pattern = me.get_pattern()
        return me.ap([*pattern[:d], [1, 1], *pattern[d:]])

    def squeeze_dim(self, dim: int) -> NkiTensor:
        """The size-1 dim `dim` removed."""
        me, d = self._layout("squeeze_dim", dim)
        if me.shape[d] != 1:
            raise ShapeMismatchError(
                f"squeeze_dim({dim}): dim {dim} of {me!r} is not size 1", user_location(), rule="shape"
            )
        pattern = me.get_pattern()
        return me.ap(pattern[:d] + pattern[d + 1 :])

    def reshape_dim(self, dim: int, shape: Any) -> NkiTensor:
        """Dim `dim` split into `shape` (one entry may be -1, inferred)."""
        me, d = self._layout("reshape_dim", dim)
        sizes = [_int(s, "reshape_dim shape entries") for s in shape]
        n = me.shape[d]
        if sizes.count(-1) == 1 and prod(s for s in sizes if s != -1) > 0:
            sizes = [n // prod(s for s in sizes if s != -1) if s == -1 else s for s in sizes]
        if prod(sizes) != n or any(s < 1 for s in sizes):
            raise ShapeMismatchError(f"reshape_dim({dim}, {tuple(shape)}): sizes must multiply to {n}", user_location())
        return me.ap(_split(me.get_pattern(), d, sizes))

    def flatten_dims(self, start_dim: int, end_dim: int) -> NkiTensor:
        """Dims start_dim..end_dim (inclusive) merged into one; they must be contiguous in storage."""
        me, a = self._layout("flatten_dims", start_dim)
        _, b = self._layout("flatten_dims", end_dim)
        if b < a:
            raise UsageError(
                f"flatten_dims({start_dim}, {end_dim}): end_dim must not come before start_dim", user_location()
            )
        return me.ap(_merge(me.get_pattern(), a, b, f"flatten_dims({start_dim}, {end_dim})"))

    def rearrange(self, src_pattern: Any, dst_pattern: Any, fixed_sizes: dict[str, int] | None = None) -> NkiTensor:
        """einops-style: split the dims named by tuples in `src_pattern`, reorder to `dst_pattern`, merge the tuples
        there, e.g. t.rearrange(('b', ('h', 'w')), ('b', 'w', 'h'), {'h': 4}): reshape_dim, permute, flatten_dims."""
        me, _ = self._layout("rearrange")
        sizes = dict(fixed_sizes or {})
        if len(src_pattern) != len(me.shape):
            raise UsageError(
                f"rearrange: src_pattern {src_pattern} names {len(src_pattern)} dims, {me!r} has {len(me.shape)}",
                user_location(),
            )
        pattern: list[list[int]] = me.get_pattern()
        names: list[str] = []
        for d in range(len(src_pattern) - 1, -1, -1):  # split from the last dim so earlier positions hold
            entry = src_pattern[d]
            group = [entry] if isinstance(entry, str) else list(entry)
            if len(group) > 1:
                known = prod(sizes.get(n, 1) for n in group)
                missing = [n for n in group if n not in sizes]
                whole = known * (me.shape[d] // known if missing and known else 1)
                if len(missing) > 1 or known == 0 or whole != me.shape[d]:
                    raise UsageError(
                        f"rearrange: cannot split dim {d} (size {me.shape[d]}) into {tuple(group)} "
                        f"with fixed_sizes {sizes}",
                        user_location(),
                    )
                for n in missing:
                    sizes[n] = me.shape[d] // known
                pattern = _split(pattern, d, [sizes[n] for n in group])
            else:
                sizes.setdefault(group[0], me.shape[d])
            names[:0] = group
        flat_dst = [n for e in dst_pattern for n in ([e] if isinstance(e, str) else e)]
        if sorted(flat_dst) != sorted(names) or len(set(names)) != len(names):
            raise UsageError(
                f"rearrange: dst_pattern {dst_pattern} must use each name of {src_pattern} once", user_location()
            )
        order = [names.index(n) for n in flat_dst]
        if me.buffer is not MemoryKind.HBM and order[0] != 0:
            raise UsageError(f"rearrange of on-chip {me!r} must keep the partition dim first", user_location())
        pattern = [pattern[i] for i in order]
        ends, pos = [], 0
        for e in dst_pattern:
            width = 1 if isinstance(e, str) else len(e)
            ends.append((pos, pos + width - 1))
            pos += width
        for a, b in reversed(ends):
            if b > a:
                pattern = _merge(pattern, a, b, "rearrange")
        return me.ap(pattern)

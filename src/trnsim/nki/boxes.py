"""Dependency boxes of tensor views: per-dim bounds -> the box over [dim 0, dim 1, rest] an instruction
reads or writes (see isa/instruction.py), and the same box re-expressed for a reshaped alias's root."""

from __future__ import annotations

from math import prod

from trnsim.isa.instruction import Region


def _box3(shape: tuple[int, ...], lo: list[int], hi: list[int]) -> tuple[int, int, int, int, int, int]:
    """Per-dim inclusive bounds -> half-open box over [dim 0, dim 1, dims 2.. flattened]."""
    r = (lo[0], hi[0] + 1) if shape else (0, 1)
    c = (lo[1], hi[1] + 1) if len(shape) > 1 else (0, 1)
    e_lo = e_hi = 0
    stride = 1
    for d in range(len(shape) - 1, 1, -1):
        e_lo += lo[d] * stride
        e_hi += hi[d] * stride
        stride *= shape[d]
    return (r[0], r[1], c[0], c[1], e_lo, e_hi + 1)


def _to_root_box(
    reg: Region, shape: tuple[int, ...], root_shape: tuple[int, ...], itemsize: int = 1, root_itemsize: int = 1
) -> Region:
    """Re-express a box of a reshaped (or dtype-reinterpreting) alias as a (conservative) box of the root.

    The alias box's bytes span one flat range; it maps to the root box of that range, widened to whole
    inner rows where it crosses them.
    """
    aid, r0, r1, c0, c1, e0, e1 = reg
    d1 = shape[1] if len(shape) > 1 else 1
    rest = prod(shape[2:]) if len(shape) > 2 else 1
    if len(shape) == len(root_shape) == 2 and d1 * itemsize == root_shape[1] * root_itemsize:
        # same rows of bytes (a dtype view of a tile): map the columns exactly
        return (aid, r0, r1, c0 * itemsize // root_itemsize, -(-c1 * itemsize // root_itemsize), 0, 1)
    lo = ((r0 * d1 + c0) * rest + e0) * itemsize // root_itemsize
    hi = -(-(((r1 - 1) * d1 + (c1 - 1)) * rest + e1) * itemsize // root_itemsize)  # one past the last
    rd1 = root_shape[1] if len(root_shape) > 1 else 1
    rrest = prod(root_shape[2:]) if len(root_shape) > 2 else 1
    row = rd1 * rrest
    q0, q1 = lo // row, (hi - 1) // row
    if q0 != q1:
        return (aid, q0, q1 + 1, 0, rd1, 0, rrest)
    m0, m1 = (lo % row) // rrest, ((hi - 1) % row) // rrest
    if m0 != m1:
        return (aid, q0, q0 + 1, m0, m1 + 1, 0, rrest)
    return (aid, q0, q0 + 1, m0, m0 + 1, lo % rrest, (hi - 1) % rrest + 1)

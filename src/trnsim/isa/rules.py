"""Legality rules several instructions share, over isa-level operands (records call these)."""

from __future__ import annotations

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.alu import BINARY_OPS, INT_OPS
from trnsim.isa.operand import PSUM, SBUF, Operand

ON_CHIP = (SBUF, PSUM)

# Ops of the fp32-only compound instructions (tensor_tensor_scan, scalar_tensor_tensor): no bitvec ops (§3.6).
ARITH_OPS = {k: v for k, v in BINARY_OPS.items() if k not in INT_OPS}


def require_buffer(t: Operand, what: str, location: str, allow_psum: bool = True) -> None:
    """`t` must be on chip (SBUF, or PSUM where allowed)."""
    allowed = ON_CHIP if allow_psum else (SBUF,)
    if t.buffer not in allowed:
        where = " or ".join(k.upper() for k in allowed)
        raise UsageError(f"{what} must be in {where}, but {t} is in {t.buffer.upper()}", location, rule="buffer")


def check_partitions(t: Operand, core: CoreSpec, what: str, location: str) -> None:
    if t.buffer in ON_CHIP and t.partitions > core.sbuf.partitions:
        raise TileShapeError(
            f"{what} has partition dim {t.partitions}, exceeds {core.sbuf.partitions} (nl.tile_size.pmax)",
            location,
            rule="partition-dim",
        )


def integer_bits(op: str, tiles: list[Operand], location: str) -> None:
    """Bitwise ALU ops work on integer bits: every tile they read must be an integer tile.

    Checked on the call, not on the values, so functional and timing-only runs refuse the same kernels.
    """
    if op not in INT_OPS:
        return
    for t in tiles:
        if t.dtype.kind not in "iu":
            raise DtypeError(
                f"{op} works on integer bits, but {t} is {dtypes.name(t.dtype)}; use an integer tile",
                location,
                rule="int-op",
            )


def not_both_psum(a: Operand, b: Operand, what: str, location: str) -> None:
    """Two-input engine instructions read at most one operand from PSUM."""
    if a.buffer == PSUM and b.buffer == PSUM:
        raise UsageError(f"{what} inputs cannot both be in PSUM", location, rule="buffer")


def shape_is(t: Operand, partitions: int, free: int, what: str, location: str) -> None:
    """`t` must be [partitions, free] (elements per partition)."""
    if t.partitions != partitions or t.free != free:
        raise ShapeMismatchError(f"{what} must be [{partitions}, {free}], got {list(t.shape)}", location, rule="shape")

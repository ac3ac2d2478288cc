"""`nki.isa` virtual registers: register_alloc, register_move, register_load, register_store and
VirtualRegister (re-exported by nki/isa.py).

A register holds one 32-bit integer of one program. Kernels use registers as dynamic loop bounds
(`nl.dynamic_range(reg)`, `nl.fori_loop`) and conditions (`while reg:`, `nl.while_loop`). In functional
runs a register always has a value, so data-dependent loops run exactly as on the device. In timing runs a
register loaded from memory has no value; using it as a loop bound or condition is refused with the same
error as a loop bound read from a tile (nki/language_surface.py), while registers set from ints work.
register_alloc and register_move are trace-time bookkeeping of the compiler's register allocation (no
memory access, no instruction); register_load and register_store are sequencer instructions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.nki import emit_registers
from trnsim.nki.context import current, user_location
from trnsim.nki.nki_object import NKIObject
from trnsim.nki.tensor import NkiTensor

_INT32 = (-(2**31), 2**32 - 1)  # a register holds 32 bits: signed or unsigned values of that width
MAX_WHILE_ITERATIONS = 1 << 20  # as nl.while_loop's bound (nki/language_surface.py)


class VirtualRegister(NKIObject):
    """A virtual register on an engine sequencer (allocate with nisa.register_alloc)."""

    def __init__(self, state: Any = None, frozen: bool = False) -> None:
        self.value: int | None = None if state is None else _register_int(state, "VirtualRegister state")
        self.frozen = bool(frozen)
        self._true_tests = 0  # consecutive `while reg:` tests that found it non-zero

    def set(self, value: int | None, what: str) -> None:
        if self.frozen:
            raise UsageError(f"{what}: this register is frozen (read-only)", user_location(), rule="register")
        self.value = value

    def read(self, what: str) -> int:
        """The value for control flow; refused in timing runs when it was loaded from memory."""
        if self.value is None:
            loc = user_location()
            if current().machine.functional:
                raise UsageError(f"{what}: the register was never set; register_move or register_load it first", loc)
            raise UsageError(
                f"{what}: a register loaded from memory has no value in timing mode; set it from an int, or run the "
                "kernel in functional mode (nki.simulate)",
                loc,
                rule="dynamic-loop",
            )
        return self.value

    def __bool__(self) -> bool:  # `while reg:` (NKI's parser frontend)
        true = self.read("while <register>") != 0
        self._true_tests = self._true_tests + 1 if true else 0
        if self._true_tests > MAX_WHILE_ITERATIONS:  # a loop whose body never reloads it: an error, not a hang
            raise UsageError(
                f"while <register> stayed non-zero for {MAX_WHILE_ITERATIONS} iterations; reload the register "
                "(nisa.register_load) in the loop body",
                user_location(),
                rule="dynamic-loop",
            )
        return true

    def __index__(self) -> int:
        return self.read("a register used as an int")

    def __repr__(self) -> str:
        return f"VirtualRegister({'?' if self.value is None else self.value})"


def _register_int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer):
        raise UsageError(f"{what} must be an int or a VirtualRegister, got {x!r}", user_location(), rule="register")
    v = int(x)
    if not _INT32[0] <= v <= _INT32[1]:
        raise UsageError(f"{what} {v} does not fit a 32-bit register", user_location(), rule="register")
    return v


def _require_register(r: Any, what: str) -> VirtualRegister:
    if not isinstance(r, VirtualRegister):
        raise UsageError(
            f"{what} must be a register from nisa.register_alloc(), got {type(r).__name__}",
            user_location(),
            rule="register",
        )
    return r


def register_alloc(x: Any = None) -> VirtualRegister:
    """A new register: uninitialised (None), set to an int, or loaded from a one-element tensor."""
    reg = VirtualRegister()
    if isinstance(x, NkiTensor):  # nki-library kernels pass a tensor element, e.g. register_alloc(t[0, 0])
        reg.value = emit_registers.register_load(x)
    elif x is not None:
        reg.value = _register_int(x, "register_alloc x")
    return reg


def register_move(dst: Any, src: Any) -> None:
    """dst = src (an int constant or another register)."""
    reg = _require_register(dst, "register_move dst")
    value = src.value if isinstance(src, VirtualRegister) else _register_int(src, "register_move src")
    reg.set(value, "register_move")


def register_load(dst: Any, src: NkiTensor) -> None:
    """dst = the one element of src (HBM or SBUF)."""
    reg = _require_register(dst, "register_load dst")
    reg.set(reg.value, "register_load")  # a frozen register refuses before the instruction is issued
    reg.set(emit_registers.register_load(src), "register_load")


def register_store(dst: NkiTensor, src: Any) -> None:
    """dst (one element, HBM or SBUF) = the register's value."""
    reg = _require_register(src, "register_store src")
    if reg.value is None and current().machine.functional:
        reg.read("register_store")  # the never-set error
    emit_registers.register_store(dst, reg.value)

"""Where a kernel is being traced: the machine, the core, the SPMD program ids, the user's source line."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trnsim.errors import UsageError

if TYPE_CHECKING:
    from trnsim.sim.machine import Machine

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Frames in these folders are the simulator's machinery; kernels (trnsim/kernels, user files) are not.
_MACHINERY = (
    *(os.path.join(_PACKAGE_DIR, d) + os.sep for d in ("nki", "isa", "sim", "runtime", "hw", "report")),
    os.path.join(_PACKAGE_DIR, "dtypes.py"),
    os.path.join(_PACKAGE_DIR, "errors.py"),
)


@dataclass
class TraceContext:
    machine: Machine
    core: int = 0
    program_id: tuple[int, ...] = (0,)
    grid: tuple[int, ...] = (1,)
    kernel_name: str = ""
    # The instruction whose result lives in a fresh tile, by tile allocation id (for retargeting).
    fresh: dict[int, int] = field(default_factory=dict)
    # PSUM regions some nc_matmul has written: auto-accumulate adds to them instead of overwriting.
    psum_touched: set[tuple[int, ...]] = field(default_factory=set)  # isa.instruction.Region boxes
    # nl.shared_hbm tensors are one tensor for every SPMD program of a launch: the k-th one a program
    # creates is the k-th one program 0 created (shared list, per-program counter).
    shared_hbm: list[Any] = field(default_factory=list)
    shared_count: int = 0


_local = threading.local()


def current() -> TraceContext:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        raise UsageError(
            "this nki call must run inside a kernel: decorate the function with @nki.jit and call it through "
            "nki.simulate(kernel)(...), trnsim.nki.profile(kernel)(...) or kernel[grid](...)",
            user_location(),
        )
    return ctx


def maybe_current() -> TraceContext | None:
    return getattr(_local, "ctx", None)


class activate:
    """Context manager that makes `ctx` the current trace context."""

    def __init__(self, ctx: TraceContext) -> None:
        self.ctx = ctx

    def __enter__(self) -> TraceContext:
        self.prev = getattr(_local, "ctx", None)
        _local.ctx = self.ctx
        return self.ctx

    def __exit__(self, *exc: object) -> None:
        _local.ctx = self.prev


def outside_location() -> str:
    """'file:line' of the innermost frame outside the whole trnsim package (who called a library kernel)."""
    f = sys._getframe(1)
    while f is not None:
        fname = f.f_code.co_filename
        if not fname.startswith(_PACKAGE_DIR + os.sep) and not fname.startswith("<frozen"):
            return f"{fname}:{f.f_lineno}"
        f = f.f_back  # type: ignore[assignment]
    return "<unknown>"


def is_machinery(filename: str) -> bool:
    return filename.startswith(_MACHINERY)


_LOCATIONS: dict[tuple[str, int], str] = {}  # one string per kernel line, shared by its instructions


def user_location() -> str:
    """'file:line' of the innermost frame outside the trnsim package (the kernel's own code). Every instruction
    carries one, so a line's string is made once and shared (a million-instruction trace kept ~100 MB of copies)."""
    f = sys._getframe(1)
    while f is not None:
        fname = f.f_code.co_filename
        if not fname.startswith(_MACHINERY) and not fname.startswith("<frozen"):
            key = (fname, f.f_lineno)
            loc = _LOCATIONS.get(key)
            if loc is None:
                loc = _LOCATIONS[key] = f"{fname}:{f.f_lineno}"
            return loc
        f = f.f_back  # type: ignore[assignment]
    return "<unknown>"

"""The recorder of a functional kernel run: which instructions' value steps a replay re-runs, and why a run may
not be replayed (nki/functional_replay.py explains the rules and builds the replay).

Kept apart from the replay so that the modules a recorder listens to (issue, operands, tensor memory, builders)
import this leaf and not the replay, which itself reads operands and tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from trnsim.nki.context import TraceContext, user_location

# The recorder of the functional run in progress (None: no recording; read by issue, NkiTensor.read, write).
RECORDING: Recorder | None = None

# Closures (module, qualified name) whose values depend only on their instruction's operand tiles and on
# variables fixed when the instruction is issued: checked by reading each one (see tests/compiler/
# test_kernel_replay.py for the kernels that exercise them). A closure not listed makes its kernel trace in
# full on every call.
REPLAYABLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("trnsim.nki.emit_matmul", "nc_matmul.<locals>.<lambda>"),
        ("trnsim.nki.emit_matmul", "nc_transpose.<locals>.<lambda>"),
        ("trnsim.nki.emit_movement", "dma_copy.<locals>.<lambda>"),
        ("trnsim.nki.emit_movement", "dma_transpose.<locals>.<lambda>"),
        ("trnsim.nki.emit_movement", "tensor_copy.<locals>.values"),
        ("trnsim.nki.emit_movement", "broadcast_copy.<locals>.<lambda>"),
        ("trnsim.nki.emit_movement", "memset.<locals>.<lambda>"),
        ("trnsim.nki.emit_arith", "activation.<locals>.compute"),
        ("trnsim.nki.emit_arith", "activation.<locals>.reduce"),
        ("trnsim.nki.emit_arith", "tensor_tensor.<locals>.<lambda>"),
        ("trnsim.nki.emit_arith", "tensor_scalar.<locals>.values"),
        ("trnsim.nki.emit_arith", "tensor_tensor_scan.<locals>.values"),
        ("trnsim.nki.emit_arith", "scalar_tensor_tensor.<locals>.values"),
        ("trnsim.nki.emit_arith", "reciprocal.<locals>.<lambda>"),
        ("trnsim.nki.emit_reduce", "tensor_reduce.<locals>.values"),
        ("trnsim.nki.emit_reduce", "_statistics.<locals>.<lambda>"),
        ("trnsim.nki.emit_select", "iota.<locals>.<lambda>"),
        ("trnsim.nki.emit_select", "affine_select.<locals>.<lambda>"),
        ("trnsim.nki.emit_select", "select.<locals>.values"),
        ("trnsim.nki.emit_gather", "nc_n_gather.<locals>.<lambda>"),
        ("trnsim.nki.emit_gather", "sequence_bounds.<locals>.<lambda>"),
        ("trnsim.nki.emit_dma_compute", "dma_compute.<locals>.<lambda>"),
    }
)


class Recorder:
    """Collects the value steps of one functional run and whether they can be replayed."""

    __slots__ = ("cells", "inside", "steps", "why")

    def __init__(self) -> None:
        self.inside = 0  # > 0 while issue computes an instruction's values
        self.steps: list[tuple[Any, ...]] = []
        self.cells: list[tuple[Any, tuple[Any, ...]]] = []  # (closure, its captured values when issued)
        self.why: str | None = None

    def refuse(self, why: str) -> None:
        if self.why is None:
            self.why = why

    def host_read(self, what: str) -> None:
        """A tile's values were read outside an instruction's values: the kernel's Python may depend on them."""
        self.refuse(f"the kernel reads values of {what} on the host ({user_location()})")

    def host_write(self, what: str) -> None:
        self.refuse(f"values of {what} are written outside an instruction ({user_location()})")

    def step(
        self,
        ctx: TraceContext | None,
        semantics: Callable[..., Any] | None,
        values: Any,
        compute: Any,
        call: Any,
        dst: Any,
        mask: np.ndarray | None,
        accumulate: bool,
        location: str,
    ) -> None:
        """One instruction's values, just computed by issue (which counted itself inside)."""
        self.inside -= 1
        if self.why is not None:
            return
        fn = compute if compute is not None else values
        code = getattr(fn, "__code__", None)
        name = (getattr(fn, "__module__", ""), getattr(code, "co_qualname", repr(fn)))
        if name not in REPLAYABLE:
            self.refuse(f"its instruction at {location} computes values with {name[0]}.{name[1]}, not checked")
            return
        closure = fn.__closure__
        if closure:
            self.cells.append((fn, tuple(cell_contents(c) for c in closure)))
        self.steps.append((ctx, semantics, values, compute, call, dst, mask, accumulate, location))


def builder_step(fn: Callable[[], None], location: str) -> None:
    """Run `fn`, the value work a builder does right after its instruction (e.g. an extra output it writes from
    the instruction's fp32 results), as part of that instruction's values: a recording replays it too."""
    rec = RECORDING
    if rec is not None:
        rec.inside += 1
    fn()
    if rec is not None:
        rec.step(None, None, None, fn, None, None, None, False, location)


def cell_contents(c: Any) -> Any:
    try:
        return c.cell_contents
    except ValueError:  # an empty cell (a variable assigned later in its function)
        return EMPTY


EMPTY = object()


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Record the functional run inside the block (one at a time; a nested run is not recorded)."""
    global RECORDING
    outer = RECORDING
    rec = Recorder()
    if outer is not None:  # not expected (kernels call kernels inline): neither recording is kept
        rec.refuse("another recording is in progress")
        outer.refuse("a kernel ran inside its run")
        yield rec
        return
    RECORDING = rec
    try:
        yield rec
    finally:
        RECORDING = None

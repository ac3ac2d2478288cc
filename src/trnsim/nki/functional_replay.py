"""Replay of a functional kernel run: the numpy work of its instructions, in program order, on new values.

A functional run of a kernel computes each instruction's values in `issue` (nki/issue.py) with the
instruction record's numpy semantics, fed by a closure over the instruction's tiles. Everything else in that
run (the kernel's Python, tile allocation, rule checks, costs, instruction records, dependency tracking)
depends only on the kernel's arguments' shapes, dtypes and constants, unless the kernel's Python looks at
values. `record(kernel, args, kwargs, ...)` runs the kernel once with a Recorder active; the recorder keeps
each instruction's value step (semantics, closure, destination, mask, accumulate) and the tiles they refer
to. `Replay.run(args, kwargs)` writes new argument values into the recorded argument tensors (or, for an
argument no step writes and only compiled steps read, points those steps' views at the argument array itself,
write-protected) and re-runs only the steps (compiled once, functional_replay_steps.py), which gives bit for bit
the values a full run would: the same numpy calls on the same operand values, in the same order.

A recording is refused (`Recording.why` says why, and the kernel is traced in full on every call) when
replaying it might not be exact, each case detected while the kernel runs, never assumed:
- the kernel's Python read a tile's values on the host (`NkiTensor.read` outside an instruction's values:
  token ids shaping an embedding's DMA runs, register loads, dynamic loop bounds, indirect-DMA index tiles);
- something wrote tile values outside an instruction's values (`operands.write` outside `issue`, e.g. an
  extra output written by a builder after its instruction);
- an instruction's values come from a closure nobody has checked for hidden state (REPLAYABLE lists the
  checked builders' closures; random numbers, engine accumulators and collectives are not among them), or a
  closure's captured variables were rebound after the instruction was issued (a loop variable);
- the run raised warnings (uninitialised reads, unwritten outputs): which elements are written is fixed by
  the instruction stream, so a recording without them replays without them, and one with them is traced
  afresh so that its warnings are raised on every call;
- a tile read before any instruction wrote it, other than an argument or a tile read while partly unwritten
  (refilled with the poison before each replay), is overwritten later (a constant the replay would lose).
A replay that warns (it should not) is discarded by its caller and the kernel traced in full.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.nki.argument_dtypes import exact_kernel_array
from trnsim.nki.functional_replay_steps import compile_step
from trnsim.nki.replay_recorder import Recorder, cell_contents
from trnsim.nki.tensor import NkiTensor
from trnsim.torch_arrays import numpy_to_torch, torch_to_numpy


def capturing(fn: Callable[..., Any], sink: list[Any]) -> Callable[..., Any]:
    """`fn` that first appends the arguments it is called with (the arguments' HBM tensors) to `sink`."""

    @functools.wraps(fn)
    def kernel(*args: Any, **kwargs: Any) -> Any:
        if not sink:
            sink.append((args, kwargs))
        return fn(*args, **kwargs)

    return kernel


def _leaves(given: Any, traced: Any, path: str, out: list[tuple[str, Any]]) -> None:
    """(path, HBM tensor) of every array argument, in the order the kernel's launch converts them."""

    if isinstance(given, list | tuple) and isinstance(traced, list | tuple) and len(given) == len(traced):
        for j, (g, t) in enumerate(zip(given, traced)):
            _leaves(g, t, f"{path}.{j}", out)
    elif isinstance(traced, NkiTensor) and traced is not given:
        out.append((path, traced))


def _get(args: tuple[Any, ...], kwargs: dict[str, Any], path: str) -> Any:
    head, *rest = path.split(".")
    x = kwargs[head] if head in kwargs and not head.isdigit() else args[int(head)]
    for j in rest:
        x = x[int(j)]
    return x


def _as_array(x: Any) -> np.ndarray:
    return torch_to_numpy(x) if type(x).__module__.startswith("torch") else np.asarray(x)


class Replay:
    """A recorded functional run, replayable on new argument values of the same signature."""

    def __init__(
        self,
        ops: list[Callable[[], Any]],
        inputs: list[tuple[str, Any]],
        poisoned: list[Any],
        result: Any,
        as_torch: bool,
        warnings: list[str],
        nbytes: int,
    ) -> None:
        self.ops = ops  # each recorded step as one callable (functional_replay_steps.compile_step)
        self.inputs = inputs  # (argument path, root allocation of its HBM tensor)
        self.poisoned = poisoned  # root allocations refilled with the poison before each replay
        self.result = result
        self.as_torch = as_torch
        self.warnings = warnings  # the recording machine's list: a replay must leave it empty
        self.nbytes = nbytes
        self.pinned: Any = None  # what the replay's key names by identity (kept alive with it)
        self.fast_steps = 0  # steps whose operands are read through views taken when recorded
        # input allocations read in place (id -> (own storage, views to point at each call's argument))
        self.in_place: dict[int, tuple[np.ndarray, list[tuple[Any, Any, Any]]]] = {}

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The kernel's outputs on these arguments (numpy, or torch if any argument was torch)."""
        for path, alloc in self.inputs:
            arr = exact_kernel_array(_as_array(_get(args, kwargs, path)), path)
            place = self.in_place.get(id(alloc))
            if place is None:
                alloc.storage[...] = arr
                continue
            own, bindings = place
            if arr.shape == own.shape and arr.dtype == own.dtype:
                src = arr.view()  # read in place, write-protected: no step writes it (finish checked)
                src.flags.writeable = False
            else:  # not expected (one signature, one shape and dtype): copied, as recorded
                own[...] = arr
                src = own
            alloc.storage = src
            for index, container, key in bindings:
                container[key] = src[index]
        for alloc in self.poisoned:
            alloc.storage[...] = dtypes.poison_value(alloc.dtype)
        for op in self.ops:  # the steps, each compiled once (functional_replay_steps.py)
            op()
        return self._output(self.result)

    def _output(self, value: Any) -> Any:
        if isinstance(value, NkiTensor):
            arr = np.array(value.read())
            return numpy_to_torch(arr) if self.as_torch else arr
        if isinstance(value, tuple | list):
            return type(value)(self._output(v) for v in value)
        return value


def _target(dst: Any, mask: np.ndarray | None) -> tuple[np.ndarray, Any, tuple[int, ...], int] | None:
    """(storage view, dtype, shape, size) of an unmasked destination indexed by slices and ints (a view of its
    allocation's storage, which never moves), else None (operands.write does the write)."""
    if dst is None or mask is not None or dst.alloc.storage is None:
        return None
    index = dst.np_index()
    if not all(isinstance(k, slice | int | np.integer) for k in index):
        return None
    view = dst.alloc.storage[index]
    if not isinstance(view, np.ndarray) or not np.may_share_memory(view, dst.alloc.storage):
        return None
    return view, dst.alloc.dtype, tuple(dst.shape), int(dst.size)


def finish(
    rec: Recorder, traced: Any, captured: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Replay | None:
    """The Replay of a finished recording (after its outputs were taken), or None with rec.why set."""
    machine = traced.machine
    if rec.why is None and machine.warnings:
        rec.refuse(f"its run warned ({machine.warnings[0]})")
    if rec.why is None and not captured:
        rec.refuse("the kernel never ran")
    if rec.why is None:
        for fn, cells in rec.cells:
            if any(cell_contents(c) is not v for c, v in zip(fn.__closure__, cells)):
                rec.refuse(f"a variable of {fn.__code__.co_qualname} changed after its instruction was issued")
                break
    if rec.why is not None:
        return None
    hbm_args, hbm_kwargs = captured[0]
    leaves: list[tuple[str, Any]] = []
    for i, (g, t) in enumerate(zip(args, hbm_args)):
        _leaves(g, t, str(i), leaves)
    for k, g in kwargs.items():
        _leaves(g, hbm_kwargs.get(k), k, leaves)
    inputs = [(path, t.alloc.root) for path, t in leaves]
    arg_ids = {id(a) for _, a in inputs}
    written: set[int] = set()
    external: dict[int, Any] = {}  # roots read before any step wrote them
    poisoned: dict[int, Any] = {}
    roots: dict[int, Any] = {a.id: a for _, a in inputs}
    for step in rec.steps:
        call, accumulate = step[4], step[7]
        if call is None:  # a builder's step: its tiles are its instruction's outputs (in the step before it)
            continue
        read_ops = list(call.inputs.values()) + ([call.dst] if accumulate else [])
        for op in read_ops:
            root = op.source.alloc.root
            roots[root.id] = root
            if root.id not in written and root.id not in external:
                external[root.id] = root
        for op in (call.dst, *call.outputs.values()):
            root = op.source.alloc.root
            roots[root.id] = root
            if root.id in external and id(root) not in arg_ids and not root.poisoned:
                rec.refuse(f"{root.describe()} holds values from before the kernel's instructions and is overwritten")
                return None
            written.add(root.id)
    for root in roots.values():
        if root.poisoned and id(root) not in arg_ids:
            poisoned[root.id] = root

    steps = [(*step, _target(step[5], step[6])) for step in rec.steps]
    for root in roots.values():  # which elements are written is the recording's to check; a replay only computes
        root.fully_written, root.written = True, None
    compiled = [compile_step(step) for step in steps]  # after the roots count as written: their views are taken
    ops = [op for op, _ in compiled]
    in_place = _in_place_inputs(rec.steps, [b for _, b in compiled], [a for _, a in inputs], written)
    nbytes = sum(a.storage.nbytes for a in roots.values() if a.storage is not None)
    machine.instructions = []  # the profile was taken: the replay needs values, not the instruction stream
    machine.allocations = {}
    machine.call_facts = {}
    replay = Replay(ops, inputs, list(poisoned.values()), traced.result, traced.as_torch, machine.warnings, nbytes)
    replay.fast_steps = sum(b is not None for _, b in compiled)
    replay.in_place = in_place
    return replay


def _in_place_inputs(
    steps: list[tuple[Any, ...]], bindings: list[Any], inputs: list[Any], written: set[int]
) -> dict[int, tuple[np.ndarray, list[tuple[Any, Any, Any]]]]:
    """Input allocations a replay can read in place instead of copying each call's argument into them: never
    written by a step, and read only by compiled steps through views of the allocation itself (not of a reshape
    or dtype alias of it, whose storage is its own view of the recorded copy). A builder's step (its tiles
    unknown) keeps every input copied."""
    if any(step[4] is None for step in steps):
        return {}
    candidates = {id(a): a for a in inputs if a.id not in written and a.storage is not None and a is a.root}
    bound: dict[int, list[tuple[Any, Any, Any]]] = {k: [] for k in candidates}
    for step, step_bindings in zip(steps, bindings):
        call, accumulate = step[4], step[7]
        read = {id(op.source.alloc.root) for op in call.inputs.values()}
        if accumulate:
            read.add(id(call.dst.source.alloc.root))
        seen: set[int] = set()
        for alloc, index, container, key in step_bindings or ():
            root = id(alloc.root)
            if root not in candidates:
                continue
            if alloc is not alloc.root or index is None:  # an alias's view, or a gather: keep it copied
                candidates.pop(root)
                continue
            bound[root].append((index, container, key))
            seen.add(root)
        for k in (read & candidates.keys()) - seen:  # read, but not through one of the step's views: copied
            candidates.pop(k)
    return {k: (a.storage, bound[k]) for k, a in candidates.items()}

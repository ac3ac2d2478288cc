"""A recorded functional run's steps made into one callable each, once, when the recording is finished.

A replay (nki/functional_replay.py) re-runs every step of its recording on each call: GPT-2's forward pass runs
~24,000 of them. Done the way the recording ran them, each step rebuilds its operands' values through the
builder's closure: the closure calls the operand readers (operands.read_f32 / read_stored), which check the
tile's written state and rebuild its numpy index every time, to get what is always the same numpy view of the
same storage (a replay's tiles never move, and every tile it touches counts as written). Here each step is
compiled once into a callable that does only the numpy work:

- the operand values of the commonest closures (nc_matmul, nc_transpose, tensor_copy, dma_copy, dma_transpose,
  tensor_tensor, tensor_scalar) come from views of the operand tiles' storage taken once, converted on each
  call where the reader would (`dtypes.to_float32` as operands.read_f32, int64 as read_for_op for integer ops)
  and reshaped as the closure does; the instruction's own semantics still computes;
- an accumulating step adds into its destination in place (`np.add(..., out=)`, the same fp32 add as the
  recording's read + add + store) when destination and result are fp32;
- a TensorE/VectorE transpose (semantics `isa.semantics.nc_transpose`) copies its source rows into a staging
  tile and stores that tile's transposed view, without the contiguous copy in between (copies of the same
  values; the staging avoids reading columns straight from storage rows that are a power of two apart).
- each view records where it is kept (a Binding), so that a replay can read an input argument in place: it
  points the views of that input's allocation at the new argument array instead of copying the argument in
  (GPT-2's weights, ~0.5 GB per forward pass); functional_replay.finish decides which inputs qualify.

Everything else (other closures, masked writes, index-array operands, builder steps) runs as recorded. Each
shortcut gives the same values bit for bit: the same numpy calls on the same operand values in the same order,
minus Python calls and copies that do not change a value. tests/compiler/test_kernel_replay.py compares replays
with full traces, bit for bit, for kernels that use each of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.isa import semantics as isa_semantics
from trnsim.isa.alu import INT_OPS
from trnsim.isa.instructions.nc_matmul import transpose_mode
from trnsim.isa.opcodes import Engine
from trnsim.nki.operands import read_f32, read_stored, write

F32 = np.dtype(np.float32)
Thunk = Callable[[], Any]


def _index(t: Any) -> tuple[Any, ...] | None:
    """`t`'s numpy index into its allocation's storage when it is slices and ints and the allocation counts as
    written (NkiTensor.read gives a view then), else None."""
    alloc = t.alloc
    if alloc.storage is None or not alloc.root.fully_written:
        return None
    index = t.np_index(clip=True)
    return index if all(isinstance(k, slice | int | np.integer) for k in index) else None


def storage_view(t: Any) -> np.ndarray | None:
    """The numpy view of `t`'s allocation's storage that reading `t` returns (NkiTensor.read), when `t` is
    indexed by slices and ints and its allocation counts as written; else None (the step reads as recorded)."""
    index = _index(t)
    if index is None:
        return None
    storage = t.alloc.storage
    view = storage[index]
    if not isinstance(view, np.ndarray) or not np.may_share_memory(view, storage):
        return None
    return view


# Where a compiled step keeps an operand's view: (allocation, index into its storage, container, key), so that a
# replay can point it at another array of the allocation's shape (functional_replay.Replay.run: an input argument
# read in place); index None: the allocation is read otherwise (a gather), it cannot be pointed elsewhere.
Binding = tuple[Any, tuple[Any, ...] | None, Any, Any]
Fast = tuple[Thunk, list[Binding]]


# How a closure reads a tile: "stored" (operands.read_stored: as stored), "f32" (operands.read_f32 / read_masked:
# through fp32), "int64" (operands.read_for_op with an integer op: as stored, then as int64); and the shape it
# reshapes the values to (None: none).
Read = tuple[Any, str, tuple[int, ...] | None]


def _operands(reads: dict[str, Read], fixed: dict[str, Any]) -> Fast | None:
    """A thunk giving the values dict, and its bindings: `reads` maps a name to how it is read; `fixed` are the
    other keys. A tile indexed by index arrays (an access pattern) is gathered on each call with its clipped index
    taken now (NkiTensor.read rebuilds and range-checks it every time); it has no binding."""
    constant = dict(fixed)
    per_call: list[list[Any]] = []  # [name, view or None, mode, shape, allocation, gather index or None]
    bindings: list[Binding] = []
    for name, (t, mode, shape) in reads.items():
        view = storage_view(t)
        index = _index(t)
        if view is None or index is None:
            gather = _gather_index(t)
            if gather is None:
                return None
            per_call.append([name, None, mode, shape, t.alloc, gather])
            bindings.append((t.alloc, None, None, None))  # read here, but not through a view it could move
        elif (mode == "stored" or (mode == "f32" and view.dtype == F32)) and (shape is None or view.shape == shape):
            constant[name] = view
            bindings.append((t.alloc, index, constant, name))
        else:
            entry = [name, view, mode, shape, None, None]
            per_call.append(entry)
            bindings.append((t.alloc, index, entry, 1))
    if not per_call:
        return (lambda: constant), bindings

    def values() -> dict[str, Any]:
        out = dict(constant)
        for name, view, mode, shape, alloc, gather in per_call:
            if gather is not None:
                view = alloc.storage[gather]  # NkiTensor.read's gather, its index taken once
            if mode == "f32":
                v = dtypes.to_float32(view) if view.dtype != F32 else view  # operands.read_f32
            elif mode == "int64":
                v = view.astype(np.int64)  # operands.read_for_op, integer ops
            else:
                v = view
            out[name] = v if shape is None else v.reshape(shape)
        return out

    return values, bindings


def _gather_index(t: Any) -> tuple[Any, ...] | None:
    """NkiTensor.read's index (index arrays clipped in range) when the allocation counts as written, else None."""
    alloc = t.alloc
    if alloc.storage is None or not alloc.root.fully_written:
        return None
    return t.np_index(clip=True)


def _matmul(cells: dict[str, Any], call: Any) -> Fast | None:
    ctx = cells["ctx"]
    mode = transpose_mode(ctx.machine.spec.core, {"is_transpose": cells["is_transpose"]})
    fixed = {"double_row": cells["double_row"], "is_transpose": mode, "location": cells["loc"]}
    return _operands({"stationary": (cells["st"], "f32", None), "moving": (cells["mv"], "f32", None)}, fixed)


def _transpose(cells: dict[str, Any], call: Any) -> Fast | None:
    return _operands({"data": (cells["data"], "f32", None)}, {})


def _tensor_copy(cells: dict[str, Any], call: Any) -> Fast | None:
    src, dst = cells["src"], cells["dst"]
    exact = src.dtype == dst.dtype and call.engine is not Engine.SCALAR
    return _operands({"src": (src, "stored" if exact else "f32", None)}, {})


def _dma_copy(cells: dict[str, Any], call: Any) -> Fast | None:
    read = cells["read"]
    if read is not read_stored and read is not read_f32:
        return None
    return _operands({"src": (cells["src"], "f32" if read is read_f32 else "stored", None)}, {})


def _dma_transpose(cells: dict[str, Any], call: Any) -> Fast | None:
    return _operands({"src": (cells["permuted"], "stored", None)}, {})


def _for_op(t: Any, op: str, shape: tuple[int, ...] | None) -> Read:
    """operands.read_for_op(ctx, t, mask, loc, op), reshaped to `shape`: the mask only decides warnings."""
    return (t, "int64" if op in INT_OPS else "f32", shape)


def _tensor_tensor(cells: dict[str, Any], call: Any) -> Fast | None:
    name, shape = cells["name"], tuple(cells["dst"].shape)
    return _operands({"a": _for_op(cells["a"], name, shape), "b": _for_op(cells["b"], name, shape)}, {"op": name})


def _tensor_scalar(cells: dict[str, Any], call: Any) -> Fast | None:
    """A [P, 1] operand tile is read through fp32 (operands.resolve_operand: its mask only decides warnings)."""
    n0, n1, t0, t1 = cells["n0"], cells["n1"], cells["t0"], cells["t1"]
    reads: dict[str, Read] = {"data": _for_op(cells["data"], n0, tuple(cells["dst"].shape))}
    fixed: dict[str, Any] = {"op0": n0, "reverse0": cells["reverse0"], "op1": n1, "reverse1": cells["reverse1"]}
    if t0:
        reads["operand0"] = (t0[0], "f32", None)
    else:
        fixed["operand0"] = cells["v0"]
    if n1 and t1:
        reads["operand1"] = (t1[0], "f32", None)
    else:
        fixed["operand1"] = cells["v1"] if n1 else None
    return _operands(reads, fixed)


# closure (module, qualified name) -> (its free variables, the maker of its values thunk). The free variables
# are checked so that a builder whose closure changed shape reads as recorded (the bit-identity tests also
# cover each builder's values).
_FAST: dict[tuple[str, str], tuple[frozenset[str], Callable[[dict[str, Any], Any], Fast | None]]] = {
    ("trnsim.nki.emit_matmul", "nc_matmul.<locals>.<lambda>"): (
        frozenset({"ctx", "st", "mv", "loc", "double_row", "is_transpose"}),
        _matmul,
    ),
    ("trnsim.nki.emit_matmul", "nc_transpose.<locals>.<lambda>"): (frozenset({"ctx", "data", "loc"}), _transpose),
    ("trnsim.nki.emit_movement", "tensor_copy.<locals>.values"): (
        frozenset({"ctx", "src", "dst", "src_mask", "loc"}),
        _tensor_copy,
    ),
    ("trnsim.nki.emit_movement", "dma_copy.<locals>.<lambda>"): (
        frozenset({"read", "ctx", "src", "src_m", "loc"}),
        _dma_copy,
    ),
    ("trnsim.nki.emit_arith", "tensor_tensor.<locals>.<lambda>"): (
        frozenset({"a", "b", "ctx", "dst", "loc", "m", "name"}),
        _tensor_tensor,
    ),
    ("trnsim.nki.emit_arith", "tensor_scalar.<locals>.values"): (
        frozenset({"ctx", "data", "dst", "loc", "m", "n0", "n1", "reverse0", "reverse1", "t0", "t1", "v0", "v1"}),
        _tensor_scalar,
    ),
    ("trnsim.nki.emit_movement", "dma_transpose.<locals>.<lambda>"): (
        frozenset({"ctx", "permuted", "location"}),
        _dma_transpose,
    ),
}


def fast_values(values: Any, call: Any) -> Fast | None:
    """A thunk equal to `values(call)` that reads its tiles through views taken now (and their bindings), or None."""
    code = getattr(values, "__code__", None)
    closure = getattr(values, "__closure__", None)
    if code is None or not closure:
        return None
    entry = _FAST.get((getattr(values, "__module__", ""), code.co_qualname))
    if entry is None or frozenset(code.co_freevars) != entry[0]:
        return None
    cells = {name: c.cell_contents for name, c in zip(code.co_freevars, closure)}
    return entry[1](cells, call)


def compile_step(step: tuple[Any, ...]) -> tuple[Thunk, list[Binding] | None]:
    """One recorded step (Recorder.step's fields plus functional_replay._target's) as a callable, and the
    bindings of its operand views when its operand values come from views taken now (else None)."""
    values, compute, call, dst = step[2], step[3], step[4], step[5]
    fast = None if compute is not None or dst is None else fast_values(values, call)
    if fast is None:
        return _compiled(step, None), None
    return _compiled(step, fast[0]), fast[1]


def _compiled(step: tuple[Any, ...], fast: Thunk | None) -> Thunk:
    ctx, semantics, values, compute, call, dst, mask, accumulate, location, target = step
    if dst is None:  # a builder's step (builder_step): it writes its own outputs
        return compute
    if compute is not None:
        produce: Thunk = compute
    elif fast is not None:
        if target is not None and not accumulate and semantics is isa_semantics.nc_transpose:
            return _transpose_store(fast, target)
        produce = lambda: semantics(**fast())  # noqa: E731
    else:
        produce = lambda: semantics(**values(call))  # noqa: E731
    if target is None:

        def masked() -> None:
            result = produce()
            if accumulate:
                result = read_f32(ctx, dst, mask, location) + np.asarray(result).reshape(dst.shape)
            write(dst, result, mask)

        return masked
    view, dtype, shape, size = target
    if accumulate:
        acc = storage_view(dst)
        if acc is not None and dtype == F32 and _same_view(acc, view):

            def add() -> None:
                result = np.asarray(produce())
                if result.dtype == F32:  # the recording's read_f32(dst) + result, stored as fp32: the same add
                    np.add(view, result.reshape(shape), out=view)
                else:
                    view[...] = _stored(view + result.reshape(shape), dtype, shape, size)

            return add

        def accumulated() -> None:
            result = read_f32(ctx, dst, mask, location) + np.asarray(produce()).reshape(dst.shape)
            view[...] = _stored(result, dtype, shape, size)

        return accumulated

    def store() -> None:
        view[...] = _stored(produce(), dtype, shape, size)

    return store


def _stored(result: Any, dtype: Any, shape: tuple[int, ...], size: int) -> np.ndarray:
    """What operands.write stores for `result` (no mask): reshaped or broadcast to the tile, cast to its dtype."""
    vals = np.asarray(result)
    if vals.shape != shape:
        vals = vals.reshape(shape) if vals.size == size else np.broadcast_to(vals, shape)
    return vals.astype(dtype) if vals.dtype != dtype else vals


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def _transpose_store(fast: Thunk, target: tuple[Any, ...]) -> Thunk:
    """nc_transpose: `np.ascontiguousarray(as_2d(data).T)` stored in dst. The source rows are first copied into a
    staging tile whose row stride is not a power of two, and its transposed view stored: reading a tile's columns
    straight from SBUF storage (rows 2-12 KB apart) thrashes a few cache sets, ~5x slower. Copies only: the same
    values."""
    view, dtype, shape, size = target

    def transpose() -> None:
        data = isa_semantics.as_2d(fast()["data"])
        stage = _staging(data.shape, data.dtype)
        np.copyto(stage, data)
        vals = stage.T
        if vals.shape != shape:  # a reshape of a non-contiguous view copies anyway: as recorded
            vals = np.ascontiguousarray(vals)
        view[...] = _stored(vals, dtype, shape, size)

    return transpose


_local = threading.local()


def _staging(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A [rows, cols] scratch tile with one spare element per row, per thread (replays may run in threads)."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (shape, dtype)
    buf = buffers.get(key)
    if buf is None:
        rows, cols = shape
        buf = buffers[key] = np.empty((rows, cols + 1), dtype=dtype)[:, :cols]
    return buf

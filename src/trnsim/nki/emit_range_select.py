"""Builder of range_select (NC-v3+, VectorE): a free-index window select whose running max lives in the Vector
engine's shared accumulator (update_running_max, as select_reduce)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.isa.alu import BINARY_OPS, REDUCE_OPS
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import range_select as record
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.emit_select_reduce import update_running_max
from trnsim.nki.issue import issue
from trnsim.nki.operands import check_tile, op_name, read_masked, require_tensor, same_shape_tiles
from trnsim.nki.tensor import NkiTensor


def range_select(
    dst: Any,
    on_true_tile: Any,
    comp_op0: Any,
    comp_op1: Any,
    bound0: Any,
    bound1: Any,
    reduce_cmd: str = record.RESET,
    reduce_res: Any = None,
    reduce_op: Any = "maximum",
    range_start: Any = 0,
    on_false_value: Any = record.FP32_MIN,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, on_true = same_shape_tiles(ctx, "range_select", loc, dst=dst, on_true_tile=on_true_tile)
    c0 = op_name(comp_op0, BINARY_OPS, "range_select comp_op0", loc)
    c1 = op_name(comp_op1, BINARY_OPS, "range_select comp_op1", loc)
    rop = op_name(reduce_op, REDUCE_OPS, "range_select reduce_op", loc)
    if not isinstance(range_start, int) or isinstance(range_start, bool):
        raise UsageError(f"range_select range_start must be a compile-time integer, got {range_start!r}", loc)
    bounds = {}
    for name, b in (("bound0", bound0), ("bound1", bound1)):
        t = require_tensor(b, f"range_select {name}", loc)
        check_tile(ctx, t, f"range_select {name}", loc)
        bounds[name] = t
    outputs: dict[str, NkiTensor] = {}
    if reduce_res is not None:
        red = require_tensor(reduce_res, "range_select reduce_res", loc)
        check_tile(ctx, red, "range_select reduce_res", loc)
        outputs["reduce_res"] = red
    p = on_true.partition_size()
    result: list[np.ndarray] = []

    def compute() -> np.ndarray:
        b0, b1 = (read_masked(ctx, bounds[k], None, loc) for k in ("bound0", "bound1"))
        out = record.semantics(read_masked(ctx, on_true, None, loc), b0, b1, c0, c1, range_start)
        result.append(out.reshape(p, -1))
        return out

    ins = issue(
        Opcode.RANGE_SELECT,
        dst,
        {"on_true": on_true, **bounds},
        None,
        loc,
        params={
            "comp_op0": c0,
            "comp_op1": c1,
            "reduce_op": rop,
            "reduce_cmd": reduce_cmd,
            "on_false_value": on_false_value if isinstance(on_false_value, str) else float(on_false_value),
        },
        outputs=outputs,
        extent=(p, on_true.free_size()),
        label="range_select",
        compute=compute,
    )
    if result and (reduce_cmd != record.IDLE or outputs):
        update_running_max(ctx, "range_select", reduce_cmd, result[0], outputs.get("reduce_res"), loc)
    return ins

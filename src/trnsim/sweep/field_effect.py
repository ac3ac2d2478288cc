"""Which swept hardware fields the chosen step-cost model never reads, so their rows would come out identical.

The roofline step cost sees a spec only through `replica_shape` (TensorE peak, HBM bandwidth and capacity,
chips per replica, price and power shares). A field whose every swept value leaves that shape unchanged does
not affect the roofline rows; the check runs the shape itself rather than keeping a list of fields that could
drift from the code. The compiler-backed estimate reads the whole spec, so nothing is flagged for it.
"""

from __future__ import annotations

from typing import Any

from trnsim.errors import TrnsimError
from trnsim.hw.spec import HardwareSpec
from trnsim.sweep.replica_shape import replica_shape
from trnsim.sweep.space import SERVING_PARAMS, SweepSpace
from trnsim.sweep.spec_override import override_spec


def fields_without_effect(space: SweepSpace, spec: HardwareSpec, step_cost: str, tp: int, instance: str) -> list[str]:
    """Swept hardware fields that change nothing the `step_cost` model reads, at the setup's tp and instance."""
    if step_cost != "roofline":
        return []
    try:
        base = replica_shape(spec, tp, instance)
    except TrnsimError:
        return []  # an unusable base tp is reported per point; no claim about fields then
    ignored: list[str] = []
    for axis in space.axes:
        if axis.name in SERVING_PARAMS:
            continue
        shapes: list[Any] = []
        for value in axis.values:
            try:
                shapes.append(replica_shape(override_spec(spec, {axis.name: value}), tp, instance))
            except TrnsimError:
                shapes.append(None)  # an invalid value is a failed row, which is a visible difference
        if all(shape == base for shape in shapes):
            ignored.append(axis.name)
    return ignored

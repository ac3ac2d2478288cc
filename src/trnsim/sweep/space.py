"""A sweep space: named axes (hardware-spec fields by dotted path, or serving parameters), each a list of
values; the points are their cartesian product, or a seeded random sample of it.

    space = parse_sets(["chip.hbm_bytes_per_ns=2900,4000,5800", "tp=4,8"])
    space.points()  # 6 dicts, e.g. {"chip.hbm_bytes_per_ns": 2900, "tp": 4}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trnsim.hw.spec import HardwareSpec
from trnsim.serve.schedulers import SCHEDULERS
from trnsim.sweep.errors import SweepError
from trnsim.sweep.spec_override import check_spec_path, close_matches, override_spec, spec_field_paths

# Serving parameters a sweep may vary, with what each accepts. Anything else must be a hardware-spec field.
SERVING_PARAMS: dict[str, str] = {
    "tp": "tensor-parallel ranks per replica, a whole number >= 1",
    "max_batch": "the scheduler's cap on sequences per step, a whole number >= 1",
    "scheduler": f"one of {', '.join(SCHEDULERS)}",
    "rate": "arrival rate in requests/s, a number > 0",
    "concurrency": "closed-loop clients, a whole number >= 1",
    "prompt": "prompt lengths: N, LOW-HIGH or zipf:S:LOW-HIGH",
    "output": "output lengths: N, LOW-HIGH or zipf:S:LOW-HIGH",
}
_WHOLE = ("tp", "max_batch", "concurrency")


def parse_value(text: str) -> Any:
    """A CLI value as the type it reads as: int, float, true/false, or the string itself."""
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _check_serving_value(name: str, value: Any) -> None:
    ok: bool
    if name in _WHOLE:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    elif name == "rate":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    elif name == "scheduler":
        ok = value in SCHEDULERS
    else:  # prompt / output: checked by serve.parse_lengths
        from trnsim.serve.errors import ServeError
        from trnsim.serve.options import parse_lengths

        ok = isinstance(value, int | str) and not isinstance(value, bool)
        if ok:
            try:
                parse_lengths(value if isinstance(value, int) else str(value), name)
            except ServeError as exc:
                raise SweepError(f"sweep value {name}={value!r} is not allowed: {exc}") from None
    if not ok:
        raise SweepError(f"sweep value {name}={value!r} is not allowed: {name} takes {SERVING_PARAMS[name]}")


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise SweepError(f"sweep axis {self.name!r} has no values; give at least one (e.g. {self.name}=1,2)")
        if len(set(map(repr, self.values))) != len(self.values):
            raise SweepError(f"sweep axis {self.name!r} repeats a value: {list(self.values)}; list each value once")

    @property
    def is_hardware(self) -> bool:
        return self.name not in SERVING_PARAMS


@dataclass(frozen=True)
class SweepSpace:
    """Axes in the order given; `samples` (with `seed`) picks that many distinct grid points at random."""

    axes: tuple[Axis, ...]
    samples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        names = [a.name for a in self.axes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SweepError(f"sweep axis {', '.join(repeated)} given twice; give each field once")
        if "rate" in names and "concurrency" in names:
            raise SweepError("a sweep may vary rate or concurrency, not both (a workload is open or closed loop)")
        if self.samples is not None and self.samples < 1:
            raise SweepError(f"samples must be >= 1 (or omitted for the full grid), got {self.samples}")
        for axis in self.axes:
            if not axis.is_hardware:
                for value in axis.values:
                    _check_serving_value(axis.name, value)

    @property
    def grid_size(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    def _grid_point(self, index: int) -> dict[str, Any]:
        # Mixed-radix decode in itertools.product order (the last axis varies fastest).
        point: dict[str, Any] = {}
        for axis in reversed(self.axes):
            index, digit = divmod(index, len(axis.values))
            point[axis.name] = axis.values[digit]
        return {a.name: point[a.name] for a in self.axes}

    def points(self) -> list[dict[str, Any]]:
        """The grid in itertools.product order, or `samples` distinct grid points (sorted by grid position)."""
        if self.samples is None or self.samples >= self.grid_size:
            return [dict(zip([a.name for a in self.axes], combo)) for combo in itertools.product(*self.values())]
        rng = np.random.default_rng(self.seed)
        picked = sorted(int(i) for i in rng.choice(self.grid_size, size=self.samples, replace=False))
        return [self._grid_point(i) for i in picked]

    def values(self) -> list[tuple[Any, ...]]:
        return [a.values for a in self.axes]

    def hardware_axes(self) -> list[Axis]:
        return [a for a in self.axes if a.is_hardware]

    def check_against(self, spec: HardwareSpec) -> None:
        """Every hardware axis names a field of `spec`, and each of its values alone gives a valid spec."""
        for axis in self.hardware_axes():
            if axis.name in ("name", "description") or axis.name.endswith(".name"):
                raise SweepError(f"{axis.name!r} is a label, not a hardware parameter; sweep a numeric field")
            check_spec_path(spec, axis.name)
            for value in axis.values:
                override_spec(spec, {axis.name: value})


def _unknown_name_error(name: str, spec: HardwareSpec | None) -> SweepError:
    known = list(SERVING_PARAMS) + (spec_field_paths(spec) if spec is not None else [])
    return SweepError(
        f"unknown sweep field {name!r};{close_matches(name, known)} Serving parameters: {', '.join(SERVING_PARAMS)}; "
        "hardware fields are dotted paths such as chip.hbm_bytes_per_ns or core.tensor.clock_ghz "
        "(`trnsim hw show trn2` lists them)"
    )


def parse_set(text: str) -> Axis:
    """`name=v1,v2,...` -> Axis (values typed by parse_value)."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise SweepError(f"--set {text!r} is not NAME=V1,V2,... (e.g. --set chip.hbm_bytes_per_ns=2900,4000)")
    return Axis(name, tuple(parse_value(v) for v in values.split(",") if v.strip()))


def make_space(
    axes: Iterable[Axis], *, samples: int | None = None, seed: int = 0, spec: HardwareSpec | None = None
) -> SweepSpace:
    """A SweepSpace, checked: serving parameters by value, hardware fields against `spec` when given."""
    axes = tuple(axes)
    for axis in axes:
        if axis.is_hardware and spec is None and not axis.name.startswith(("core.", "chip.", "instances[")):
            raise _unknown_name_error(axis.name, None)
    space = SweepSpace(axes, samples, seed)
    if spec is not None:
        for axis in space.hardware_axes():
            if axis.name not in spec_field_paths(spec):
                raise _unknown_name_error(axis.name, spec)
        space.check_against(spec)
    return space


def parse_sets(
    sets: Sequence[str],
    *,
    base: Sequence[Axis] = (),
    samples: int | None = None,
    seed: int = 0,
    spec: HardwareSpec | None = None,
) -> SweepSpace:
    """A space from `--set` strings; an axis given here replaces one of the same name in `base` (a file's)."""
    axes = {a.name: a for a in base}
    seen: set[str] = set()
    for text in sets:
        axis = parse_set(text)
        if axis.name in seen:
            raise SweepError(f"--set {axis.name} given twice; give each field once with all its values")
        seen.add(axis.name)
        axes[axis.name] = axis
    return make_space(axes.values(), samples=samples, seed=seed, spec=spec)

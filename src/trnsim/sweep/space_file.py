"""Reading a sweep space from a TOML file.

    samples = 20          # optional: that many random grid points instead of the whole grid
    seed = 1              # optional: the sampling seed
    [set]
    chip.hbm_bytes_per_ns = [2900, 4000, 5800]
    core.tensor.clock_ghz = [2.4, 3.0]
    "instances[trn2.48xlarge].link_bytes_per_ns" = [1024, 2048]
    tp = [4, 8]
    scheduler = ["continuous", "chunked"]

Dotted keys are TOML's nested tables, flattened back into paths. Errors name the file and the key's line.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from trnsim.hw.spec import HardwareSpec
from trnsim.sweep.errors import SweepError
from trnsim.sweep.space import Axis, SweepSpace, make_space

_TOP_KEYS = ("samples", "seed", "set")


def _line_of(text: str, key: str) -> int | None:
    """The first line that assigns `key` (its last dotted part), or None."""
    last = re.escape(key.rsplit(".", 1)[-1].split("]")[-1] or key)
    match = re.search(rf"^\s*[^#\n]*{last}\"?\s*=", text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def read_space_file(path: str | Path, spec: HardwareSpec | None = None) -> SweepSpace:
    """The sweep space a TOML file describes (see the module docstring), checked against `spec` when given."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SweepError(f"cannot read sweep file {p}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"sweep file {p} is not valid TOML: {exc}") from None

    def where(key: str) -> str:
        line = _line_of(text, key)
        return f"{p}:{line}" if line else str(p)

    for key in data:
        if key not in _TOP_KEYS:
            raise SweepError(f"{where(key)}: unknown key {key!r} in a sweep file; allowed: {', '.join(_TOP_KEYS)}")
    table = data.get("set")
    if not isinstance(table, dict) or not table:
        raise SweepError(f"{p}: a sweep file needs a [set] table of NAME = [values, ...]")
    axes: list[Axis] = []
    for name, values in _flatten(table):
        values = values if isinstance(values, list) else [values]
        if any(isinstance(v, dict | list) for v in values):
            raise SweepError(f"{where(name)}: {name} must be a value or a list of plain values, got {values!r}")
        try:
            axes.append(Axis(name, tuple(values)))
        except SweepError as exc:
            raise SweepError(f"{where(name)}: {exc}") from None
    for key in ("samples", "seed"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int)):
            raise SweepError(f"{where(key)}: {key} must be a whole number, got {data[key]!r}")
    try:
        return make_space(axes, samples=data.get("samples"), seed=data.get("seed", 0), spec=spec)
    except SweepError as exc:
        bad = next((a.name for a in axes if repr(a.name) in str(exc) or f"{a.name}=" in str(exc)), None)
        raise SweepError(f"{where(bad) if bad else p}: {exc}") from None

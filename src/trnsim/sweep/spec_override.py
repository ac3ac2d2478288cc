"""Hardware specs with some fields replaced, addressed by dotted path (`chip.hbm_bytes_per_ns`,
`core.tensor.clock_ghz`, `instances[trn2.48xlarge].link_bytes_per_ns`).

HardwareSpec is frozen, so an override rebuilds it from its data: dump, replace the leaves, validate again.
Validation errors come back as SpecError naming the field (hw.presets.spec_from_dict).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from trnsim.hw.presets import spec_from_dict
from trnsim.hw.spec import HardwareSpec
from trnsim.sweep.errors import SweepError

_INSTANCE_PATH = re.compile(r"^instances\[(?P<name>[^\]]+)\]\.(?P<rest>.+)$")


def spec_field_paths(spec: HardwareSpec) -> list[str]:
    """Every leaf field of `spec` as a dotted path (instances by name in brackets), in declaration order."""
    paths: list[str] = []

    def walk(data: Mapping[str, Any], prefix: str) -> None:
        for key, value in data.items():
            if isinstance(value, Mapping):
                walk(value, f"{prefix}{key}.")
            elif key == "instances" and not prefix:
                for inst in value:
                    walk(inst, f"instances[{inst['name']}].")
            else:
                paths.append(f"{prefix}{key}")

    walk(spec.model_dump(mode="json"), "")
    return paths


def close_matches(name: str, known: list[str], n: int = 3) -> str:
    """' did you mean: a, b?' for the nearest names (also matching on the last path part), or ''."""
    found = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    leaf = name.rsplit(".", 1)[-1]
    found += [k for k in difflib.get_close_matches(leaf, [p.rsplit(".", 1)[-1] for p in known], n=n, cutoff=0.6)]
    # Map matched leaf names back to their full paths, keeping order and dropping repeats.
    full: list[str] = []
    for f in found:
        for k in known:
            if (k == f or k.rsplit(".", 1)[-1] == f) and k not in full:
                full.append(k)
    return f" did you mean: {', '.join(full[:n])}?" if full else ""


def check_spec_path(spec: HardwareSpec, path: str) -> None:
    """Raise SweepError naming close matches when `path` is not a field of `spec`."""
    known = spec_field_paths(spec)
    if path in known:
        return
    raise SweepError(
        f"{path!r} is not a field of hardware spec {spec.name!r};{close_matches(path, known)} "
        f"(`trnsim hw show {spec.name}` lists every field)"
    )


def _set_leaf(data: dict[str, Any], path: str, value: Any) -> None:
    match = _INSTANCE_PATH.match(path)
    if match:
        for inst in data["instances"]:
            if inst["name"] == match["name"]:
                _set_leaf(inst, match["rest"], value)
                return
        raise SweepError(f"no instance {match['name']!r} in this spec (field {path!r})")
    head, _, rest = path.partition(".")
    if rest:
        _set_leaf(data[head], rest, value)
    else:
        data[head] = value


def override_spec(spec: HardwareSpec, overrides: Mapping[str, Any]) -> HardwareSpec:
    """A copy of `spec` with the fields named by dotted path set to new values, validated again.

    Unknown paths raise SweepError (with close matches); values the spec does not accept raise SpecError
    naming the field. The spec's name gains a "+" so caches keyed by name alone cannot mix the two up.
    """
    if not overrides:
        return spec
    for path in overrides:
        check_spec_path(spec, path)
    data = spec.model_dump(mode="json")
    for path, value in overrides.items():
        _set_leaf(data, path, value)
    changes = ", ".join(f"{k}={v}" for k, v in overrides.items())
    data["name"] = f"{spec.name}+"
    data["description"] = f"{spec.description} (sweep: {changes})".strip()
    return spec_from_dict(data, f"{spec.name} with {changes}")

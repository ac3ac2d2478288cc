"""Which chip kernels run on: an argument, `set_target(...)`, or NEURON_PLATFORM_TARGET_OVERRIDE."""

from __future__ import annotations

import os
from pathlib import Path

from trnsim.hw.presets import get_spec
from trnsim.hw.spec import HardwareSpec

DEFAULT_TARGET = "trn2"
_ENV = "NEURON_PLATFORM_TARGET_OVERRIDE"
_selected: str | Path | HardwareSpec | None = None


def set_target(target: str | Path | HardwareSpec | None) -> None:
    """Select the default target (a preset name such as "trn1", a spec file, or a spec); None resets it."""
    global _selected
    if target is not None:
        get_spec(target)  # fail now, with the spec error, rather than at the next kernel call
    _selected = target


def get_target_spec(target: str | Path | HardwareSpec | None = None) -> HardwareSpec:
    """Explicit argument, else set_target(), else the environment variable, else trn2."""
    chosen = target or _selected or os.environ.get(_ENV) or DEFAULT_TARGET
    return get_spec(chosen)

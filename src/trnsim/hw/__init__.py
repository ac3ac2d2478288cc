"""Hardware specs (pydantic) and presets as data files."""

from trnsim.hw.presets import get_spec, list_presets, load_preset, load_spec, preset_sources
from trnsim.hw.spec import ChipSpec, CoreSpec, HardwareSpec, InstanceSpec, Topology

__all__ = [
    "ChipSpec",
    "CoreSpec",
    "HardwareSpec",
    "InstanceSpec",
    "Topology",
    "get_spec",
    "list_presets",
    "load_preset",
    "load_spec",
    "preset_sources",
]

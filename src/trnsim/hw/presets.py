"""Loading hardware specs: built-in presets by name, or a user's own TOML/JSON file."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError

from trnsim.errors import SpecError
from trnsim.hw.spec import HardwareSpec
from trnsim.hw.spec_files import format_validation, read_spec_file

PRESET_DIR = Path(__file__).parent / "presets"

# Names the Neuron tools accept for a target (NEURON_PLATFORM_TARGET_OVERRIDE), mapped to presets.
TARGET_ALIASES = {"gen2": "trn1", "gen3": "trn2", "gen4": "trn3"}


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def spec_from_dict(data: dict[str, Any], origin: str = "<dict>") -> HardwareSpec:
    try:
        return HardwareSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation(err, origin, "hardware spec")) from None


def load_spec(path: str | Path) -> HardwareSpec:
    """Load a user's spec file (TOML or JSON with the same fields as the presets)."""
    p = Path(path)
    return spec_from_dict(read_spec_file(p, "hardware spec"), str(p))


@cache
def load_preset(name: str) -> HardwareSpec:
    key = TARGET_ALIASES.get(name.lower(), name.lower())
    path = PRESET_DIR / f"{key}.toml"
    if not path.exists():
        raise SpecError(f"unknown hardware preset {name!r}; known: {', '.join(list_presets())}")
    return spec_from_dict(read_spec_file(path, "hardware spec"), str(path))


def get_spec(target: str | Path | HardwareSpec) -> HardwareSpec:
    """A preset name (trn1, inf2, trn2, trn3, gen2..gen4), a spec file path, or a spec itself."""
    if isinstance(target, HardwareSpec):
        return target
    text = str(target)
    if text.endswith((".toml", ".json")) or "/" in text:
        return load_spec(text)
    return load_preset(text)


def preset_sources(name: str) -> dict[str, str]:
    """Map "section.key" -> the source comment beside that number in the preset file."""
    key = TARGET_ALIASES.get(name.lower(), name.lower())
    doc = tomlkit.parse((PRESET_DIR / f"{key}.toml").read_text())
    sources: dict[str, str] = {}

    def walk(container: Any, prefix: str) -> None:
        # The container body keeps every item with its comment (plain .items() unwraps booleans).
        for key, item in container.body:
            if key is None:
                continue
            path = f"{prefix}{key.key}"
            if isinstance(item, tomlkit.items.Table):
                walk(item.value, path + ".")
            elif isinstance(item, tomlkit.items.AoT):
                for table in item.body:
                    walk(table.value, f"{path}[{table.get('name', '')}].")
            else:
                comment = item.trivia.comment if hasattr(item, "trivia") else ""
                sources[path] = comment.lstrip("# ").strip()

    walk(doc, "")
    return sources

"""Loading GPU presets by name, a user's own GPU file, and the fitted-curves files they point to."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import tomlkit
from pydantic import BaseModel, ValidationError

from trnsim.errors import SpecError
from trnsim.gpu.spec import FittedCurves, GpuSpec
from trnsim.hw.spec_files import format_validation, read_spec_file

PRESET_DIR = Path(__file__).parent / "presets"
FITTED_DIR = Path(__file__).parent / "fitted"

_M = TypeVar("_M", bound=BaseModel)


def list_gpus() -> list[str]:
    """Names of the built-in GPU presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def _validate(model: type[_M], data: dict[str, Any], origin: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation(err, origin, "GPU spec")) from None


def spec_from_dict(data: dict[str, Any], origin: str = "<dict>") -> GpuSpec:
    return _validate(GpuSpec, data, origin)


@cache
def load_fitted(name: str) -> FittedCurves:
    """A built-in fitted-curves file (fitted/NAME.toml)."""
    path = FITTED_DIR / f"{name}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in FITTED_DIR.glob("*.toml"))) or "none"
        raise SpecError(f"unknown efficiency_fit {name!r}; built-in fits: {known}")
    return _validate(FittedCurves, read_spec_file(path, "GPU spec"), str(path))


def load_gpu_file(path: str | Path) -> GpuSpec:
    """A user's own GPU file (TOML or JSON with the preset's fields)."""
    p = Path(path)
    return spec_from_dict(read_spec_file(p, "GPU spec"), str(p))


@cache
def load_gpu_preset(name: str) -> GpuSpec:
    path = PRESET_DIR / f"{name.lower()}.toml"
    if not path.exists():
        raise SpecError(f"unknown GPU preset {name!r}; known: {', '.join(list_gpus())} (or a path to your own .toml)")
    return spec_from_dict(read_spec_file(path, "GPU spec"), str(path))


def get_gpu_spec(target: str | Path | GpuSpec) -> GpuSpec:
    """A preset name (h100, h200, b200), a path to a GPU file, or a spec itself."""
    if isinstance(target, GpuSpec):
        return target
    text = str(target)
    if text.endswith((".toml", ".json")) or "/" in text:
        return load_gpu_file(text)
    return load_gpu_preset(text)


def curves_of(spec: GpuSpec) -> FittedCurves:
    """The efficiency curves a spec uses: its inline table, or the built-in fit it names."""
    if spec.efficiency is not None:
        return spec.efficiency
    assert spec.efficiency_fit is not None  # the spec's validator guarantees one of the two
    return load_fitted(spec.efficiency_fit)


def gpu_sources(name: str) -> dict[str, str]:
    """Map "section.key" -> the source comment beside that number in a built-in preset."""
    doc = tomlkit.parse((PRESET_DIR / f"{name.lower()}.toml").read_text())
    sources: dict[str, str] = {}

    def walk(container: Any, prefix: str) -> None:
        for key, item in container.body:
            if key is None:
                continue
            if isinstance(item, tomlkit.items.Table):
                walk(item.value, f"{prefix}{key.key}.")
            else:
                comment = item.trivia.comment if hasattr(item, "trivia") else ""
                sources[f"{prefix}{key.key}"] = comment.lstrip("# ").strip()

    walk(doc, "")
    return sources

"""Reading spec files (TOML or JSON) and reporting their validation errors, shared by the hardware and GPU
presets."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trnsim.errors import SpecError


def format_validation(err: ValidationError, origin: str, what: str) -> str:
    """One line per bad field: `field.path: reason`, under a heading naming the spec and its origin."""
    lines = [f"invalid {what} {origin}:"]
    for e in err.errors():
        field = ".".join(str(part) for part in e["loc"]) or "(top level)"
        lines.append(f"  {field}: {e['msg']}")
    return "\n".join(lines)


def read_spec_file(path: Path, what: str) -> dict[str, Any]:
    """A TOML or JSON file as a dict; syntax errors name the line (tomllib/json put it in the message)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{what} {path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{what} {path} must hold a table/object at the top level")
    return data

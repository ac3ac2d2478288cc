"""Built-in model presets (HF-format config.json files under configs/) and how names resolve to them.

A name matches a preset case-insensitively after dropping an organisation prefix ("meta-llama/"), separators
("-", "_", spaces), a leading "meta" and a trailing "hf": "llama3.1-70b", "Llama-3.1-70B" and
"meta-llama/Llama-3.1-70B" all name llama-3.1-70b. Each preset's `_name_or_path` (its Hugging Face repo id) is an
alias too, so "mistralai/Mistral-7B-v0.1" finds mistral-7b.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from trnsim.models.errors import ModelConfigError, UnknownModelError

CONFIG_DIR = Path(__file__).parent / "configs"


def name_key(name: str) -> str:
    """The canonical lookup key of a model name (see the module docstring for the rules)."""
    key = name.strip().lower().rsplit("/", 1)[-1]
    key = re.sub(r"[-_\s]", "", key)
    key = key.removeprefix("meta")
    return key.removesuffix("hf") or key


def list_models() -> list[str]:
    """Names of the built-in presets (the file stems under configs/)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


@cache
def _alias_index() -> dict[str, str]:
    """key -> preset name, built from each preset's file name and its `_name_or_path`."""
    index: dict[str, str] = {}
    for name in list_models():
        data = read_config_json(CONFIG_DIR / f"{name}.json")
        for alias in (name, str(data.get("_name_or_path", name))):
            other = index.setdefault(name_key(alias), name)
            if other != name:  # two presets must never share a key, or a name would be ambiguous
                raise ModelConfigError(f"presets {other!r} and {name!r} share the alias {alias!r}")
    return index


def preset_name(name: str) -> str | None:
    """The preset a name or alias refers to, or None."""
    return _alias_index().get(name_key(name))


def unknown_model(name: str) -> UnknownModelError:
    return UnknownModelError(
        f"unknown model {name!r}; known presets: {', '.join(list_models())}. "
        "Or pass the path of a Hugging Face config.json (or a folder holding one)."
    )


def _line_of_key(text: str, key: str) -> int | None:
    match = re.search(rf'"{re.escape(key)}"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def read_config_json(path: Path) -> dict[str, Any]:
    """Parse a config.json, naming the file and line of any syntax error."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelConfigError(f"cannot read model config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path}:1: a config.json must hold a JSON object at the top level")
    return data


def config_field_line(path: Path, key: str) -> str:
    """ "file:line" of a key in a config file, for error messages ("file" alone when not found)."""
    try:
        line = _line_of_key(path.read_text(), key)
    except OSError:
        line = None
    return f"{path}:{line}" if line else str(path)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """The config.json a preset name, alias, file path or folder refers to."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        inner = path / "config.json"
        if not inner.is_file():
            raise ModelConfigError(f"folder {path} holds no config.json")
        return inner
    if path.is_file():
        return path
    preset = preset_name(str(name_or_path))
    if preset is not None:
        return CONFIG_DIR / f"{preset}.json"
    text = str(name_or_path)
    if text.endswith(".json") or text.startswith((".", "/", "~")):
        raise ModelConfigError(f"model config file {text} does not exist")
    raise unknown_model(text)

"""Reading the cost data files and users' override files: TOML parsing, merging, and errors that name the key
and, where it can be found, the line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from trnsim.cost.errors import CostError


def read_toml(path: Path, what: str) -> tuple[dict[str, Any], str]:
    """(data, text) of a TOML file; syntax errors name the file, line and column."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CostError(f"cannot read {what} file {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise CostError(f"{what} file {path} is not valid TOML: {exc}") from None


def _line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort line of the key at `loc` (e.g. ("instances", "trn2.48xlarge", "usd_per_hour")) in TOML text."""
    start = 0
    for part in loc:
        key = re.escape(str(part))
        match = re.compile(rf'^\s*(\[+[^\]\n]*)?["\']?{key}["\']?\s*[\]=.]', re.M).search(text, start)
        if match is None:
            return None
        start = match.start()
    return text.count("\n", 0, start) + 1


def validate(model: type[BaseModel], data: dict[str, Any], origin: str, texts: dict[str, str]) -> Any:
    """`model.model_validate(data)`, turning errors into one CostError listing "key: problem (file:line)"."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = [f"invalid {origin}:"]
        for e in err.errors():
            loc = tuple(e["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            where = [f"{name}:{line}" for name, text in texts.items() if (line := _line_of(text, loc))]
            suffix = f" ({where[-1]})" if where else ""
            lines.append(f"  {key}: {e['msg']}{suffix}")
        raise CostError("\n".join(lines)) from None


def merge(base: dict[str, Any], override: dict[str, Any], leaf: str | None = None) -> dict[str, Any]:
    """Recursive merge of tables. A table holding the key `leaf` (a {value, source} pair) is replaced whole, so
    a user's number never inherits our source."""
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and not (leaf and leaf in value):
            out[key] = merge(old, value, leaf)
        else:
            out[key] = value
    return out

"""Reading a request trace from CSV: a header, then one request per line.

Columns: `prompt_tokens`, `output_tokens` (required, whole numbers >= 1) and `arrival_s` (optional,
seconds >= 0; without it the workload's arrival process decides). Other columns are ignored.
Any malformed row raises TraceError naming the file, the line and what is allowed.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trnsim.serve.errors import TraceError

REQUIRED = ("prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Trace:
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray | None  # None when the file has no arrival_s column

    def __len__(self) -> int:
        return len(self.prompt_tokens)


def _whole(text: str, column: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{where}: {column} {text!r} is not a number; need a whole number >= 1") from None
    if not (math.isfinite(value) and value == int(value) and value >= 1):
        raise TraceError(f"{where}: {column} {text!r} must be a whole number >= 1")
    return int(value)


def _seconds(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{where}: arrival_s {text!r} is not a number; need seconds >= 0") from None
    if not (math.isfinite(value) and value >= 0):
        raise TraceError(f"{where}: arrival_s {text!r} must be a finite number of seconds >= 0")
    return value


def load_trace(path: str | os.PathLike[str]) -> Trace:
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror or exc}") from None
    prompts: list[int] = []
    outputs: list[int] = []
    arrivals: list[float] = []
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise TraceError(f"{path}: the trace is empty; need a header line with {', '.join(REQUIRED)}")
        names = [h.strip() for h in header]
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise TraceError(
                f"{path}:1: header {names} lacks column(s) {missing}; need prompt_tokens, output_tokens "
                "and optionally arrival_s"
            )
        col = {name: names.index(name) for name in (*REQUIRED, "arrival_s") if name in names}
        has_arrival = "arrival_s" in col
        try:
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(names):
                    raise TraceError(f"{where}: {len(row)} fields, but the header has {len(names)}")
                prompts.append(_whole(row[col["prompt_tokens"]].strip(), "prompt_tokens", where))
                outputs.append(_whole(row[col["output_tokens"]].strip(), "output_tokens", where))
                if has_arrival:
                    arrivals.append(_seconds(row[col["arrival_s"]].strip(), where))
        except csv.Error as exc:
            raise TraceError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
        except UnicodeDecodeError:
            raise TraceError(f"{path}: not a UTF-8 text file") from None
    if not prompts:
        raise TraceError(f"{path}: the trace has a header but no requests")
    return Trace(
        prompt_tokens=np.array(prompts, dtype=np.int64),
        output_tokens=np.array(outputs, dtype=np.int64),
        arrival_s=np.array(arrivals, dtype=np.float64) if has_arrival else None,
    )

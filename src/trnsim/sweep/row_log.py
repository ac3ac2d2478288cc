"""Each finished sweep row written as it arrives (JSON lines), so an interrupted sweep keeps its work and a
rerun with the same settings evaluates only the points still missing.

The first line records a fingerprint of the settings (model, spec, workload, step cost, ...); a log written
under other settings is not reused but replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trnsim.sweep.errors import SweepError

Row = dict[str, Any]


def point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, default=str)


class RowLog:
    def __init__(self, path: Path, fingerprint: str, fresh: bool = False) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.finished: dict[str, Row] = {} if fresh else self._read()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.finished:
            path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")

    def _read(self) -> dict[str, Row]:
        if not self.path.exists():
            return {}
        lines = self.path.read_text().splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            return {}
        if header.get("fingerprint") != self.fingerprint:
            return {}
        finished: dict[str, Row] = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut short by an interrupt: everything before it is whole
            finished[point_key(entry["point"])] = entry["row"]
        return finished

    def append(self, point: dict[str, Any], row: Row) -> None:
        try:
            with self.path.open("a") as f:
                f.write(json.dumps({"point": point, "row": row}, default=str) + "\n")
        except OSError as exc:
            raise SweepError(f"cannot write the sweep's rows to {self.path}: {exc.strerror or exc}") from None
        self.finished[point_key(point)] = row

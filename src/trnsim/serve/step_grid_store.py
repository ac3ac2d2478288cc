"""On-disk store of step latencies (SQLite), so a grid computed once by the compiler is reused across runs.

One row per grid point, keyed by a caller-supplied string that names what was measured (model, hardware,
tp, compiler version...). Points are stored one by one, so a grid extended later only computes its new points.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from trnsim.serve.errors import ServeError

Point = tuple[int, int, float]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS step_latency (
    key TEXT NOT NULL,
    batch INTEGER NOT NULL,
    new_tokens INTEGER NOT NULL,
    context REAL NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (key, batch, new_tokens, context)
)
"""


def default_cache_path() -> Path:
    """The step-latency cache file, next to the kernel cache: $TRNSIM_CACHE_DIR, else the user cache directory."""
    from trnsim.compiler.kernel_cache import cache_dir

    return cache_dir() / "step_latency.sqlite"


class StepLatencyStore:
    """A SQLite file of (key, batch, new_tokens, context) -> seconds."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ServeError(
                f"cannot use {self.path} as the step-latency cache ({exc}); pass another cache_path"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30.0)

    def load(self, key: str) -> dict[Point, float]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT batch, new_tokens, context, seconds FROM step_latency WHERE key = ?", (key,)
            ).fetchall()
        return {(int(b), int(n), float(c)): float(s) for b, n, c, s in rows}

    def save(self, key: str, values: Iterable[tuple[Point, float]]) -> None:
        rows = [(key, b, n, c, s) for (b, n, c), s in values]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO step_latency VALUES (?, ?, ?, ?, ?)", rows)

"""The kernel-invocation cache: identical invocations (same kernel, shapes, dtypes, arguments, hardware) are
simulated once.

What is cached is the invocation's cost summary (latency, engine busy time, FLOPs, HBM bytes, ...), in
memory and in an embedded SQLite file under the user cache directory (`TRNSIM_CACHE_DIR` overrides it,
`TRNSIM_CACHE=0` turns the disk cache off). Keys include a fingerprint of the simulator's own source (isa,
sim, nki, kernels) and of the hardware spec, so editing either invalidates old entries.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trnsim

_SIMULATOR_PACKAGES = ("isa", "sim", "nki", "kernels")


@dataclass(frozen=True)
class KernelCost:
    """What one kernel invocation costs on the simulated core (the numbers a Profile reports)."""

    kernel: str
    latency_us: float
    engine_busy_us: dict[str, float]
    flops: int
    hbm_bytes: int
    instructions: int
    sbuf_peak_bytes: int
    psum_peak_bytes: int
    outputs: Any = None  # the kernel's result as nested ["T", shape, dtype] (timing runs need no trace on a hit)

    @property
    def bottleneck(self) -> str:
        return max(self.engine_busy_us, key=lambda k: self.engine_busy_us[k])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KernelCost:
        return cls(**json.loads(text))


@functools.cache
def simulator_fingerprint() -> str:
    """Hash of the simulator's source files and version: a change to either invalidates cached costs."""
    return source_fingerprint(_SIMULATOR_PACKAGES)


@functools.cache
def source_fingerprint(packages: tuple[str, ...]) -> str:
    """Hash of trnsim's version and the source files of `packages` (sub-packages of trnsim)."""
    root = Path(trnsim.__file__).parent
    h = hashlib.sha256(trnsim.__version__.encode())
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    env = os.environ.get("TRNSIM_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("trnsim"))


class KernelCache:
    """In-memory dict in front of a SQLite table (key TEXT PRIMARY KEY, value TEXT)."""

    def __init__(self, path: Path | None = None, use_disk: bool | None = None) -> None:
        self._mem: dict[str, KernelCost] = {}
        self._lock = threading.Lock()
        if use_disk is None:
            use_disk = os.environ.get("TRNSIM_CACHE", "1") != "0"
        self.path = (path or cache_dir() / "kernels.sqlite") if use_disk else None
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0

    def _conn(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                self._db.execute("CREATE TABLE IF NOT EXISTS kernel_cost (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.commit()
            except (OSError, sqlite3.Error):
                self.path = None  # an unwritable cache directory only costs speed
                return None
        return self._db

    def get(self, key: str, count: bool = True) -> KernelCost | None:
        """The cost on record for `key`, or None; counted as a hit or miss unless count=False (the caller
        then says what the lookup amounted to with record())."""
        with self._lock:
            hit = self._mem.get(key)
            if hit is None and (db := self._conn()) is not None:
                row = db.execute("SELECT value FROM kernel_cost WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    hit = KernelCost.from_json(row[0])
                    self._mem[key] = hit
            if count:
                self._count(hit is not None)
            return hit

    def record(self, hit: bool) -> None:
        """Count one invocation as served from the cache (hit) or simulated (miss)."""
        with self._lock:
            self._count(hit)

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    def put(self, key: str, cost: KernelCost) -> None:
        with self._lock:
            self._mem[key] = cost
            if (db := self._conn()) is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("INSERT OR REPLACE INTO kernel_cost VALUES (?, ?)", (key, cost.to_json()))
                    db.commit()

    def clear_memory(self) -> None:
        with self._lock:
            self._mem.clear()


_default: KernelCache | None = None


def default_cache() -> KernelCache:
    global _default
    if _default is None:
        _default = KernelCache()
    return _default


def reset_default_cache(cache: KernelCache | None = None) -> None:
    """Point the process-wide cache somewhere else (tests), or drop it so the next use re-reads the environment."""
    global _default
    _default = cache


def invocation_key(kernel_id: str, arg_signature: Any, spec_json: str) -> str:
    """A stable key for (kernel, argument shapes/dtypes/values that shape the stream, hardware, simulator)."""
    h = hashlib.sha256()
    h.update(simulator_fingerprint().encode())
    h.update(kernel_id.encode())
    h.update(json.dumps(arg_signature, sort_keys=True, default=str).encode())
    h.update(hashlib.sha256(spec_json.encode()).digest())
    return h.hexdigest()

"""The measured GPU data (GEMM and bandwidth rows) as arrays, with their file hashes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trnsim.errors import SpecError

DATA_DIR = Path(__file__).parent / "data"
GEMM_FILE = "h100_gemm.json"
BANDWIDTH_FILE = "h100_bandwidth.json"


@dataclass(frozen=True)
class GemmRows:
    dtype: NDArray[np.str_]
    m: NDArray[np.int64]
    n: NDArray[np.int64]
    k: NDArray[np.int64]
    seconds: NDArray[np.float64]


@dataclass(frozen=True)
class BandwidthRows:
    op: NDArray[np.str_]
    bytes_moved: NDArray[np.float64]  # read + written, as the data's gbps counts them
    seconds: NDArray[np.float64]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path, keys: tuple[str, ...]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read measured GPU data {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"measured GPU data {path} is not valid JSON: {exc}") from None
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows:
        raise SpecError(f"measured GPU data {path} needs a non-empty 'rows' list")
    for i, row in enumerate(rows):
        missing = [k for k in keys if k not in row]
        if missing:
            raise SpecError(f"{path}: row {i} lacks {', '.join(missing)} (each row needs {', '.join(keys)})")
    return doc.get("meta", {}), rows


def load_gemm(data_dir: Path = DATA_DIR) -> GemmRows:
    _, rows = _rows(data_dir / GEMM_FILE, ("dtype", "M", "N", "K", "ms"))
    return GemmRows(
        dtype=np.array([r["dtype"] for r in rows]),
        m=np.array([r["M"] for r in rows], dtype=np.int64),
        n=np.array([r["N"] for r in rows], dtype=np.int64),
        k=np.array([r["K"] for r in rows], dtype=np.int64),
        seconds=np.array([r["ms"] for r in rows], dtype=np.float64) * 1e-3,
    )


def load_bandwidth(data_dir: Path = DATA_DIR) -> BandwidthRows:
    _, rows = _rows(data_dir / BANDWIDTH_FILE, ("op", "MB", "ms"))
    # "MB" is the buffer size in MiB; each op reads the buffer and writes one of the same size.
    return BandwidthRows(
        op=np.array([r["op"] for r in rows]),
        bytes_moved=np.array([2.0 * r["MB"] * 2**20 for r in rows]),
        seconds=np.array([r["ms"] for r in rows], dtype=np.float64) * 1e-3,
    )


def device_name(data_dir: Path = DATA_DIR) -> str:
    meta, _ = _rows(data_dir / GEMM_FILE, ("dtype", "M", "N", "K", "ms"))
    return f"{meta.get('name', 'unknown GPU')}, {meta.get('sms', '?')} SMs, torch {meta.get('torch', '?')}"

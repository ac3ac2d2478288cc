"""Sweep rows as tables (CSV always, Parquet with pyarrow) and their Pareto front."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trnsim.sweep.errors import SweepError

Row = dict[str, Any]

# Metrics where less is better (cost, latency, energy); every other metric is better when larger.
LOWER_IS_BETTER = frozenset(
    {"usd_per_mtok", "j_per_tok", "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "e2e_ms_p50",
     "e2e_ms_p99", "preemptions"}
)  # fmt: skip


def columns(rows: Sequence[Row]) -> list[str]:
    """Every key of every row, in first-seen order."""
    return list(dict.fromkeys(k for row in rows for k in row))


def write_csv(rows: Sequence[Row], path: str | Path) -> Path:
    """One header line, one line per row; None is an empty cell."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns(rows))
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])
    return p


def _cell(text: str) -> Any:
    """A CSV cell back to the value written: empty -> None, then int, float, bool, or the text."""
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def read_csv(path: str | Path) -> list[Row]:
    with Path(path).open(newline="") as f:
        return [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise SweepError("Parquet output needs pyarrow: pip install 'trnsim[parquet]' (CSV needs nothing)") from None
    return pyarrow


def parquet_available() -> bool:
    try:
        _pyarrow()
    except SweepError:
        return False
    return True


def write_parquet(rows: Sequence[Row], path: str | Path) -> Path:
    pa = _pyarrow()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    names = columns(rows)
    try:
        table = pa.Table.from_pylist([{k: row.get(k) for k in names} for row in rows])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SweepError(f"cannot write {p} as Parquet (a column mixes types: {exc}); use the CSV instead") from None
    pa.parquet.write_table(table, p)
    return p


def read_parquet(path: str | Path) -> list[Row]:
    pa = _pyarrow()
    rows: list[Row] = pa.parquet.read_table(Path(path)).to_pylist()
    return rows


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def pareto_front(
    rows: Sequence[Row],
    x: str = "usd_per_mtok",
    y: str = "throughput_tok_s",
    minimize_x: bool = True,
    maximize_y: bool = True,
) -> list[Row]:
    """The rows no other row dominates (at least as good on both x and y, strictly better on one), by x.

    Rows without a finite number in x or y (failed points, no price) take no part. Equal points are all kept.
    """
    sx = 1.0 if minimize_x else -1.0
    sy = -1.0 if maximize_y else 1.0
    # In "smaller is better" coordinates, sorted by x then y: a row is on the front when its y beats every
    # row with a strictly smaller x, and it has the best y of the rows sharing its x.
    usable = [i for i, r in enumerate(rows) if is_number(r.get(x)) and is_number(r.get(y))]
    keyed = sorted((sx * rows[i][x], sy * rows[i][y], i) for i in usable)
    front: list[int] = []
    best_y = math.inf
    start = 0
    while start < len(keyed):
        end = start
        while end < len(keyed) and keyed[end][0] == keyed[start][0]:
            end += 1
        group_best = keyed[start][1]
        if group_best < best_y:
            front.extend(i for _, gy, i in keyed[start:end] if gy == group_best)
            best_y = group_best
        start = end
    return [rows[i] for i in front]

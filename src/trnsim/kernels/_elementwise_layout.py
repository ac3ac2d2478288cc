"""How elementwise operands and the output map onto blocks of rows: numpy broadcasting, operands seen as rows
[rows, cols] (with a row map for broadcast leading dims), the output cut into [p, k, d] blocks, and the HBM
view of each operand for a block. Used by the elementwise kernels' streaming loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trnsim.kernels._common import pmax, require
from trnsim.kernels._stream import DMA_RUN_BYTES, col_chunks, row_blocks
from trnsim.nki.tensor import NkiTensor


def _broadcast_shape(shapes: list[tuple[int, ...]], kernel: str) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        require(False, f"{kernel}: shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast")
        raise


# -- operands: how each tensor maps onto the output's rows -------------------------------------------------
@dataclass
class _Operand:
    """A tensor operand seen as rows [rows, cols] (cols = D, or 1 for one value per output row)."""

    flat: Any  # the whole tensor as a 1-D HBM view
    rows2d: Any  # the whole tensor as [rows, cols]
    cols: int
    row_map: np.ndarray | None  # operand row of each output row; None: the output's own rows
    per_row: bool  # one value per output row (last dim broadcast)
    resident: bool  # the same for every output row: loaded once, kept in SBUF
    per_block: bool = False  # the same for every row but too long to keep: broadcast again for each block


def _operand(t: NkiTensor, out_shape: tuple[int, ...], flat_rows: bool) -> _Operand:
    shape = (1,) * (len(out_shape) - t.ndim) + tuple(t.shape)
    cols = shape[-1]
    n_rows = t.size // cols
    per_row = cols == 1 and out_shape[-1] != 1
    lead, out_lead = shape[:-1], out_shape[:-1]
    resident = int(np.prod(lead)) == 1 and int(np.prod(out_lead)) > 1
    row_map = None
    if lead != out_lead:
        # Output row r -> its multi-index -> the operand's index (0 along broadcast dims) -> operand row.
        idx = np.unravel_index(np.arange(int(np.prod(out_lead))), out_lead)
        row_map = np.ravel_multi_index(tuple(i * (s != 1) for i, s in zip(idx, lead)), lead)
    return _Operand(
        flat=t.reshape((t.size,)),
        rows2d=t.reshape((n_rows, cols)),
        cols=cols,
        row_map=row_map,
        per_row=per_row,
        resident=resident and not flat_rows,
    )


@dataclass(frozen=True)
class _Block:
    """A [p, k, d] tile of the output, seen as rows of `width` values: p partitions x k consecutive rows,
    columns c0 .. c0 + d (k == 1 when d < width). `elem` marks the flat layout's ragged end instead:
    p * d elements from element `elem`, no rows."""

    row: int
    p: int
    k: int
    c0: int
    d: int
    elem: int | None = None

    @property
    def rows(self) -> int:
        return self.p * self.k


def _blocks(n: int, width: int, widest: int, flat: bool, run_bytes: int = DMA_RUN_BYTES) -> tuple[int, list[_Block]]:
    """(row width, blocks covering the n output elements). Rows are the output's rows, or for the flat
    layout rows of ~run_bytes chosen here plus the ragged end; rows longer than that go in column chunks."""
    pm = pmax()
    if flat:  # rows of ~run_bytes, but enough of them to fill the partitions
        width = min(run_bytes // widest, max(1, n // pm))
    n_rows = n // width
    chunks = col_chunks(width, widest, run_bytes) if width * widest > run_bytes else [(0, width)]
    blocks = [
        _Block(b.row, b.p, b.k, c0, cs) for b in row_blocks(n_rows, width * widest, run_bytes) for c0, cs in chunks
    ]
    q, r = divmod(n - n_rows * width, pm)
    # The ragged end goes first: its small transfers then overlap with the big ones behind them.
    ends = [_Block(0, pm, 1, 0, q, elem=n_rows * width)] if q else []
    if r:
        ends.append(_Block(0, r, 1, 0, 1, elem=n - r))
    return width, ends + blocks


def _view(flat: Any, rows2d: Any, b: _Block, width: int) -> Any:
    """HBM view of a tensor laid out like the output (flat: 1-D, rows2d: [rows, width]) for block b."""
    if b.elem is not None:
        return flat[b.elem : b.elem + b.p * b.d]
    if b.c0 == 0 and b.d == width:  # whole rows: one contiguous run per partition
        return flat[b.row * width : (b.row + b.rows) * width]
    return rows2d[b.row : b.row + b.p, b.c0 : b.c0 + b.d]


def _rows_view(op: _Operand, b: _Block, width: int) -> Any:
    """HBM view of operand `op` for block `b`: a slice where its rows are contiguous, else a gather (one
    descriptor per partition row, like an indirect DMA). Per-row operands give one value per row."""
    if op.row_map is None and not op.per_row:
        return _view(op.flat, op.rows2d, b, width)
    # Per-row and broadcast operands only occur in the row layout, where a block is whole output rows.
    rows = np.arange(b.row, b.row + b.rows) if op.row_map is None else op.row_map[b.row : b.row + b.rows]
    contiguous = bool(np.all(np.diff(rows) == 1))
    if op.per_row:
        return op.flat[int(rows[0]) : int(rows[0]) + b.rows] if contiguous else op.rows2d[rows.reshape(b.p, b.k), 0]
    if contiguous and b.d == op.cols:
        return op.flat[int(rows[0]) * op.cols : (int(rows[0]) + b.rows) * op.cols]
    cols = np.arange(b.c0, b.c0 + b.d)[None, None, :]
    return op.rows2d[rows.reshape(b.p, b.k)[:, :, None], cols]

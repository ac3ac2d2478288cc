"""Embedding lookup: out[..., :] = table[ids[...], :].

`embedding(ids, table)`: ids int32 [T] or [B, S], table [V, D] -> [T, D] or [B, S, D] in the table's dtype.

The gather is a stream of HBM -> HBM DMAs, one per run of ids that are consecutive both in the id
sequence and in the table (a single row when ids are scattered). Its sizes come from the ids, so they must
be known while tracing (see _host_values: a Python sequence in any mode, an integer array in functional
mode). Limitation: the simulator has no indirect DMA yet (a DMA whose source rows come from an index tile
on the device, `.ap(vector_offset=...)` in NKI); with it the ids could stay on the device and one
descriptor-generating DMA per 128 ids would replace the per-run DMAs.

Rows are copied as they are (no cast), so a DMA moves D * itemsize contiguous bytes per row, and the 16
DMA queues work on different runs in parallel.
"""

from __future__ import annotations

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.kernels._common import require
from trnsim.kernels._host_values import host_ints

TABLE_DTYPES = (dtypes.float32, dtypes.bfloat16, dtypes.float16, dtypes.float8_e4m3, dtypes.float8_e5m2)


def runs(ids: list[int]) -> list[tuple[int, int, int]]:
    """(first output position, first table row, rows) of maximal runs of consecutive ids."""
    out: list[tuple[int, int, int]] = []
    for t, i in enumerate(ids):
        if out and out[-1][1] + out[-1][2] == i:
            t0, i0, n = out[-1]
            out[-1] = (t0, i0, n + 1)
        else:
            out.append((t, i, 1))
    return out


@nki.jit
def embedding(ids, table):
    """table[ids]: ids [T] or [B, S] (known while tracing), table [V, D] -> [*ids.shape, D]."""
    name = "embedding"
    require(len(table.shape) == 2, f"{name}: table must be [V, D], got {list(table.shape)}")
    require(table.dtype in TABLE_DTYPES, f"{name}: table dtype {dtypes.name(table.dtype)} is not a float type")
    values = host_ints(ids, "ids", name)
    require(values.ndim in (1, 2), f"{name}: ids must be [T] or [B, S], got {list(values.shape)}")
    vocab, d = table.shape
    flat = [int(i) for i in values.reshape(-1)]
    bad = [i for i in flat if not 0 <= i < vocab]
    require(not bad, f"{name}: ids must be in 0..{vocab - 1} (the table's rows), got {bad[:4]}", rule="bounds")

    out = nl.ndarray((*values.shape, d), table.dtype, buffer=nl.shared_hbm)
    rows = out.reshape((len(flat), d)) if values.ndim == 2 else out
    for t0, i0, n in runs(flat):
        nisa.dma_copy(dst=rows[t0 : t0 + n, :], src=table[i0 : i0 + n, :])
    return out

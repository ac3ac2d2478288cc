"""`nki.isa.dma_engine` of NKI 0.6: the DMA a sendrecv uses (an enum; legacy NKI's `nisa.dma_engine` was the
DMA engine constant, which nki/legacy_isa.py keeps)."""

from __future__ import annotations

from enum import Enum


class dma_engine(Enum):
    dma = 1  # shared DMA with CoreBarrier synchronization (default)
    gpsimd_dma = 2  # GpSimd's internal DMA engine: low-latency SBUF-to-SBUF swaps in LNC=2

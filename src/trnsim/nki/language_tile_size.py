"""`nl.tile_size`: the hardware tile limits of the current target (re-exported by nki/language.py)."""

from __future__ import annotations

from typing import Any

from trnsim.nki.context import maybe_current as _maybe_current
from trnsim.nki.target import get_target_spec


class _TileSize:
    """nl.tile_size: hardware tile limits of the current target."""

    def _core(self) -> Any:
        ctx = _maybe_current()
        if ctx is not None:
            return ctx.machine.spec.core
        return get_target_spec().core

    @property
    def pmax(self) -> int:
        return int(self._core().sbuf.partitions)

    @property
    def psum_fmax(self) -> int:
        c = self._core()
        return int(c.psum.bank_bytes // 4)

    psum_bank_fmax = psum_fmax

    @property
    def psum_num_banks(self) -> int:
        return int(self._core().psum.banks)

    @property
    def gemm_stationary_fmax(self) -> int:
        return int(self._core().tensor.pe_cols)

    @property
    def gemm_moving_fmax(self) -> int:
        return int(self._core().tensor.moving_fmax)

    @property
    def bn_stats_fmax(self) -> int:
        return int(self._core().vector.bn_stats_fmax)

    @property
    def sbuf_size_bytes(self) -> int:
        return int(self._core().sbuf.partition_bytes)

    total_available_sbuf_size = sbuf_size_bytes


tile_size = _TileSize()

"""`nki.language` memories: sbuf, psum, hbm, private_hbm, shared_hbm, MemoryRegion and the is_* predicates
(re-exported by nki/language.py)."""

from __future__ import annotations

from typing import Any

from trnsim.nki import compiler as _ncc
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

sbuf = MemoryKind.SBUF
psum = MemoryKind.PSUM
hbm = MemoryKind.HBM
private_hbm = MemoryKind.HBM


class _SharedHbm:
    """nl.shared_hbm: HBM visible to every SPMD program (kernel outputs live here)."""

    def __repr__(self) -> str:
        return "nl.shared_hbm"


shared_hbm = _SharedHbm()


class MemoryRegion:
    """nl.MemoryRegion: the memories a tensor can live in."""

    sbuf = sbuf
    psum = psum
    private_hbm = private_hbm
    shared_hbm = shared_hbm


def _memory(buffer: Any) -> Any:
    return buffer.buffer if isinstance(buffer, NkiTensor) else _ncc.memory_kind(buffer)


def is_hbm(buffer: Any) -> bool:
    """True for nl.hbm / nl.private_hbm / nl.shared_hbm (or a tensor there)."""
    kind = _memory(buffer)
    return kind is hbm or kind is shared_hbm


def is_on_chip(buffer: Any) -> bool:
    return _memory(buffer) in (sbuf, psum)


def is_psum(buffer: Any) -> bool:
    return _memory(buffer) is psum


def is_sbuf(buffer: Any) -> bool:
    return _memory(buffer) is sbuf

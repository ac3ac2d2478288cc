"""How the GEMM's work is cut along K and along the rows (see _gemm): the chunks of a row-major operand's
k-steps, their ramp at the kernel's start and end, and the strips of S rows."""

from __future__ import annotations

from trnsim.kernels._common import cdiv, pmax
from trnsim.kernels._gemm_operands import KStep


def _chunk_map(ksteps: list[KStep], k_chunk: int, ramp_up: bool, tail: list[int]) -> list[tuple[int, int, int]]:
    """For each k-step, the (index, first column, width) of the row-major chunk holding it.

    Chunks hold k_chunk columns of whole k-steps; with `ramp_up` the first ones are 1, 2, 4, ...
    k-steps long (so TensorE starts after a small load), and the last ones are `tail` (k-steps each).
    """
    n = len(ksteps)
    per_chunk = max(1, k_chunk // ksteps[0].size)
    head = _ramp(per_chunk, 2.0) if ramp_up else []
    while sum(head) + sum(tail) > n:
        head = head[:-1] if head else head
        tail = tail[1:] if sum(tail) > n else tail
    rest = n - sum(head) - sum(tail)
    counts = head + [min(per_chunk, rest - i) for i in range(0, rest, per_chunk)] + tail
    out: list[tuple[int, int, int]] = []
    i = 0
    for index, c in enumerate(counts):
        first, last = ksteps[i], ksteps[i + c - 1]
        out.extend((index, first.k0, last.k0 + last.size - first.k0) for _ in range(c))
        i += c
    return out


def _ramp(limit: int, growth: float) -> list[int]:
    """Chunk lengths (k-steps) from 1 growing by `growth` while below `limit`."""
    out = []
    c = 1
    while c < limit:
        out.append(c)
        c = max(c + 1, round(c * growth))
    return out


def _strips(n_tiles: int, per_strip: int, rows: int) -> list[tuple[int, int]]:
    """Row ranges of strips of at most `per_strip` 128-row tiles, as even in size as possible."""
    p = pmax()
    count = cdiv(n_tiles, per_strip)
    out = []
    t0 = 0
    for s in range(count):
        nt = n_tiles // count + (1 if s < n_tiles % count else 0)
        r0 = t0 * p
        out.append((r0, min(rows, (t0 + nt) * p) - r0))
        t0 += nt
    return out

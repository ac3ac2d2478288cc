"""`nki.language` random numbers: rand, random_seed and dropout (NKI 0.6, experimental there).

They lower to nki.isa's VectorE random instructions (nki/emit_random.py), so they draw from the same
per-lane XORWOW state: `nl.random_seed(seed)` followed by the same calls gives the same values.
"""

from __future__ import annotations

from typing import Any

from trnsim import dtypes as _dt
from trnsim.errors import UsageError
from trnsim.nki import emit_arith, emit_movement, emit_random
from trnsim.nki.compiler import memory_kind
from trnsim.nki.context import current, user_location
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.tiles import _mark_fresh, new_tensor
from trnsim.sim.memory import MemoryKind

RAND_BITS_DTYPE = _dt.uint16  # NKI docs (nki.isa.rng): 16 random bits as uint16, divided by 2**16
_TWO_TO_MINUS_16 = 2.0**-16
EXACT_MEMSET_INT = 2**24  # memset computes in fp32: integers up to 2**24 are exact


def _no_mask(mask: Any, what: str, loc: str) -> None:
    if mask is not None:
        raise UsageError(f"{what}: mask= is not supported; slice the tiles instead", loc)


def rand(shape: Any, dtype: Any = _dt.float32, buffer: Any = MemoryKind.SBUF, name: str = "", **_: Any) -> NkiTensor:
    """A new tensor of uniform values in [0, 1): rng into uint16, then a multiply by 2**-16 (VectorE).
    (dtype defaults to float32, legacy neuronxcc's default; NKI 0.6 always passes it.)"""
    ctx = current()
    loc = user_location()
    dims = tuple(int(s) for s in shape) if isinstance(shape, tuple | list) else (int(shape),)
    kind = memory_kind(buffer)
    if not isinstance(kind, MemoryKind):  # nl.shared_hbm
        raise UsageError("nl.rand creates an SBUF, PSUM or nl.hbm tensor; store it into shared_hbm", loc)
    on_chip = kind if kind is not MemoryKind.HBM else MemoryKind.SBUF
    bits = new_tensor(dims, RAND_BITS_DTYPE, on_chip, location=loc)
    emit_random.rng(bits, location=loc)
    out = new_tensor(dims, dtype, on_chip, name, location=loc)
    emit_arith.tensor_scalar(out, bits, "multiply", _TWO_TO_MINUS_16, location=loc)
    if kind is MemoryKind.HBM:
        hbm = new_tensor(dims, dtype, MemoryKind.HBM, name, location=loc)
        emit_movement.dma_copy(hbm, out, location=loc)
        return hbm
    return _mark_fresh(ctx, out)


def random_seed(seed: Any, *, mask: Any = None, **_: Any) -> None:
    """Seed the random values of later nl.rand / nl.dropout calls from a [1, 1] 32-bit tile (NKI 0.6), or
    from an int (legacy neuronxcc), which a memset writes into a [1, 1] int32 tile first."""
    loc = user_location()
    _no_mask(mask, "nl.random_seed", loc)
    if not isinstance(seed, NkiTensor):
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= EXACT_MEMSET_INT:
            raise UsageError(
                f"nl.random_seed takes a [1, 1] 32-bit tile, or an int in 0..{EXACT_MEMSET_INT} (written by a "
                f"memset, which computes in fp32); got {seed!r}",
                loc,
            )
        tile = new_tensor((1, 1), _dt.int32, MemoryKind.SBUF, location=loc)
        emit_movement.memset(tile, seed, location=loc)
        seed = tile
    emit_random.set_rng_seed(seed, location=loc)


def dropout(x: Any, rate: Any, dtype: Any = None, *, mask: Any = None, **_: Any) -> NkiTensor:
    """A new tile: x with each element zeroed with probability rate (a scalar or an [x.shape[0], 1] tile)."""
    ctx = current()
    loc = user_location()
    _no_mask(mask, "nl.dropout", loc)
    if not isinstance(x, NkiTensor):
        raise UsageError(f"nl.dropout takes a tile, got {type(x).__name__}", loc)
    p = x.partition_size()
    if isinstance(rate, NkiTensor) and rate.size == 1 and p > 1:  # legacy: "a tile with 1 element"
        per_partition = new_tensor((p, 1), _dt.float32, MemoryKind.SBUF, location=loc)
        emit_movement.broadcast_copy(per_partition, rate, loc)  # one GpSimd partition broadcast
        rate = per_partition
    out = new_tensor(x.shape, x.dtype, MemoryKind.SBUF, location=loc)
    emit_random.dropout(out, x, rate, location=loc)
    if dtype is None or _dt.resolve(dtype) == x.dtype:
        return _mark_fresh(ctx, out)
    cast = new_tensor(x.shape, dtype, MemoryKind.SBUF, location=loc)
    emit_movement.tensor_copy(cast, out, location=loc)
    return _mark_fresh(ctx, cast)

"""Integer arguments a kernel needs as Python values while tracing (token ids, sequence lengths).

The simulator has no indirect (data-dependent) DMA or loop bounds yet, so kernels like embedding and
decode attention shape their instruction streams from these values. A kernel is traced afresh on every
call, so they may come as a Python sequence (any mode) or as an integer numpy array (functional mode,
where the argument's values are in HBM while tracing). In timing mode an array argument carries only its
shape, so such kernels need a list there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import DtypeError, UsageError
from trnsim.nki.context import outside_location
from trnsim.nki.tensor import NkiTensor


def host_ints(x: Any, what: str, kernel: str) -> np.ndarray:
    """The integer values of `x` as a numpy array (int64), read at trace time."""
    if isinstance(x, NkiTensor):
        if x.alloc.storage is None:
            raise UsageError(
                f"{kernel}: {what} must be known while tracing; with mode='timing' pass them as a Python list "
                "(an array argument carries no values in timing mode)",
                outside_location(),
                rule="host-values",
            )
        values = np.asarray(x.read())
    else:
        values = np.asarray(x)
    if values.dtype.kind not in "iu":
        raise DtypeError(f"{kernel}: {what} must be integers, got {values.dtype}", outside_location(), rule="dtype")
    return values.astype(np.int64)

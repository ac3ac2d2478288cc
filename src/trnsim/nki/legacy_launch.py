"""Legacy `neuronxcc.nki.trace` and `neuronxcc.nki.simulate_kernel` with output arguments.

Kernels written for `nki.trace` (NKI Beta 1; the NKI docs' own tests still use it) return nothing: the caller
passes the output arrays too, and the kernel stores into those HBM tensors. `simulate_kernel` therefore copies
what the kernel wrote into an argument back into the caller's numpy array, as NKI's simulator does.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from trnsim.nki.kernel import Kernel, jit, simulate
from trnsim.nki.tensor import NkiTensor


def trace(kernel: Any = None, **options: Any) -> Any:
    """`@nki.trace` / `@nki.trace(...)`: the kernel, traced when it is launched (as `nki.jit`)."""
    return jit(kernel, **options)


def simulate_kernel(kernel: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `kernel` functionally; numpy arguments the kernel wrote into get the written values; return its result."""
    k = kernel if isinstance(kernel, Kernel) else jit(kernel)
    # argument position or name -> (its HBM tensor, what it held before the kernel ran), from the first program
    seen: dict[int | str, tuple[NkiTensor, np.ndarray]] = {}

    @functools.wraps(k.fn)
    def recording(*hbm_args: Any, **hbm_kwargs: Any) -> Any:
        if not seen:
            given: list[tuple[int | str, Any]] = [*enumerate(hbm_args), *hbm_kwargs.items()]
            for key, t in given:
                if isinstance(t, NkiTensor):
                    seen[key] = (t, np.array(t.read()))
        return k.fn(*hbm_args, **hbm_kwargs)

    result = simulate(Kernel(recording, k.grid, k.platform_target))(*args, **kwargs)
    passed: list[tuple[int | str, Any]] = [*enumerate(args), *kwargs.items()]
    for key, arg in passed:
        if isinstance(arg, np.ndarray) and arg.flags.writeable and key in seen:
            tensor, before = seen[key]
            after = np.asarray(tensor.read())
            if not np.array_equal(after, before, equal_nan=after.dtype.kind == "f"):
                np.copyto(arg, after.reshape(arg.shape).astype(arg.dtype, copy=False))
    return result

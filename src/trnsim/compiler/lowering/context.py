"""What a lowering sees while it runs: a way to launch library kernels on the simulated core (values in
functional mode, shapes only in timing mode) and to charge data moves, each recorded against the graph node.

Lowerings are written once for both modes: in timing mode their tensor arguments are `meta` tensors, and
kernel launches return meta tensors of the kernel's output shape.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trnsim import dtypes
from trnsim.compiler.dtype_estimate import format_kernel, retype_operands
from trnsim.compiler.kernel_cache import KernelCache, KernelCost
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.compiler.move_cost import move_cost
from trnsim.compiler.tp_llama4 import EXPERTS_REDUCE
from trnsim.compiler.unpriced import is_unpriced, unpriced_outputs
from trnsim.hw.spec import HardwareSpec
from trnsim.nki.kernel import Kernel, TensorSpec
from trnsim.runtime.graph_profile import OpRecord
from trnsim.torch_arrays import numpy_to_torch, torch_to_numpy

_TORCH_TO_NUMPY = {
    torch.float32: np.dtype(np.float32),
    torch.float16: np.dtype(np.float16),
    torch.bfloat16: np.dtype(dtypes.bfloat16),
    torch.float8_e4m3fn: np.dtype(dtypes.resolve("float8_e4m3fn")),
    torch.float8_e5m2: np.dtype(dtypes.resolve("float8_e5m2")),
    torch.int64: np.dtype(np.int64),
    torch.int32: np.dtype(np.int32),
    torch.int8: np.dtype(np.int8),
    torch.uint8: np.dtype(np.uint8),
}
_NUMPY_TO_TORCH = {v: k for k, v in _TORCH_TO_NUMPY.items()}

KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it BLAS keeps its default thread count
        return None
    return ThreadpoolController()


_BLAS = _blas_controller()


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Functional simulation multiplies tiles of at most 128 x 512: BLAS threads only add hand-over cost there
    (measured 0.13 ms per 128 x 128 x 128 tile with one thread, 38 ms with two on a busy 2-core host)."""
    return _BLAS.limit(limits=1, user_api="blas") if _BLAS is not None else contextlib.nullcontext()


# Weights a kernel reads in another layout (a transposed weight), kept per parameter between calls: laid out
# once, like a compiled model's weights. Keyed by the parameter's identity (checked through a weak reference,
# since ids are reused), the view, and the parameter's version counter (in-place updates make a new layout).
_LAYOUTS: dict[int, tuple[weakref.ref[torch.Tensor], tuple[Any, ...], np.ndarray]] = {}


def _constant_layout(x: torch.Tensor) -> np.ndarray:
    base = x._base if x._base is not None else x
    key = (base._version, tuple(x.shape), x.stride(), x.storage_offset(), x.dtype)
    hit = _LAYOUTS.get(id(base))
    if hit is not None and hit[0]() is base and hit[1] == key:
        return hit[2]
    array = torch_to_numpy(x.contiguous())
    ident = id(base)

    def forget(_: Any) -> None:  # the parameter is gone: drop its layout (unless its id already has a new one)
        entry = _LAYOUTS.get(ident)
        if entry is not None and entry[0]() is None:
            del _LAYOUTS[ident]

    _LAYOUTS[ident] = (weakref.ref(base, forget), key, array)
    return array


class Unsupported(Exception):
    """Raised by a lowering that cannot handle these arguments; the op then runs on the host."""


def is_constant(t: torch.Tensor) -> bool:
    """A model parameter/buffer (or a view of one): its layout is chosen once at compile time, for free."""
    base = t._base if t._base is not None else t
    return (
        isinstance(t, torch.nn.Parameter)
        or isinstance(base, torch.nn.Parameter)
        or getattr(base, "_trnsim_constant", False)
    )


def numpy_dtype(t: torch.dtype) -> np.dtype[Any]:
    try:
        return _TORCH_TO_NUMPY[t]
    except KeyError:
        raise Unsupported(f"dtype {t}") from None


def torch_dtype(d: Any) -> torch.dtype:
    return _NUMPY_TO_TORCH[np.dtype(d)]


@dataclass
class LowerContext:
    spec: HardwareSpec
    functional: bool
    cache: KernelCache
    node: str = ""
    op: str = ""
    source: str = ""
    records: list[OpRecord] = field(default_factory=list)
    used_outputs: frozenset[int] | None = None  # which items of a tuple result the graph reads (None: all)
    tp_plan: Any = None  # TPPlan of a tensor-parallel estimate

    def after_linear(self, k: int, n: int, out: torch.Tensor) -> None:
        """Add the collective a tensor-parallel linear needs (row-parallel: all-reduce; logits: all-gather)."""
        if self.tp_plan is None:
            return
        need = self.tp_plan.after_linear(k, n, out.numel() * out.element_size())
        if need is not None:
            kind, us = need
            self.records.append(
                OpRecord(
                    node=self.node,
                    op=self.op,
                    kind="collective",
                    kernel=kind,
                    device_us=us,
                    source=self.source,
                    shapes=f"{list(out.shape)}:{str(out.dtype).removeprefix('torch.')}",
                )
            )

    def after_experts(self, k: int, n: int, out: torch.Tensor) -> None:
        """The all-reduce after a tensor-parallel MoE block: each rank holds every expert's 1/tp column slice, so
        the down projection's combined [tokens, hidden] output is partial on each rank. The grouped matmul's rows
        are tokens x top-k; the all-reduce moves the combined tokens' rows (priced here, at the down matmul).
        With weight roles (Llama-4: compiler/tp_llama4.py) only the down matmul marked EXPERTS_REDUCE has one."""
        plan = self.tp_plan
        if plan is None or plan.tp == 1:
            return
        if plan.roles is not None and plan.roles.current != EXPERTS_REDUCE:
            return  # the other MoE families place their collectives by shape (no roles)
        tokens = -(-int(out.shape[0]) // max(1, plan.moe_top_k))
        self.after_linear(k, n, torch.empty((tokens, int(out.shape[1])), dtype=out.dtype, device="meta"))

    def after_expert_bmm(self, k: int, n: int, out: torch.Tensor) -> None:
        """The collective after a batched matmul over a tensor-parallel weight: a compiled rank of Llama-4
        (compiler/tp_llama4.py), whose routed experts run as transformers' bmm's over every expert's 1/tp slice,
        all-reduces the product. Nothing for a bmm that reads no such weight."""
        roles = getattr(self.tp_plan, "roles", None)
        if roles is not None and roles.current is not None:
            self.after_linear(k, n, out)

    def output_used(self, index: int) -> bool:
        return self.used_outputs is None or index in self.used_outputs

    # -- conversions -----------------------------------------------------------------------------------
    def _kernel_arg(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if not self.functional:
                return TensorSpec(tuple(x.shape), numpy_dtype(x.dtype))
            numpy_dtype(x.dtype)  # a dtype the chip has, else Unsupported
            if not x.is_contiguous() and is_constant(x):
                return _constant_layout(x)
            return torch_to_numpy(x.contiguous())
        if isinstance(x, list | tuple):
            return type(x)(self._kernel_arg(v) for v in x)
        return x

    def _from_kernel(self, out: Any) -> Any:
        if isinstance(out, TensorSpec):
            return torch.empty(out.shape, dtype=torch_dtype(out.dtype), device="meta")
        if isinstance(out, np.ndarray):
            return numpy_to_torch(out)
        if isinstance(out, list | tuple):
            return type(out)(self._from_kernel(v) for v in out)
        return out

    # -- what lowerings call ----------------------------------------------------------------------------
    def materialize(self, *tensors: Any) -> None:
        """Charge a copy for each non-contiguous activation a kernel must read in its natural layout."""
        for t in tensors:
            movable = isinstance(t, torch.Tensor) and not t.is_contiguous() and not is_constant(t)
            if movable and not self._transpose_on_chip(t):
                self.move(t, what="relayout")

    def _transpose_on_chip(self, t: torch.Tensor) -> bool:
        """A view with its last two axes swapped (x.mT of a contiguous x, as in dW = dY^T X) is laid out by the
        library transpose kernel on TensorE when that beats a strided DMA copy, as a compiler would; records it
        and returns True, else False."""
        if t.dim() < 2 or t.dtype not in KERNEL_DTYPES or not t.mT.is_contiguous() or t.numel() == 0:
            return False
        from trnsim import kernels

        src = t.mT.reshape(-1, *t.mT.shape[-2:]) if t.dim() > 3 else t.mT
        n = t.numel() * t.element_size()
        dma_us, _ = move_cost(self.spec, n, _contiguous_run_bytes(t))
        cost = self.cost(kernels.transpose, src)
        if cost.latency_us >= dma_us:
            return False
        self._record_kernel(kernels.transpose, cost, (src,))
        return True

    def kernel(self, kernel: Kernel, *args: Any, free_relayout: bool = False, **kwargs: Any) -> Any:
        """Launch a library kernel; returns its outputs as torch tensors (meta tensors in timing mode).

        free_relayout: the kernel reads its non-contiguous inputs in place (its DMAs take the strides).
        """
        if not self.functional and is_unpriced(self.op):
            shapes = unpriced_outputs(kernel.name, *self._specs(kernel, args, kwargs))
            if shapes is not None:  # the caller drops this op's time: no simulation, nothing recorded
                return self._from_kernel(shapes)
        if not free_relayout:
            self.materialize(*args, *kwargs.values())
        kargs = tuple(self._kernel_arg(a) for a in args)
        kkw = {k: self._kernel_arg(v) for k, v in kwargs.items()}
        kernel, kargs, kkw = format_kernel(kernel, kargs, kkw)  # weight matmuls in an estimate's format
        with _one_blas_thread():
            out, cost = run_kernel(kernel, kargs, kkw, self.spec, functional=self.functional, cache=self.cache)
        self._record_kernel(kernel, cost, args)
        return self._from_kernel(out)

    def cost(self, kernel: Kernel, *args: Any, **kwargs: Any) -> KernelCost:
        """What launching `kernel` on these shapes would cost (shapes only, through the kernel cache; nothing is
        recorded): for lowerings that choose between kernels by the cost model."""

        kargs, kkw = self._specs(kernel, args, kwargs)
        kernel, kargs, kkw = format_kernel(kernel, kargs, kkw)
        _, cost = run_kernel(kernel, kargs, kkw, self.spec, functional=False, cache=self.cache)
        return cost

    @staticmethod
    def _specs(kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict]:
        """The kernel's arguments as shapes alone (TensorSpecs for tensors)."""

        def spec_of(a: Any) -> Any:
            return TensorSpec(tuple(a.shape), numpy_dtype(a.dtype)) if isinstance(a, torch.Tensor) else a

        return retype_operands(kernel, tuple(spec_of(a) for a in args)), {k: spec_of(v) for k, v in kwargs.items()}

    def _record_kernel(self, kernel: Kernel, cost: KernelCost, args: tuple[Any, ...]) -> None:
        shapes = ", ".join(
            f"{list(a.shape)}:{str(a.dtype).removeprefix('torch.')}" for a in args if isinstance(a, torch.Tensor)
        )
        self.records.append(
            OpRecord(
                node=self.node,
                op=self.op,
                kind="kernel",
                kernel=kernel.name,
                device_us=cost.latency_us,
                flops=cost.flops,
                hbm_bytes=cost.hbm_bytes,
                engine_busy_us=dict(cost.engine_busy_us),
                source=self.source,
                shapes=shapes,
            )
        )

    def move(self, t: torch.Tensor, what: str = "copy", nbytes: int | None = None) -> None:
        """Charge an HBM->HBM copy of `t` (read and write) through the core's DMA queues."""
        n = int(nbytes if nbytes is not None else t.numel() * t.element_size())
        run = _contiguous_run_bytes(t)
        us, busy = move_cost(self.spec, n, run)
        self.records.append(
            OpRecord(
                node=self.node,
                op=self.op,
                kind="move",
                kernel=f"dma_{what}",
                device_us=us,
                hbm_bytes=2 * n,
                engine_busy_us=busy,
                source=self.source,
                shapes=f"{list(t.shape)}:{str(t.dtype).removeprefix('torch.')}",
            )
        )

    def host(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run `fn` on the host CPU (fallback), timing it; recorded as host time, not device time."""
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.records.append(
            OpRecord(
                node=self.node,
                op=self.op,
                kind="host",
                host_us=(time.perf_counter() - start) * 1e6 if self.functional else 0.0,
                source=self.source,
            )
        )
        return out


def _contiguous_run_bytes(t: torch.Tensor) -> int:
    """Bytes per contiguous run when reading `t` as laid out (the DMA descriptor efficiency depends on it)."""
    run = t.element_size()
    expected = 1
    for size, stride in reversed(list(zip(t.shape, t.stride()))):
        if size == 1:
            continue
        if stride != expected:
            break
        run *= size
        expected *= size
    return run

"""Ops whose device time the caller drops: in a timing run their kernels are not simulated.

Serving's dense part (serve/step_components.py `dense_s`) estimates the rank model and leaves the attention op
out of the sum (attention is priced per step from the attention kernels instead), yet the estimate used to
simulate that flash-attention kernel in full: at 4096-8192 packed tokens of Llama-3.1-8B it was the largest
kernel of the estimate, quadratic in the tokens. Within `unpriced_ops({op, ...})` a timing run gives these ops'
kernel launches their outputs from the kernel's shape rule below and records nothing for them; a kernel without
a rule (or arguments the rule does not recognise) is simulated as before. Functional runs are never affected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from trnsim.errors import TrnsimError
from trnsim.nki.kernel import TensorSpec

_UNPRICED: ContextVar[frozenset[str]] = ContextVar("trnsim_unpriced_ops", default=frozenset())


@contextlib.contextmanager
def unpriced_ops(ops: Iterable[str]) -> Iterator[None]:
    """Within the block, timing runs do not simulate the kernels of these ops (ATen overload names, e.g.
    "aten.scaled_dot_product_attention.default"), for callers that drop those ops' time from the profile."""
    token = _UNPRICED.set(_UNPRICED.get() | frozenset(ops))
    try:
        yield
    finally:
        _UNPRICED.reset(token)


def is_unpriced(op: str) -> bool:
    return op in _UNPRICED.get()


def _flash_attention(args: tuple[Any, ...], kwargs: dict[str, Any]) -> TensorSpec | None:
    """flash_attention(q, k, v, ...) writes an output of q's shape and dtype (kernels/attention.py)."""
    q, k, v = (list(args) + [kwargs.get(n) for n in ("q", "k", "v")[len(args) :]])[:3]
    if not all(isinstance(t, TensorSpec) and len(t.shape) == 4 for t in (q, k, v)):
        return None
    assert isinstance(q, TensorSpec) and isinstance(k, TensorSpec) and isinstance(v, TensorSpec)
    batch, heads, _, d = q.shape
    kv_heads = k.shape[1]
    consistent = (
        kv_heads >= 1
        and heads % kv_heads == 0
        and tuple(k.shape) == tuple(v.shape)
        and k.shape[0] == batch
        and k.shape[3] == d
        and q.dtype == k.dtype == v.dtype
    )
    return TensorSpec(tuple(q.shape), q.dtype) if consistent else None


def _batched_matmul(args: tuple[Any, ...], kwargs: dict[str, Any]) -> TensorSpec | None:
    """batched_matmul(a [B, M, K], b [B, K, N], out_dtype) writes [B, M, N] (kernels/matmul.py _result_dtype)."""
    from trnsim.compiler.loop_extrapolation import out_dtype_of

    a, b = (list(args) + [kwargs.get(n) for n in ("a", "b")[len(args) :]])[:2]
    if not (isinstance(a, TensorSpec) and isinstance(b, TensorSpec) and len(a.shape) == 3 and len(b.shape) == 3):
        return None
    out = out_dtype_of(a, kwargs.get("out_dtype", args[2] if len(args) > 2 else None))
    if out is None or b.shape[0] != a.shape[0] or b.shape[1] != a.shape[2]:
        return None
    return TensorSpec((a.shape[0], a.shape[1], b.shape[2]), out)


def _like_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> TensorSpec | None:
    """softmax(x) and fused_chain(x, ops, dtype) write x's shape, in x's dtype or `dtype`
    (kernels/reductions.py, elementwise.py)."""
    from trnsim import dtypes

    x = args[0] if args else kwargs.get("x")
    if not isinstance(x, TensorSpec):
        return None
    dtype = kwargs.get("dtype", args[2] if len(args) > 2 else None)
    try:
        return TensorSpec(tuple(x.shape), x.dtype if dtype is None else dtypes.resolve(dtype))
    except TrnsimError:  # a dtype the kernel would reject: let it run and say so
        return None


# kernel name -> its outputs from the arguments' shapes (None: not recognised, simulate it); attention with an
# explicit mask lowers to batched matmuls around a fused scale + mask and a softmax (lowering/attention.py)
_OUTPUTS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], TensorSpec | None]] = {
    "flash_attention": _flash_attention,
    "batched_matmul": _batched_matmul,
    "softmax": _like_input,
    "fused_chain": _like_input,
}


def unpriced_outputs(kernel_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TensorSpec | None:
    """The outputs of an unpriced launch from its shape rule, or None (the kernel must run)."""
    rule = _OUTPUTS.get(kernel_name)
    return None if rule is None else rule(args, kwargs)

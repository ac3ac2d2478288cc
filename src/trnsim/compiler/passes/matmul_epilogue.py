"""Matmul-epilogue pass: what directly follows a linear (aten.linear, or addmm as nn.Linear / GPT-2's Conv1D
capture) - a bias add, an activation, a residual add, a down-cast - folds into the linear kernel's epilogue,
which applies them while the result leaves PSUM instead of in separate passes over HBM.

Between the linear and its epilogue the pass looks through views that only regroup the leading (token)
dims, and through clones of the contiguous result (inference-mode dropout); the fused linear is then fed
x in the viewed shape, so its result has the shape the rest of the graph expects.
Order of the epilogue, as the kernel applies it: bias, activation, residual, cast.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx

aten = torch.ops.aten
FLOATS = (torch.float32, torch.bfloat16, torch.float16)
_VIEWS = (aten.view.default, aten._unsafe_view.default, aten.reshape.default)
_ADDS = (aten.add.Tensor,)
_SAME_LAYOUT = (torch.contiguous_format, torch.preserve_format)

# ATen activation -> the linear kernel's activation name (kernels.matmul.ACTIVATIONS)
ACTIVATIONS = {
    "aten.relu.default": "relu",
    "aten.silu.default": "silu",
    "aten.sigmoid.default": "sigmoid",
    "aten.tanh.default": "tanh",
}
_TORCH_ACTIVATIONS = {
    "relu": torch.relu,
    "silu": torch.nn.functional.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "gelu": torch.nn.functional.gelu,
    "gelu_tanh": lambda y: torch.nn.functional.gelu(y, approximate="tanh"),
}


def linear_epilogue(
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    residual: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """The fused node's meaning (host fallback and shapes): act(x @ w.T + bias) + residual, cast to out_dtype."""
    y = torch.nn.functional.linear(x, w, bias)
    if activation is not None:
        y = _TORCH_ACTIVATIONS[activation](y)
    if residual is not None:
        y = y + residual
    return y.to(out_dtype)


def _is(node: Any, *targets: Any) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target in targets


def _val(node: Any) -> Any:
    return node.meta.get("val") if isinstance(node, torch.fx.Node) else None


def _activation(node: torch.fx.Node) -> str | None:
    name = ACTIVATIONS.get(str(node.target))
    if name is not None:
        return name
    if node.target is aten.gelu.default:
        approximate = node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none")
        return {"none": "gelu", "tanh": "gelu_tanh"}.get(str(approximate))
    return None


class _Epilogue:
    """What has been folded so far into the linear at `start`."""

    def __init__(self, start: torch.fx.Node, x: Any, w: Any, bias: Any, transposed: bool) -> None:
        self.start = start
        self.x, self.w, self.bias, self.transposed = x, w, bias, transposed
        self.activation: str | None = None
        self.residual: Any = None
        self.out_dtype: torch.dtype = _val(start).dtype
        self.end = start
        self.shape = tuple(_val(start).shape)
        self.folded = 0  # epilogue ops absorbed (views and clones do not count)

    @property
    def dtype(self) -> torch.dtype:
        return _val(self.start).dtype

    def absorb(self, user: torch.fx.Node) -> bool:
        """Take `user` (the sole user of the current end) into the epilogue if the kernel can do it."""
        val = _val(user)
        if not isinstance(val, torch.Tensor):
            return False
        n = self.shape[-1]
        if _is(user, *_VIEWS) and val.shape[-1] == n and val.numel() == _val(self.end).numel():
            if self.out_dtype != self.dtype or self.residual is not None:
                return False  # a residual already taken has the old shape: the view stays after the kernel
            self.shape = tuple(val.shape)
        elif (
            _is(user, aten.clone.default)
            and _val(self.end).is_contiguous()
            and user.kwargs.get("memory_format", torch.contiguous_format) in _SAME_LAYOUT
        ):
            pass  # a copy of a contiguous value is the same value: the fused kernel writes it once
        elif self.residual is None and self.out_dtype == self.dtype and _activation(user) is not None:
            if self.activation is not None or user.args[0] is not self.end:
                return False
            self.activation = _activation(user)
            self.folded += 1
        elif _is(user, *_ADDS) and len(user.args) == 2 and user.kwargs.get("alpha", 1) == 1:
            if self.residual is not None or self.out_dtype != self.dtype or val.dtype != self.dtype:
                return False
            other = user.args[1] if user.args[0] is self.end else user.args[0]
            if other is self.end or not self._add_operand(other):
                return False
            self.folded += 1
        elif _is(user, aten._to_copy.default) and set(user.kwargs) <= {"dtype"} and val.dtype in FLOATS:
            if self.out_dtype != self.dtype or val.dtype.itemsize > self.dtype.itemsize:
                return False  # an up-cast would skip the rounding eager does first: leave it
            self.out_dtype = val.dtype
            self.folded += 1
        else:
            return False
        self.end = user
        return True

    def _add_operand(self, other: Any) -> bool:
        """A bias (per output feature, before any activation) or a residual of the output's shape."""
        ov = _val(other)
        if not isinstance(ov, torch.Tensor) or ov.dtype != self.dtype:
            return False
        if tuple(ov.shape) == self.shape:
            self.residual = other
            return True
        if tuple(ov.shape) == (self.shape[-1],) and self.bias is None and self.activation is None:
            self.bias = other
            return True
        return False


def _begin(node: torch.fx.Node) -> _Epilogue | None:
    val = _val(node)
    if not isinstance(val, torch.Tensor) or val.dtype not in FLOATS:
        return None
    if _is(node, aten.linear.default):
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        return _Epilogue(node, node.args[0], node.args[1], bias, transposed=False)
    if _is(node, aten.addmm.default) and node.kwargs.get("beta", 1) == 1 and node.kwargs.get("alpha", 1) == 1:
        bias, x, w = node.args[:3]
        bv = _val(bias)
        if isinstance(bv, torch.Tensor) and bv.dim() == 1:
            return _Epilogue(node, x, w, bias, transposed=True)
    return None


def fuse_matmul_epilogues(gm: torch.fx.GraphModule) -> int:
    changed = 0
    for node in list(gm.graph.nodes):
        if getattr(node, "_erased", False):
            continue
        epi = _begin(node)
        if epi is None:
            continue
        while len(epi.end.users) == 1 and epi.absorb(next(iter(epi.end.users))):
            pass
        # Trailing views / clones are left for the graph: they cost nothing once the epilogue is fused.
        if epi.folded == 0 or not _shapes_agree(epi):
            continue
        _replace(gm, epi)
        changed += 1
    gm.graph.eliminate_dead_code()
    return changed


def _shapes_agree(epi: _Epilogue) -> bool:
    """Whether linear_epilogue on these operands computes a tensor of the fused region's shape (and dtype).

    Checked on the nodes' recorded values before rewriting, so a pattern the walk misjudged is left unfused
    (eager's ops, run as they are) rather than fused into a node that fails or broadcasts differently.
    """
    x, w, bias, residual, end = (_val(n) for n in (epi.x, epi.w, epi.bias, epi.residual, epi.end))
    if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or w.dim() != 2:
        return False
    n_out, k = (w.shape[1], w.shape[0]) if epi.transposed else (w.shape[0], w.shape[1])
    lead = epi.shape[:-1]
    if x.shape[-1] != k or epi.shape[-1] != n_out or x.numel() // max(k, 1) != _numel(lead):
        return False
    if epi.bias is not None and (not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (n_out,)):
        return False
    if epi.residual is not None and (not isinstance(residual, torch.Tensor) or tuple(residual.shape) != epi.shape):
        return False
    return isinstance(end, torch.Tensor) and tuple(end.shape) == epi.shape and end.dtype == epi.out_dtype


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _replace(gm: torch.fx.GraphModule, epi: _Epilogue) -> None:
    end = epi.end
    k = int(_val(epi.x).shape[-1])
    with gm.graph.inserting_before(end):
        w = gm.graph.call_function(aten.t.default, (epi.w,)) if epi.transposed else epi.w
        x = epi.x
        if tuple(_val(x).shape[:-1]) != epi.shape[:-1]:
            x = gm.graph.call_function(aten.reshape.default, (x, [*epi.shape[:-1], k]))
        fused = gm.graph.call_function(linear_epilogue, (x, w, epi.bias, epi.activation, epi.residual, epi.out_dtype))
    fused.meta = dict(end.meta)
    for helper in (w, x):  # layer folding counts nodes by their module stack: the helpers keep end's
        if helper is not epi.w and helper is not epi.x:
            helper.meta = {k: v for k, v in end.meta.items() if k != "val"}
    end.replace_all_uses_with(fused)

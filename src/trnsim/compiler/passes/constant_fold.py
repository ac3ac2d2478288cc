"""Constant folding: ops that depend on no input or parameter (position ids, causal masks built from
arange/compare, ...) are evaluated once at compile time on the host and become constants of the graph.

Shapes are static after capture, so such subgraphs are the same on every call; folding them keeps them off
both the chip and the host-fallback list. A buffer the graph updates in place (a step counter's `add_`,
BatchNorm's running statistics) is state, not a constant: it and in-place ops are never evaluated here, so
compiling never changes the model and every call updates it once, as eager does.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx

MAX_FOLDED_ELEMENTS = 1 << 24


def _cpu_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: (torch.device("cpu") if k == "device" else v) for k, v in kwargs.items()}


def _foldable_target(node: torch.fx.Node) -> bool:
    target = node.target
    if target is operator.getitem:
        return True
    if not isinstance(target, torch._ops.OpOverload):
        return False
    if target._schema.is_mutable:  # copy_, add_, ...: an update, to run on every call
        return False
    return torch.Tag.nondeterministic_seeded not in target.tags and "_assert" not in target.name()


def _mutated_nodes(gm: torch.fx.GraphModule) -> set[torch.fx.Node]:
    """Nodes whose tensor some op of the graph writes in place (the `self` of `copy_`, `add_`, ...)."""
    mutated: set[torch.fx.Node] = set()
    for node in gm.graph.nodes:
        target = node.target
        if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
            continue
        for arg, value in zip(target._schema.arguments, node.args):
            if arg.alias_info is not None and arg.alias_info.is_write and isinstance(value, torch.fx.Node):
                mutated.add(value)
    return mutated


def _attribute(gm: torch.fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part, None)
    return obj


def constant_fold(gm: torch.fx.GraphModule) -> int:
    """Fold constant subgraphs into tensor attributes of `gm`; returns how many nodes were replaced."""
    values: dict[torch.fx.Node, Any] = {}
    folded = 0
    mutated = _mutated_nodes(gm)
    for node in gm.graph.nodes:  # small host buffers (position ids, token types) are constants too
        if node.op == "get_attr" and node not in mutated:
            value = _attribute(gm, str(node.target))
            if (
                isinstance(value, torch.Tensor)
                and not isinstance(value, torch.nn.Parameter)
                and value.device.type == "cpu"
                and value.numel() <= MAX_FOLDED_ELEMENTS
            ):
                values[node] = value
    buffers = set(values)
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or not _foldable_target(node):
            continue
        if any(inp not in values for inp in node.all_input_nodes):
            continue
        args = torch.fx.node.map_arg(node.args, lambda n: values[n])
        try:
            value = node.target(*args, **_cpu_kwargs(dict(torch.fx.node.map_arg(node.kwargs, lambda n: values[n]))))
        except Exception:  # not evaluable on the host without inputs: leave it in the graph
            continue
        if isinstance(value, torch.Tensor) and (value.device.type != "cpu" or value.numel() > MAX_FOLDED_ELEMENTS):
            continue
        values[node] = value
    for node, value in values.items():
        if node in buffers or not isinstance(value, torch.Tensor) or not any(u not in values for u in node.users):
            continue  # only the frontier of a folded region needs materialising
        name = f"_trnsim_const_{node.name}"
        gm.register_buffer(name, value.clone() if value._base is not None else value, persistent=False)
        with gm.graph.inserting_before(node):
            attr = gm.graph.get_attr(name)
        attr.meta = dict(node.meta)
        node.replace_all_uses_with(attr)
        folded += 1
    gm.graph.eliminate_dead_code()
    return folded

"""Python floats that Dynamo turned into 0-d tensor inputs, put back as the numbers they were.

Once a graph recompiles with dynamic shapes, Dynamo also stops specialising float attributes (such as an
attention module's `scaling`) and passes each as a 0-d tensor that the graph reads with `.item()`. torch.export
cannot capture `.item()` (its value is data-dependent), and the simulated chip runs static graphs anyway, so
the graph is specialised to each call's values: every `.item()` of a 0-d input becomes a constant, and the
caller recaptures when one of those values changes.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


def scalar_item_inputs(gm: torch.fx.GraphModule, args: list[Any]) -> list[int]:
    """Indices of the graph's 0-d tensor inputs that the graph reads with `.item()`."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    found = []
    for i, (node, arg) in enumerate(zip(placeholders, args)):
        if isinstance(arg, torch.Tensor) and arg.dim() == 0 and _item_users(node):
            found.append(i)
    return found


def inline_scalar_items(gm: torch.fx.GraphModule, args: list[Any], indices: list[int]) -> torch.fx.GraphModule:
    """A copy of `gm` in which `.item()` of the inputs at `indices` is the Python number those inputs hold."""
    if not indices:
        return gm
    out = copy.deepcopy(gm)
    placeholders = [n for n in out.graph.nodes if n.op == "placeholder"]
    for i in indices:
        value = args[i].item()
        for user in _item_users(placeholders[i]):
            user.replace_all_uses_with(value)
            out.graph.erase_node(user)
    out.recompile()
    return out


def _item_users(node: torch.fx.Node) -> list[torch.fx.Node]:
    return [u for u in node.users if u.op == "call_method" and u.target == "item"]

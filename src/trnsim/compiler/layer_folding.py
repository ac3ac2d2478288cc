"""Layer folding for estimates: a stack of identical layers (an nn.ModuleList whose children have the same
class and parameter shapes - the decoder layers of an LLM) is captured with its first layer only, and the
cost of that layer's ops is counted once per layer. A 126-layer model then costs one layer's capture and
simulation; the kernel cache would make the repeats cheap anyway, but capturing them would not be.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def _signature(m: torch.nn.Module) -> tuple[object, ...]:
    return (type(m), tuple((n, tuple(p.shape), p.dtype) for n, p in m.named_parameters()))


def repeated_stacks(model: torch.nn.Module) -> dict[str, int]:
    """Qualified names of ModuleLists of >= 2 identical children -> their length (outermost lists only)."""
    found: dict[str, int] = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.ModuleList) or len(mod) < 2:
            continue
        if any(name.startswith(f"{outer}.") for outer in found):
            continue
        first = _signature(mod[0])
        if all(_signature(m) == first for m in mod):
            found[name] = len(mod)
    return found


@contextlib.contextmanager
def folded(model: torch.nn.Module) -> Iterator[dict[str, int]]:
    """Temporarily cut each repeated stack to its first layer; yields {stack name: layer count}."""
    stacks = repeated_stacks(model)
    saved: list[tuple[torch.nn.Module, str, torch.nn.ModuleList]] = []
    try:
        for name, _ in stacks.items():
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            original = getattr(parent, attr)
            saved.append((parent, attr, original))
            setattr(parent, attr, torch.nn.ModuleList([original[0]]))
        yield stacks
    finally:
        for parent, attr, original in saved:
            setattr(parent, attr, original)


def node_multipliers(gm: torch.fx.GraphModule, stacks: dict[str, int]) -> dict[str, int]:
    """Graph node name -> how many layers it stands for (nodes inside a folded stack's first layer)."""
    out: dict[str, int] = {}
    if not stacks:
        return out
    prefixes = {f"{name}.0": n for name, n in stacks.items()}
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        paths = [path for path, _cls in stack.values()]
        for path in paths:
            clean = path.removeprefix("L['self'].").replace("L__self___", "")
            for prefix, n in prefixes.items():
                if clean == prefix or clean.startswith(f"{prefix}."):
                    out[node.name] = n
                    break
            if node.name in out:
                break
    return out

"""Layer folding for estimates: a stack of layers (an nn.ModuleList - the decoder layers of an LLM) is captured
with one representative per distinct kind of layer, and the cost of each representative's ops is counted once
per layer of its kind. A 126-layer model then costs one layer's capture and simulation; DeepSeek-V3 (3 dense
layers, then 58 MoE layers) costs two; Llama-4 Maverick (dense and MoE layers alternating, every fourth without
RoPE) three. The kernel cache would make the repeats cheap anyway, but capturing them would not be.

Two layers are of one kind when their modules have the same classes, parameter and buffer shapes and dtypes,
and the same scalar settings (sliding window, use_rope, top_k, ...); only the layer's own index may differ. A
stack whose layers are all of one kind is folded wherever it is; a mixed stack only when it is the model's
layer stack (as long as its config's num_hidden_layers), so that the config's per-layer lists (layer_types,
which picks each layer's attention mask) can be cut to the representatives too. Expert lists are never
folded: the router indexes them, every expert must stay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

# per-layer positions, the one setting layers of one kind differ in (the KV cache slot, logging)
_POSITION_ATTRS = frozenset({"layer_idx", "layer_id", "layer_index", "layer_number", "layer_num"})
_SCALARS = (bool, int, float, str, type(None))


def _settings(m: torch.nn.Module) -> tuple[tuple[str, object], ...]:
    """The scalar attributes of one module (flags, sizes, epsilons): what makes two same-shaped layers differ."""
    out = []
    for key, value in vars(m).items():
        if key.startswith("_") or key == "training" or key in _POSITION_ATTRS:
            continue
        if isinstance(value, _SCALARS) or (isinstance(value, tuple) and all(isinstance(v, _SCALARS) for v in value)):
            out.append((key, value))
    return tuple(sorted(out, key=lambda kv: kv[0]))


def layer_signature(m: torch.nn.Module) -> tuple[object, ...]:
    """Equal for two layers whose forward runs the same ops on the same shapes."""
    modules = tuple((name, type(sub).__qualname__, _settings(sub)) for name, sub in m.named_modules())
    params = tuple((n, tuple(p.shape), p.dtype) for n, p in m.named_parameters())
    buffers = tuple((n, tuple(b.shape), b.dtype) for n, b in m.named_buffers())
    return (type(m), modules, params, buffers)


@dataclass(frozen=True)
class Stack:
    """A folded ModuleList: which of its layers stand for the others, and how many each stands for."""

    name: str  # qualified name of the ModuleList
    length: int  # layers in the model
    kept: tuple[int, ...]  # indices of the representatives, in model order
    counts: tuple[int, ...]  # layers each representative stands for (sum = length)


def _layer_configs(model: torch.nn.Module, length: int) -> list[Any]:
    """The model's configs (a composite model has several) whose layer count is `length`."""
    seen: dict[int, Any] = {}
    for mod in model.modules():
        cfg = getattr(mod, "config", None)
        if cfg is not None and getattr(cfg, "num_hidden_layers", None) == length:
            seen.setdefault(id(cfg), cfg)
    return list(seen.values())


def _is_expert_list(name: str) -> bool:
    return "expert" in name.rpartition(".")[2].lower()


def repeated_stacks(model: torch.nn.Module) -> list[Stack]:
    """The ModuleLists folding can shorten (outermost lists only), with their representatives."""
    found: list[Stack] = []
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.ModuleList) or len(mod) < 2 or _is_expert_list(name):
            continue
        if any(name.startswith(f"{outer.name}.") for outer in found):
            continue
        kinds: dict[tuple[object, ...], list[int]] = {}
        for i, layer in enumerate(mod):
            kinds.setdefault(layer_signature(layer), []).append(i)
        if len(kinds) == len(mod):
            continue  # no two layers alike: nothing to fold
        if len(kinds) > 1 and not _layer_configs(model, len(mod)):
            continue  # a mixed list that is not the model's layer stack: its per-layer settings are unknown
        groups = sorted(kinds.values())
        found.append(Stack(name, len(mod), tuple(g[0] for g in groups), tuple(len(g) for g in groups)))
    return found


def _per_layer_lists(cfg: Any, length: int) -> list[str]:
    """Config fields that hold one entry per layer (layer_types, no_rope_layers, ...)."""
    names = []
    for key, value in vars(cfg).items():
        if not key.startswith("_") and isinstance(value, list | tuple) and len(value) == length:
            names.append(key)
    return names


@contextlib.contextmanager
def folded(model: torch.nn.Module) -> Iterator[dict[str, int]]:
    """Temporarily cut each layer stack to its representatives (and the per-layer lists of the model's config
    to theirs); yields {module path of a representative in the folded model: layers it stands for}."""
    stacks = repeated_stacks(model)
    saved_lists: list[tuple[torch.nn.Module, str, torch.nn.ModuleList]] = []
    saved_fields: list[tuple[Any, str, Any]] = []
    paths: dict[str, int] = {}
    try:
        for stack in stacks:
            parent_name, _, attr = stack.name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            original = getattr(parent, attr)
            saved_lists.append((parent, attr, original))
            setattr(parent, attr, torch.nn.ModuleList([original[i] for i in stack.kept]))
            for position, count in enumerate(stack.counts):
                paths[f"{stack.name}.{position}"] = count
            for cfg in _layer_configs(model, stack.length) if len(stack.kept) > 1 else []:
                for key in _per_layer_lists(cfg, stack.length):
                    value = getattr(cfg, key)
                    saved_fields.append((cfg, key, value))
                    setattr(cfg, key, type(value)(value[i] for i in stack.kept))
        yield paths
    finally:
        for cfg, key, value in reversed(saved_fields):
            setattr(cfg, key, value)
        for parent, attr, original in saved_lists:
            setattr(parent, attr, original)


def node_multipliers(gm: torch.fx.GraphModule, stacks: dict[str, int]) -> dict[str, int]:
    """Graph node name -> how many layers it stands for (nodes inside a folded stack's representatives)."""
    out: dict[str, int] = {}
    if not stacks:
        return out
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        paths = [path for path, _cls in stack.values()]
        for path in paths:
            clean = path.removeprefix("L['self'].").replace("L__self___", "")
            for prefix, n in stacks.items():
                if clean == prefix or clean.startswith(f"{prefix}."):
                    out[node.name] = n
                    break
            if node.name in out:
                break
    return out

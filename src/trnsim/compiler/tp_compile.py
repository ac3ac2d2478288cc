"""Compiled models with tp > 1: `trnsim.compile(model, inputs, tp=N)` and
`torch.compile(model, backend="trnsim", options={"tp": N})`.

The model is split into N rank copies (tp_families.py, the rule trnsim.estimate prices), captured once with
torch.export, the graph re-bound to each rank's weights and lowered like any compiled model, and the N
graphs run together on the simulated instance with real collectives between them (tp_runner.py). The
result is the model's output with the logits gathered from the ranks; `trnsim.last_profile()` is rank 0's
GraphProfile with `tp`, `rank_device_us` and the collectives' time (`collective_us`).

torch.compile hands the backend Dynamo's graph of the model's forward, not the model; for tp > 1 the backend
takes the model and the call's arguments from the frame Dynamo is compiling (the Hugging Face model whose
parameters the graph reads) and captures the rank copies itself. Its graph must return the logits only, so
call the model with use_cache=False (a KV cache per rank holds only that rank's heads).
"""

from __future__ import annotations

import copy as copymod
import inspect
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

from trnsim.compiler.capture import Captured, capture
from trnsim.compiler.options import CompileOptions
from trnsim.compiler.passes import run_passes
from trnsim.compiler.tp_families import shard_all
from trnsim.compiler.tp_runner import RankRunner, TPRunner, rank_plan
from trnsim.errors import CompileError, SpecError
from trnsim.hw.presets import get_spec
from trnsim.runtime.graph_profile import GraphProfile
from trnsim.runtime.last_profile import set_last_profile
from trnsim.sim.collectives import place


class TPExecutable:
    """A model compiled for `tp` ranks; call it like the model. `.profile` is the latest call's profile."""

    def __init__(
        self, model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], opts: CompileOptions
    ) -> None:
        spec = get_spec(opts.target)
        try:
            placement = place(spec, opts.tp, opts.instance)
        except SpecError as err:
            raise CompileError(f"tp={opts.tp} on {spec.name}: {err}") from None
        if kwargs.get("labels") is not None:
            raise CompileError(
                f"tp={opts.tp}: a rank holds one slice of the vocabulary, so the model cannot compute its loss from "
                "labels: call it without labels and compute the loss from the returned logits"
            )
        ranks, roles = shard_all(model, opts.tp)
        self.label = opts.label or type(model).__name__
        self.captured: list[Captured] = []
        runners = []
        # one capture; each rank's copy of its graph gets the rank's own parameters and buffers, then the passes
        # (so what they fold, e.g. BLOOM's per-rank ALiBi rows, comes from that rank's tensors)
        first = capture(ranks[0], args, kwargs)
        for rank_model in ranks:
            gm = _rebind(first.gm, rank_model)
            run_passes(gm)
            captured = Captured(gm, first.in_spec, first.out_spec)
            self.captured.append(captured)
            plan = rank_plan(spec, placement, int(getattr(model.config, "hidden_size", 0) or 0), roles)
            runners.append(
                RankRunner(captured.gm, spec, opts.mode == "functional", opts.strict, self.label, plan, roles)
            )
        instance = placement.instance.name if placement.instance is not None else None
        self.runner = TPRunner(runners, roles, spec, instance)
        self.profile: GraphProfile | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flat = [c.flat_inputs(args, kwargs) for c in self.captured]
        outputs, profile = self.runner.run(flat)
        full = self.runner.gather_logits([list(o) for o in outputs])
        profile.label = self.label
        self.profile = profile
        set_last_profile(profile)
        return self.captured[0].unflatten(full)


def _rebind(gm: torch.fx.GraphModule, rank_model: torch.nn.Module) -> torch.fx.GraphModule:
    """A copy of the captured graph reading `rank_model`'s parameters and buffers. Every rank runs the same
    program on tensors of the same shapes (tp_shard.py keeps whatever differs between ranks in tensors), so
    this is what capturing that rank's copy would give, without tracing it again."""
    with warnings.catch_warnings():  # torch's own notice when copying a graph's pytree specs: not the user's
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
        copy = torch.fx.GraphModule(gm, copymod.deepcopy(gm.graph))
    tensors = [*rank_model.named_parameters(), *rank_model.named_buffers()]
    for name, value in tensors:
        *parents, leaf = name.split(".")
        owner: Any = copy
        for part in parents:
            owner = getattr(owner, part, None)
        old = getattr(owner, leaf, None) if owner is not None else None
        if isinstance(old, torch.Tensor):
            if old.shape != value.shape:
                raise CompileError(
                    f"tp rank copies differ in the shape of {name}: {list(old.shape)} vs {list(value.shape)}"
                )
            _set_attr(copy, parents, leaf, value)
    return copy


def _set_attr(root: torch.nn.Module, parents: list[str], leaf: str, value: torch.Tensor) -> None:
    """Set root.<parents>.<leaf> = value, copying each module on the way so rank 0's keep their weights."""
    owner = root
    for part in parents:
        child = getattr(owner, part)
        if not getattr(child, "_trnsim_rank_copy", False):
            child = _shallow(child)
            setattr(owner, part, child)
        owner = child
    owner._parameters.pop(leaf, None)
    owner._buffers.pop(leaf, None)
    setattr(owner, leaf, value)


def _shallow(module: torch.nn.Module) -> Any:
    """A copy of `module` whose parameter, buffer and child tables are its own (their tensors shared)."""
    clone: Any = copymod.copy(module)
    clone._parameters = dict(module._parameters)
    clone._buffers = dict(module._buffers)
    clone._modules = dict(module._modules)
    clone._trnsim_rank_copy = True
    return clone


# -- torch.compile(backend="trnsim", options={"tp": N}) ---------------------------------------------------------
_TOKEN = re.compile(r"\['([^']*)'\]|\[(\d+)\]|\.(\w+)")


def _path(source_name: str) -> list[str | int] | None:
    """`L['args'][1]` -> ['args', 1]; None for a source that is not a frame local."""
    if not source_name.startswith("L"):
        return None
    return [int(m[1]) if m[1] else (m[0] or m[2]) for m in _TOKEN.findall(source_name[1:])]


@dataclass(frozen=True)
class _Frame:
    """The function Dynamo is compiling: its locals at entry and how its parameters are laid out."""

    model: torch.nn.Module
    f_locals: dict[str, Any]
    names: tuple[str, ...]  # named parameters, in order
    varargs: str | None  # the *args parameter's name
    varkw: str | None  # the **kwargs parameter's name

    def call(self, loc: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The model's (args, kwargs) from the frame's locals: forward(self, ...) or a wrapper (*args, **kw)
        whose first positional argument is the model."""
        extra = list(loc.get(self.varargs) or ()) if self.varargs else []
        kwargs = dict(loc.get(self.varkw) or {}) if self.varkw else {}
        names = list(self.names)
        if names and loc[names[0]] is self.model:
            names = names[1:]
        elif extra and extra[0] is self.model:
            extra = extra[1:]
        return tuple(extra), {**{n: loc[n] for n in names}, **kwargs}


def _frame(tp: int) -> _Frame:
    from torch._dynamo.symbolic_convert import InstructionTranslator

    tx = InstructionTranslator.current_tx()
    code = getattr(tx, "f_code", None)
    f_locals = dict(getattr(tx, "f_locals", None) or {})
    if code is not None:
        n = code.co_argcount + code.co_kwonlyargcount
        varargs = code.co_varnames[n] if code.co_flags & inspect.CO_VARARGS else None
        varkw = code.co_varnames[n + (varargs is not None)] if code.co_flags & inspect.CO_VARKEYWORDS else None
        names = tuple(code.co_varnames[:n])
        first = f_locals.get(names[0]) if names else (f_locals.get(varargs) or (None,))[0] if varargs else None
        if isinstance(first, torch.nn.Module):
            if getattr(first, "config", None) is None:
                raise CompileError(
                    f"tp={tp} is not supported for {type(first).__name__}: tensor parallelism splits the heads and "
                    "MLP of Hugging Face decoders (a model with .config); use tp=1 for it"
                )
            return _Frame(first, f_locals, names, varargs, varkw)
    raise CompileError(
        'torch.compile(backend="trnsim", options={"tp": N}) shards a Hugging Face model: compile the model '
        "itself (torch.compile(model, ...)), whose forward Dynamo then captures; this graph comes from "
        f"{getattr(code, 'co_name', 'an unknown function')}"
    )


def _put(tree: Any, path: list[str | int], value: Any) -> Any:
    """`tree` with the item at `path` replaced (tuples rebuilt)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, tuple):
        items = list(tree)
        items[int(head)] = _put(items[int(head)], rest, value)
        return tuple(items)
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[head] = _put(copy[head], rest, value)  # type: ignore[index]
    return copy


def tp_backend(gm: torch.fx.GraphModule, opts: CompileOptions, training: bool = False) -> Callable[..., Any]:
    frame = _frame(opts.tp)
    if training:
        raise CompileError(
            f"tp={opts.tp}: tensor-parallel compiled runs are inference only (no gradients); run the model under "
            "torch.no_grad(), or price a tensor-parallel training step with trnsim.estimate(..., training=True, tp=N)"
        )
    outputs = pytree.tree_leaves(gm.graph.output_node().args[0])
    if len(outputs) != 1:
        raise CompileError(
            f"tp={opts.tp}: the compiled forward of {type(frame.model).__name__} returns {len(outputs)} tensors; a "
            "tensor-parallel run returns the logits only: call the model with use_cache=False (or set "
            "model.config.use_cache = False)"
        )
    inputs: list[tuple[int, list[str | int]]] = []  # graph inputs that are the call's (not the model's weights)
    for i, node in enumerate(n for n in gm.graph.nodes if n.op == "placeholder"):
        source = getattr(node.meta.get("grapharg"), "source", None)
        path = _path(source.name) if source is not None else None
        if path is not None and not any(p in ("_modules", "_parameters", "_buffers") for p in path):
            inputs.append((i, path))
    compiled: dict[Any, TPExecutable] = {}

    def run(*gm_args: Any) -> Any:
        loc: Any = frame.f_locals
        for i, path in inputs:
            loc = _put(loc, path, gm_args[i])
        args, kwargs = frame.call(loc)
        key = tuple((tuple(a.shape), a.dtype) for a in gm_args if isinstance(a, torch.Tensor))
        if key not in compiled:
            compiled[key] = TPExecutable(frame.model, args, kwargs, opts)
        out = compiled[key](*args, **kwargs)
        logits = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        return (logits[0],)

    return run

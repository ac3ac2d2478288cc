"""Capture a PyTorch model as an ATen graph: torch.export + run_decompositions with trnsim's table."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch.utils import _pytree as pytree

from trnsim.compiler.decompositions import decomposition_table
from trnsim.errors import CompileError


@dataclass
class Captured:
    gm: torch.fx.GraphModule  # placeholders = flattened user inputs; parameters as get_attr
    in_spec: Any
    out_spec: Any

    def flat_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        flat, spec = pytree.tree_flatten((args, kwargs))
        if spec != self.in_spec:
            raise CompileError(
                f"the compiled model was captured for inputs structured as {self.in_spec}, called with {spec}"
            )
        return flat

    def unflatten(self, flat_outputs: Any) -> Any:
        return pytree.tree_unflatten(list(flat_outputs), self.out_spec)


def capture(model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Captured:
    kwargs = kwargs or {}
    if not isinstance(model, torch.nn.Module):
        raise CompileError(f"expected a torch.nn.Module to compile, got {type(model).__name__}")
    config = getattr(model, "config", None)
    use_cache = getattr(config, "use_cache", None)
    try:
        if use_cache:  # a Hugging Face KV cache object is not a tensor output: capture without it
            config.use_cache = False  # type: ignore[union-attr]
        with warnings.catch_warnings():
            # torch's own deprecation notice, raised inside torch.export when it copies graphs: not the user's
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            ep = torch.export.export(model, tuple(args), kwargs, strict=False)
            ep = ep.run_decompositions(decomposition_table())
    except torch._dynamo.exc.UserError as err:  # data-dependent control flow, dynamic shapes, ...
        raise CompileError(f"torch.export could not capture {type(model).__name__}: {err}") from err
    except Exception as err:
        raise CompileError(
            f"torch.export could not capture {type(model).__name__}: {type(err).__name__}: {err} "
            "(models with data-dependent Python control flow can use torch.compile(model, backend='trnsim'))"
        ) from err
    finally:
        if use_cache:
            config.use_cache = use_cache  # type: ignore[union-attr]
    gm = ep.module()
    return Captured(gm, gm._in_spec, gm._out_spec)

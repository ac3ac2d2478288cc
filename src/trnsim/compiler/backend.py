"""The torch.compile backend: `torch.compile(model, backend="trnsim", options={...})`.

Inference (no gradients needed) captures Dynamo's graph with torch.export so that linear, attention and
norms stay whole; when gradients are needed, AOTAutograd splits the graph into forward and backward ATen
graphs, and both run on the simulated chip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trnsim.compiler.capture import capture
from trnsim.compiler.executor import GraphRunner
from trnsim.compiler.options import CompileOptions, parse_options
from trnsim.compiler.passes import run_passes
from trnsim.hw.presets import get_spec
from trnsim.runtime.last_profile import set_last_profile


def _runner(gm: torch.fx.GraphModule, opts: CompileOptions, label: str) -> GraphRunner:
    run_passes(gm)
    return GraphRunner(
        gm, get_spec(opts.target), functional=opts.mode == "functional", strict=opts.strict, label=label, tp=opts.tp
    )


def _needs_grad(example_inputs: list[Any]) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in example_inputs)


def trnsim_backend(
    gm: torch.fx.GraphModule, example_inputs: list[Any], options: dict[str, Any] | None = None, mode: Any = None
) -> Callable[..., Any]:
    opts = parse_options(options)
    if _needs_grad(example_inputs):
        return _training_backend(gm, example_inputs, opts)
    captured = capture(gm, tuple(example_inputs))
    runner = _runner(captured.gm, opts, opts.label or "forward")

    def run(*args: Any) -> Any:
        out, profile = runner.run(*captured.flat_inputs(args, {}))
        set_last_profile(profile)
        return captured.unflatten(out)

    return run


def _training_backend(gm: torch.fx.GraphModule, example_inputs: list[Any], opts: CompileOptions) -> Callable[..., Any]:
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    from trnsim.compiler.decompositions import decomposition_table

    def compiler(label: str) -> Callable[..., Any]:
        def compile_graph(graph: torch.fx.GraphModule, inputs: list[Any]) -> Any:
            runner = _runner(graph, opts, label)

            def run(*args: Any) -> Any:
                out, profile = runner.run(*args)
                set_last_profile(profile)
                return out

            return make_boxed_func(run)

        return compile_graph

    return aot_autograd(
        fw_compiler=compiler("forward"), bw_compiler=compiler("backward"), decompositions=dict(decomposition_table())
    )(gm, example_inputs)


def register() -> None:
    """Make backend="trnsim" known to torch.compile (also found through the torch_dynamo_backends entry point)."""
    from torch._dynamo import list_backends, register_backend

    if "trnsim" not in list_backends(exclude_tags=()):
        register_backend(compiler_fn=trnsim_backend, name="trnsim")

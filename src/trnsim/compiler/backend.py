"""The torch.compile backend: `torch.compile(model, backend="trnsim", options={...})`.

Inference (no gradients needed) captures Dynamo's graph with torch.export so that linear, attention and
norms stay whole; when gradients are needed, AOTAutograd splits the graph into forward and backward ATen
graphs, and both run on the simulated chip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trnsim.compiler import backend_guard
from trnsim.compiler.capture import capture
from trnsim.compiler.executor import GraphRunner
from trnsim.compiler.options import CompileOptions, parse_options
from trnsim.compiler.passes import run_passes
from trnsim.compiler.scalar_inputs import inline_scalar_items, scalar_item_inputs
from trnsim.compiler.tp_compile import tp_backend
from trnsim.hw.presets import get_spec
from trnsim.runtime.last_profile import set_last_profile


def _runner(gm: torch.fx.GraphModule, opts: CompileOptions, label: str) -> GraphRunner:
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    # AOTAutograd calls its graph compilers under a fake-tensor mode; constants the passes fold must be real.
    with unset_fake_temporarily():
        run_passes(gm)
    return GraphRunner(
        gm, get_spec(opts.target), functional=opts.mode == "functional", strict=opts.strict, label=label, tp=opts.tp
    )


def _needs_grad(example_inputs: list[Any]) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in example_inputs)


def trnsim_backend(
    gm: torch.fx.GraphModule, example_inputs: list[Any], options: dict[str, Any] | None = None, mode: Any = None
) -> Callable[..., Any]:
    backend_guard.install()  # notice Dynamo giving up on a function (recompile limit) instead of missing its work
    opts = parse_options(options)
    if opts.tp > 1:  # N rank copies with real collectives (trnsim.compiler.tp_compile)
        return tp_backend(gm, opts, training=_needs_grad(example_inputs))
    if _needs_grad(example_inputs):
        return _training_backend(gm, example_inputs, opts)
    static = [getattr(t, "_dynamo_static_input_type", None) is not None for t in example_inputs]
    # Dynamo passes symbolic sizes once a shape has changed between calls; the simulated chip, like Neuron,
    # runs static shapes, so such a graph is captured again for each distinct concrete shape it meets.
    compiled: dict[Any, Callable[..., Any]] = {}

    def concrete(args: list[Any]) -> Callable[..., Any]:
        items = scalar_item_inputs(gm, args)
        key = tuple(
            (tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor) else a for a, s in zip(args, static) if not s
        ) + tuple(args[i].item() for i in items)
        if key not in compiled:
            # sizes Dynamo passes as ints are baked in too: the key above already holds their values
            bound = [s or not isinstance(a, torch.Tensor) for a, s in zip(args, static)]
            compiled[key] = _compile_static(inline_scalar_items(gm, args, items), args, bound, opts)
        return compiled[key]

    def run(*args: Any) -> Any:
        return concrete(list(args))(*args)

    if not any(isinstance(t, torch.SymInt) or _symbolic(t) for t in example_inputs):
        concrete(list(example_inputs))  # capture now, so errors surface at compile time
    return run


def _symbolic(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and any(isinstance(d, torch.SymInt) for d in t.shape)


def _compile_static(
    gm: torch.fx.GraphModule, args: list[Any], static: list[bool], opts: CompileOptions
) -> Callable[..., Any]:
    bound = _WithConstants(gm, args, static)
    # Outside Dynamo's tracing context: export would otherwise trace with Dynamo's fake mode and shape env and
    # turn Dynamo's guards on the user's inputs into its own.
    with torch._guards.tracing(None):
        captured = capture(bound, tuple(t for t, s in zip(args, static) if not s))
    runner = _runner(captured.gm, opts, opts.label or "forward")

    def run(*call_args: Any) -> Any:
        dynamic = tuple(a for a, s in zip(call_args, static) if not s)
        out, profile = runner.run(*captured.flat_inputs(dynamic, {}))
        set_last_profile(profile)
        return captured.unflatten(out)

    return run


class _WithConstants(torch.nn.Module):
    """Dynamo's graph with the model's parameters and buffers (its static inputs) held as attributes, so the
    capture sees them as constants (weights laid out at compile time, masks folded) rather than inputs."""

    def __init__(self, gm: torch.fx.GraphModule, example_inputs: list[Any], static: list[bool]) -> None:
        super().__init__()
        self.gm = gm
        self.static = static
        self.names: dict[int, str] = {}
        self.scalars: dict[int, Any] = {}  # Python ints/floats (e.g. sizes of a dynamic-shape graph)
        for i, (t, s) in enumerate(zip(example_inputs, static)):
            if not s:
                continue
            name = f"const{i}"
            if not isinstance(t, torch.Tensor):
                self.scalars[i] = t
                continue
            if isinstance(t, torch.nn.Parameter):
                self.register_parameter(name, t)
            else:
                self.register_buffer(name, t, persistent=False)
            self.names[i] = name

    def forward(self, *dynamic: Any) -> Any:
        it = iter(dynamic)
        full = [
            (self.scalars[i] if i in self.scalars else getattr(self, self.names[i])) if s else next(it)
            for i, s in enumerate(self.static)
        ]
        return self.gm(*full)


def _training_backend(gm: torch.fx.GraphModule, example_inputs: list[Any], opts: CompileOptions) -> Callable[..., Any]:
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

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
        fw_compiler=compiler("forward"), bw_compiler=compiler("backward"), decompositions=training_decompositions()
    )(gm, example_inputs)


# Ops a training graph keeps whole. Attention whose backward reads the forward's saved statistics
# (logsumexp): PyTorch's decomposition of it returns the attention probabilities in that slot (fine for
# inference, wrong gradients in training).
KEEP_WHOLE_FOR_TRAINING = (
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default,
    torch.ops.aten.threshold_backward.default,  # one compare-and-multiply kernel instead of le + where
    torch.ops.aten._log_softmax_backward_data.default,  # one row sum and one fused pass
)


def training_decompositions() -> dict[Any, Any]:
    from trnsim.compiler.decompositions import decomposition_table

    table = dict(decomposition_table())
    for op in KEEP_WHOLE_FOR_TRAINING:
        table.pop(op, None)
    return table


def register() -> None:
    """Make backend="trnsim" known to torch.compile (also found through the torch_dynamo_backends entry point)."""
    from torch._dynamo import list_backends, register_backend

    if "trnsim" not in list_backends(exclude_tags=()):
        register_backend(compiler_fn=trnsim_backend, name="trnsim")

"""trnsim.compile: ahead-of-time compilation of a PyTorch model to the simulated chip."""

from __future__ import annotations

from typing import Any

import torch

from trnsim.compiler.capture import capture
from trnsim.compiler.executable import Executable
from trnsim.compiler.executor import GraphRunner
from trnsim.compiler.options import parse_options
from trnsim.compiler.passes import run_passes
from trnsim.compiler.tp_compile import TPExecutable
from trnsim.hw.presets import get_spec


def compile(
    model: torch.nn.Module,
    example_inputs: tuple[Any, ...] | list[Any],
    example_kwargs: dict[str, Any] | None = None,
    *,
    target: str | None = None,
    mode: str | None = None,
    strict: bool | None = None,
    tp: int | None = None,
    instance: str | None = None,
    options: dict[str, Any] | None = None,
) -> Executable | TPExecutable:
    """Capture `model` with torch.export, lower it to library kernels and return an Executable.

    Calling the Executable runs the model on the simulated chip (values in mode='functional', shapes only in
    mode='timing'); its `.profile` is the GraphProfile of the latest call. tp > 1 splits a Hugging Face decoder
    over tp simulated ranks that exchange values through collectives (a TPExecutable, called the same way).
    """
    opts = parse_options(options, target=target, mode=mode, strict=strict, tp=tp, instance=instance)
    if opts.tp > 1:  # N rank copies run together with real collectives (trnsim.compiler.tp_compile)
        return TPExecutable(model, tuple(example_inputs), dict(example_kwargs or {}), opts)
    captured = capture(model, tuple(example_inputs), example_kwargs)
    run_passes(captured.gm)
    runner = GraphRunner(
        captured.gm,
        get_spec(opts.target),
        functional=opts.mode == "functional",
        strict=opts.strict,
        label=opts.label or type(model).__name__,
        tp=opts.tp,
    )
    return Executable(captured, runner)

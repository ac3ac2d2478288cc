"""`trnsim kernel FILE:FUNC --arg 256x512:bfloat16 ...`: run a kernel on random inputs, print its profile."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console

from trnsim import dtypes
from trnsim.errors import TrnsimError, UsageError

console = Console()


class CliError(TrnsimError):
    """A command-line argument is malformed."""


def parse_arg(text: str) -> tuple[tuple[int, ...], Any] | float:
    """'256x512:bfloat16' -> ((256, 512), bfloat16); '128x64' -> float32; a bare number -> that number."""
    shape_text, _, dtype_text = text.partition(":")
    if "x" not in shape_text and not dtype_text:
        try:
            return float(shape_text) if "." in shape_text else int(shape_text)
        except ValueError:
            pass
    try:
        shape = tuple(int(s) for s in shape_text.lower().split("x"))
    except ValueError:
        raise CliError(f"--arg {text!r}: expected SHAPE[:DTYPE] like 256x512:bfloat16, or a number") from None
    if any(s <= 0 for s in shape):
        raise CliError(f"--arg {text!r}: dims must be positive")
    return shape, dtypes.resolve(dtype_text or "float32")


def load_kernel(ref: str) -> Any:
    """Import FILE and return FUNC from 'FILE:FUNC' (public kernels may `import nki` or `neuronxcc.nki`)."""
    from trnsim.nki import install_aliases

    path_text, _, func = ref.rpartition(":")
    if not path_text or not func:
        raise CliError(f"kernel {ref!r}: expected FILE:FUNC, e.g. my_kernels.py:softmax_kernel")
    path = Path(path_text)
    if not path.is_file():
        raise CliError(f"kernel file {path} not found")
    install_aliases()
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    if not hasattr(module, func):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise CliError(f"{path} has no function {func!r}; it defines: {', '.join(names) or 'nothing callable'}")
    if not callable(getattr(module, func)):
        raise CliError(f"{path}:{func} is not a kernel function (it is {type(getattr(module, func)).__name__})")
    return getattr(module, func)


def random_input(shape: tuple[int, ...], dtype: Any, rng: np.random.Generator) -> np.ndarray:
    if dtypes.is_float(dtype):
        return rng.standard_normal(shape).astype(np.float32).astype(dtype)
    return rng.integers(0, 16, size=shape).astype(dtype)


def kernel_command(
    ref: str = typer.Argument(..., help="FILE:FUNC of the kernel"),
    arg: list[str] = typer.Option([], "--arg", help="an argument: SHAPE[:DTYPE] (random data) or a number"),
    target: str = typer.Option("trn2", help="hardware preset or spec file"),
    mode: str = typer.Option("functional", help="functional (compute values) or timing (shapes only)"),
    grid: str = typer.Option("", help="SPMD launch grid, e.g. 4 or 2x2"),
    trace: Path | None = typer.Option(None, help="write a Perfetto/Chrome trace JSON here"),
    report: Path | None = typer.Option(None, "--report", help="write a self-contained HTML report here"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable profile"),
) -> None:
    """Run a kernel on random inputs and print its profile."""
    import trnsim.nki as nki

    fn = load_kernel(ref)
    kernel = fn if isinstance(fn, nki.Kernel) else nki.jit(fn)
    if grid:
        try:
            kernel = kernel[tuple(int(g) for g in grid.lower().split("x"))]
        except ValueError:
            raise CliError(f"--grid {grid!r}: expected integers like 4 or 2x2") from None
    if mode not in ("functional", "timing"):
        raise UsageError(f"--mode must be functional or timing, got {mode!r}")
    rng = np.random.default_rng()
    args: list[Any] = []
    for text in arg:
        parsed = parse_arg(text)
        if isinstance(parsed, tuple):
            shape, dt = parsed
            args.append(nki.TensorSpec(shape, dt) if mode == "timing" else random_input(shape, dt, rng))
        else:
            args.append(parsed)
    prof = nki.profile(kernel, target=target, mode=mode)(*args)  # type: ignore[arg-type]
    if trace is not None:
        prof.to_perfetto(trace)
    if report is not None:
        from trnsim.report.html import Report

        Report(f"{prof.kernel_name} on {prof.target}").add_kernel_profile(prof.kernel_name, prof).write(report)
    if as_json:
        print(json.dumps(prof.to_dict(), indent=2))
    else:
        console.print(prof.summary())
        if trace is not None:
            console.print(f"trace written to {trace} (open it in https://ui.perfetto.dev)")
        if report is not None:
            console.print(f"report written to {report} (open it in a browser)")

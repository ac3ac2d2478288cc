"""`make demo` / `trnsim demo`: the whole story on built-in defaults, written under out/.

1. a library kernel (flash attention) profiled on the simulated trn2, checked against PyTorch, as a Perfetto
   trace and an engine timeline;
2. a transformer (all-MiniLM-L6-v2 with real weights when its package is installed) compiled with
   torch.compile(backend="trnsim") and checked against eager;
3. serving a Llama-class model on trn2 and on H100 under one SLO: latency percentiles, tokens/s, $/Mtok, J/token;
4. a capacity plan for a token demand on each;
then one self-contained HTML report with all of it.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

# The kernels are re-exported so `from trnsim.demo import tiled_matmul` keeps working for tests and benches.
from trnsim.demo.kernels import softmax_rows, tensor_add, tiled_matmul

__all__ = ["run_demo", "softmax_rows", "tensor_add", "tiled_matmul"]


def run_demo(out_dir: Path = Path("out"), target: str = "trn2", console: Any = None) -> dict[str, Path]:
    """Run the four steps, write everything under out_dir and return the paths of what was written."""
    import numpy as np
    from rich.console import Console

    from trnsim.demo.story import print_compile, print_kernel, print_paths, print_serving, write_report

    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng()
    start = time.perf_counter()
    with console.status("1/4 profiling flash attention on the simulated chip ..."):
        from trnsim.demo.kernel_step import run_kernel_step

        kernel = run_kernel_step(out_dir, target, rng)
    print_kernel(console, kernel)
    with console.status("2/4 compiling a transformer with torch.compile(backend='trnsim') ..."):
        from trnsim.demo.compile_step import run_compile_step

        with warnings.catch_warnings():
            # host-fallback ops are listed in the profile; one warning per op would bury the story
            warnings.simplefilter("ignore")
            compiled = run_compile_step(target)
    print_compile(console, compiled)
    console.print("[bold]3/4 serving Llama-3.1-8B on trn2 and H100[/] (step latencies are cached after the first run)")
    from trnsim.demo.serving_step import run_serving_step

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serving = run_serving_step(progress=True)
    print_serving(console, serving)
    paths = {
        "report": write_report(out_dir / "report.html", kernel, compiled, serving),
        "trace": kernel.trace,
        "timeline": kernel.timeline[0],
        "summary": out_dir / "demo_summary.json",
    }
    paths["summary"].write_text(json.dumps(_summary(kernel, compiled, serving), indent=2))
    print_paths(console, paths, time.perf_counter() - start)
    return paths


def _summary(kernel: Any, compiled: Any, serving: Any) -> dict[str, Any]:
    return {
        "kernel": {"name": "flash_attention", "max_abs_error": kernel.max_abs_error, **kernel.profile.to_dict()},
        "compiled": {
            "model": compiled.model_name,
            "real_weights": compiled.real_weights,
            "min_cosine_vs_eager": compiled.min_cosine,
            "max_abs_error_vs_eager": compiled.max_abs_error,
            "device_time_us": compiled.profile.device_time_us,
            "mfu": compiled.profile.mfu,
        },
        "serving": serving.comparison.to_dict(),
        "plans": {hw: p.to_dict() for hw, p in serving.plans.items()},
    }

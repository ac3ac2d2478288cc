"""Fuzz campaign (issue 14): many random NKI kernels, valid and with one planted mistake, plus random small
PyTorch modules compiled against eager. Outside CI; tests/fuzz runs a fixed slice of the same generators.

Each random kernel (tests/fuzz/kernel_programs.py) is either valid - run functionally against a float64
numpy reference, and in timing mode, which must give the same instruction stream and latency - or has one
mistake a kernel author makes, which both modes must reject with the right trnsim error class at the right
generated line. Outcomes:
  ok            valid, matched numpy, same timeline in both modes
  clear error   invalid, rejected with the expected class and line in both modes
  mismatch      valid but wrong numbers or a timing/functional difference; or invalid but accepted, rejected
                with another class or line, or differently by the two modes (a silent wrong answer or a
                misleading error)
  internal      an InternalError or a bare Python exception from the simulator (a trnsim bug)
  false reject  valid but refused with a trnsim error
Tiled matmuls (tests/fuzz/matmul_programs.py: legacy masked ragged M with `psum +=`, or nc_matmul into a per-tile
or hoisted PSUM tile; SPMD over N) must match numpy with no warning and time alike in both modes.
Modules (tests/fuzz/random_modules.py) are compiled with trnsim.compile and called twice against a deep
copy run eagerly; outputs and buffers (in-place counters, BatchNorm statistics in training mode) must match.

Run: .venv/bin/python bench/fuzz.py [--programs 100000] [--matmuls 0] [--modules 200] [--seed 0] [--minutes 12]
     [--json out]
Stops at --minutes of wall time and says how many programs it got through.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

from kernel_programs import (
    break_program,
    close_enough,
    load_kernel,
    overflows_fp32,
    random_inputs,
    random_program,
    reference,
    render,
)

import trnsim.nki as nki
from trnsim.errors import InternalError, TrnsimError


def _specs(xs: list[np.ndarray]) -> list[nki.TensorSpec]:
    return [nki.TensorSpec(x.shape, x.dtype) for x in xs]


def _valid(rng: random.Random, nrng: np.random.Generator, directory: Path, only_overflowing: bool) -> tuple[str, str]:
    prog = random_program(rng)
    source = render(prog)
    xs = random_inputs(prog, nrng)
    if only_overflowing and not overflows_fp32(prog, xs):
        return "skipped", source
    kernel, _ = load_kernel(source, directory)
    try:
        functional = nki.profile(kernel)(*xs)
        timing = nki.profile(kernel, mode="timing")(*_specs(xs))
    except InternalError:
        return "internal", source
    except TrnsimError:
        return "false reject", source
    except Exception:
        return "internal", source
    outs = functional.outputs if isinstance(functional.outputs, tuple) else (functional.outputs,)
    over = overflows_fp32(prog, xs)
    if not all(close_enough(o, r, len(prog.steps), over) for o, r in zip(outs, reference(prog, xs), strict=True)):
        return "mismatch", source
    if timing.latency_us != functional.latency_us or len(timing.instructions) != len(functional.instructions):
        return "mismatch", source
    return "ok", source


def _invalid(rng: random.Random, nrng: np.random.Generator, directory: Path, only_overflowing: bool) -> tuple[str, str]:
    prog = random_program(rng)
    broken = break_program(prog, rng)
    xs = random_inputs(prog, nrng)
    if only_overflowing:
        return "skipped", broken.source
    kernel, path = load_kernel(broken.source, directory)
    for mode in ("functional", "timing"):
        try:
            nki.profile(kernel, mode=mode)(*(xs if mode == "functional" else _specs(xs)))  # type: ignore[arg-type]
        except InternalError:
            return "internal", broken.source
        except TrnsimError as err:
            if not isinstance(err, broken.error) or err.__dict__.get("location") != f"{path}:{broken.line}":
                return "mismatch", broken.source
            continue
        except Exception:
            return "internal", broken.source
        return "mismatch", broken.source  # accepted a kernel with a mistake
    return "clear error", broken.source


def run_kernels(n: int, seed: int, deadline: float, directory: Path, only_overflowing: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    examples: dict[str, str] = {}
    tried = 0
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n):
            if time.perf_counter() > deadline:
                break
            kind = "valid" if i % 2 == 0 else "invalid"
            outcome, source = (_valid if kind == "valid" else _invalid)(rng, nrng, directory, only_overflowing)
            counts[outcome] += 1
            kinds[kind] += 1
            tried += 1
            if outcome not in ("ok", "clear error", "skipped"):
                examples.setdefault(outcome, source)
            for stale in directory.glob("fuzz_kernel_*.py"):  # keep the folder small
                stale.unlink()
    return {
        "tried": tried,
        "valid_programs": kinds["valid"],
        "invalid_programs": kinds["invalid"],
        "counts": dict(counts),
        "seconds": round(time.perf_counter() - start, 1),
        "first_failures": examples,
    }


def run_matmuls(n: int, seed: int, deadline: float, directory: Path) -> dict[str, Any]:
    from matmul_programs import matmul_close, matmul_inputs, random_matmul_program, render_matmul

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    counts: Counter[str] = Counter()
    failures: dict[str, str] = {}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            if time.perf_counter() > deadline:
                break
            prog = random_matmul_program(rng)
            source = render_matmul(prog)
            kernel, _ = load_kernel(source, directory)
            a_t, b = matmul_inputs(prog, nrng)
            try:
                functional = nki.profile(kernel[prog.grid])(a_t, b)
                timing = nki.profile(kernel[prog.grid], mode="timing")(*_specs([a_t, b]))
                same = matmul_close(functional.outputs, a_t, b) and not functional.warnings
                outcome = "ok" if same and timing.latency_us == functional.latency_us else "mismatch"
            except InternalError:
                outcome = "internal"
            except TrnsimError:
                outcome = "false reject"
            except Exception:
                outcome = "internal"
            counts[outcome] += 1
            if outcome != "ok":
                failures.setdefault(outcome, source)
            for stale in directory.glob("fuzz_kernel_*.py"):
                stale.unlink()
    return {
        "tried": sum(counts.values()),
        "counts": dict(counts),
        "seconds": round(time.perf_counter() - start, 1),
        "first_failures": failures,
    }


def run_modules(n: int, seed: int, deadline: float) -> dict[str, Any]:
    import torch
    from random_modules import random_module

    import trnsim

    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    failures: dict[str, str] = {}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            if time.perf_counter() > deadline:
                break
            module, shape, training = random_module(rng)
            eager = copy.deepcopy(module)
            what = f"{module.kinds} {shape} training={training}"
            try:
                exe = trnsim.compile(module, (torch.randn(*shape),))
                same = True
                for _ in range(2):
                    x = torch.randn(*shape)
                    with torch.no_grad():
                        want = eager(x)
                    same &= bool(torch.allclose(exe(x), want, rtol=1e-4, atol=1e-4))
                for (_, got), (_, ref) in zip(module.named_buffers(), eager.named_buffers(), strict=True):
                    same &= bool(torch.allclose(got.double(), ref.double(), rtol=1e-5, atol=1e-6))
                outcome = "ok" if same else "mismatch"
            except InternalError as err:
                outcome, what = "internal", f"{what}: {err}"
            except TrnsimError as err:
                outcome, what = "clear error", f"{what}: {err}"
            except Exception as err:
                outcome, what = "internal", f"{what}: {type(err).__name__}: {err}"
            counts[outcome] += 1
            if outcome != "ok":
                failures.setdefault(outcome, what)
    return {
        "tried": sum(counts.values()),
        "counts": dict(counts),
        "seconds": round(time.perf_counter() - start, 1),
        "first_failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--matmuls", type=int, default=0, help="random tiled matmul kernels")
    parser.add_argument("--modules", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-time limit for the whole campaign")
    parser.add_argument("--module-share", type=float, default=0.2, help="share of the time kept for modules")
    parser.add_argument(
        "--only-overflowing",
        action="store_true",
        help="replay the same programs but run only the valid ones whose values overflow fp32 (re-checks)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    budget = args.minutes * 60
    module_time = budget * args.module_share if args.modules else 0.0
    with tempfile.TemporaryDirectory() as tmp:
        kernels = run_kernels(args.programs, args.seed, start + budget - module_time, Path(tmp), args.only_overflowing)
        matmuls = (
            run_matmuls(args.matmuls, args.seed, start + budget - module_time, Path(tmp)) if args.matmuls else None
        )
    modules = run_modules(args.modules, args.seed, start + budget) if args.modules else None
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "seed": args.seed,
        "kernels": kernels,
        "matmuls": matmuls,
        "modules": modules,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Property-based tests over random NKI kernels (generated source, see kernel_programs.py).

- valid kernels match a float64 numpy reference, in functional mode, and time the same in timing mode;
- tiled matmuls (legacy with ragged masks, or current with a hoisted PSUM tile; SPMD over N) likewise;
- invalid kernels raise the trnsim error class of their mistake, naming the generated line, in both modes
  (legality never depends on whether values are computed), never an InternalError;
- the same kernel and inputs give a byte-identical Perfetto trace.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st
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
from matmul_programs import matmul_close, matmul_inputs, random_matmul_program, render_matmul

import trnsim.nki as nki
from trnsim.errors import InternalError, TrnsimError

RANDOMS = st.randoms(use_true_random=False)


def _specs(xs: list[np.ndarray]) -> list[nki.TensorSpec]:
    return [nki.TensorSpec(x.shape, x.dtype) for x in xs]


@fuzz(150)
@given(rnd=RANDOMS, data_seed=st.integers(0, 2**32 - 1))
def test_random_valid_kernels_match_numpy_and_time_alike_in_both_modes(
    rnd: random.Random, data_seed: int, kernel_dir: Path
) -> None:
    prog = random_program(rnd)
    source = render(prog)
    kernel, _ = load_kernel(source, kernel_dir)
    xs = random_inputs(prog, np.random.default_rng(data_seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow to inf in numpy's reference is part of the game
        functional = nki.profile(kernel)(*xs)
    assert functional.warnings == [], f"{functional.warnings}\n{source}"
    outs = functional.outputs if isinstance(functional.outputs, tuple) else (functional.outputs,)
    overflowed = overflows_fp32(prog, xs)
    for got, want in zip(outs, reference(prog, xs), strict=True):
        assert close_enough(got, want, len(prog.steps), overflowed), f"mismatch against numpy\n{source}"
    timing = nki.profile(kernel, mode="timing")(*_specs(xs))
    assert [i.label for i in timing.instructions] == [i.label for i in functional.instructions], source
    assert timing.latency_us == functional.latency_us, source


@fuzz(15)
@given(rnd=RANDOMS, data_seed=st.integers(0, 2**32 - 1))
def test_random_tiled_matmuls_match_numpy_in_both_modes(rnd: random.Random, data_seed: int, kernel_dir: Path) -> None:
    prog = random_matmul_program(rnd)
    source = render_matmul(prog)
    kernel, _ = load_kernel(source, kernel_dir)
    a_t, b = matmul_inputs(prog, np.random.default_rng(data_seed))
    functional = nki.profile(kernel[prog.grid])(a_t, b)
    assert functional.warnings == [], f"{functional.warnings}\n{source}"
    assert matmul_close(functional.outputs, a_t, b), f"mismatch against numpy, grid {prog.grid}\n{source}"
    timing = nki.profile(kernel[prog.grid], mode="timing")(*_specs([a_t, b]))
    assert timing.latency_us == functional.latency_us, source


def _outcome(kernel: object, xs: list[np.ndarray], mode: str) -> TrnsimError | None:
    try:
        nki.profile(kernel, mode=mode)(*(xs if mode == "functional" else _specs(xs)))  # type: ignore[arg-type]
    except TrnsimError as err:
        return err
    return None


@fuzz(150)
@given(rnd=RANDOMS, data_seed=st.integers(0, 2**32 - 1))
def test_random_invalid_kernels_raise_their_error_at_their_line_in_both_modes(
    rnd: random.Random, data_seed: int, kernel_dir: Path
) -> None:
    prog = random_program(rnd)
    broken = break_program(prog, rnd)
    kernel, path = load_kernel(broken.source, kernel_dir)
    xs = random_inputs(prog, np.random.default_rng(data_seed))
    for mode in ("functional", "timing"):
        err = _outcome(kernel, xs, mode)
        assert err is not None, f"{mode} mode accepted a kernel with a {broken.what} mistake\n{broken.source}"
        assert not isinstance(err, InternalError), f"{err}\n{broken.source}"
        assert isinstance(err, broken.error), f"{mode}: expected {broken.error.__name__}, got {err!r}"
        assert getattr(err, "location", None) == f"{path}:{broken.line}", f"{mode}: {err}\n{broken.source}"


@fuzz(8)
@given(rnd=RANDOMS, data_seed=st.integers(0, 2**32 - 1))
def test_same_kernel_and_inputs_give_a_byte_identical_perfetto_trace(
    rnd: random.Random, data_seed: int, kernel_dir: Path
) -> None:
    prog = random_program(rnd)
    kernel, _ = load_kernel(render(prog), kernel_dir)
    traces = []
    for run in range(2):
        xs = random_inputs(prog, np.random.default_rng(data_seed))
        path = kernel_dir / f"trace_{run}.json"
        nki.profile(kernel)(*xs).to_perfetto(path)
        traces.append(path.read_bytes())
    assert traces[0] == traces[1], render(prog)

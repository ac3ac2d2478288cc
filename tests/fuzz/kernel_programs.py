"""Random NKI kernels as source text, with a numpy reference and, for invalid ones, the line that is wrong.

A program is a list of steps over [P, F] fp32 tiles: each step is one kernel line (both API styles: `nisa.*`
calls into `nl.ndarray` tiles and legacy `nl.*` calls returning tiles, masked loads into `nl.zeros` tiles,
nc_matmul/nc_transpose through PSUM, reductions). `render` writes the kernel's Python source, `reference`
computes what it must return with numpy. `break_program` plants one mistake a kernel author makes and says
which error class the simulator must raise and at which line. Used by tests/fuzz (hypothesis, a fixed slice
per run) and bench/fuzz.py (a long campaign).
"""

from __future__ import annotations

import importlib.util
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trnsim import errors

TT_OPS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "maximum": np.maximum, "minimum": np.minimum}
TS_OPS = {"add": np.add, "multiply": np.multiply, "subtract": np.subtract, "maximum": np.maximum}
ACTS = {
    "exp": np.exp,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "square": np.square,
    "abs": np.abs,
}
KINDS = ("tt", "ts", "act", "copy", "legacy_bin", "legacy_unary", "mm", "transpose")


@dataclass
class Step:
    kind: str
    op: str = ""
    a: int = 0  # index of the first source tile
    b: int = 0  # index of the second source tile
    scalar: float = 1.0


@dataclass
class Program:
    p: int  # partitions
    f: int  # free size
    n_inputs: int
    masked_rows: int | None  # input 0 is loaded with mask=(ix < masked_rows) into a zeros tile
    steps: list[Step] = field(default_factory=list)
    reduce_op: str | None = None  # a second output: tensor_reduce of the last tile along the free axis

    @property
    def square(self) -> bool:
        return self.p == self.f


def random_program(rng: random.Random, max_steps: int = 8) -> Program:
    p = rng.choice([1, 2, 7, 32, 64, 100, 128])
    f = p if rng.random() < 0.3 else rng.choice([1, 3, 16, 64, 100, 512])
    prog = Program(p, f, rng.randint(1, 3), rng.choice([None, None, max(1, p // 2), p]))
    for _ in range(rng.randint(1, max_steps)):
        n_tiles = prog.n_inputs + len(prog.steps)
        kinds = [k for k in KINDS if prog.square or k not in ("mm", "transpose")]
        kind = rng.choice(kinds)
        a, b = rng.randrange(n_tiles), rng.randrange(n_tiles)
        if kind in ("tt", "legacy_bin"):
            prog.steps.append(Step(kind, rng.choice(list(TT_OPS)), a, b))
        elif kind == "ts":
            prog.steps.append(Step(kind, rng.choice(list(TS_OPS)), a, scalar=rng.choice([-1.5, -0.5, 0.25, 2.0])))
        elif kind in ("act", "legacy_unary"):
            prog.steps.append(Step(kind, rng.choice(list(ACTS)), a, scalar=rng.choice([1.0, 0.5, -1.0])))
        else:
            prog.steps.append(Step(kind, "", a, b))
    prog.reduce_op = rng.choice([None, "add", "maximum"])
    return prog


FP32_EDGE = 1e37  # a float64 value this large may be inf in fp32 (max 3.4e38), and inf - inf is NaN there


def reference(prog: Program, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """What the kernel must return, in float64 numpy (the simulator computes fp32)."""
    tiles = _tiles(prog, inputs)
    out = [tiles[-1]]
    if prog.reduce_op is not None:
        red = np.sum if prog.reduce_op == "add" else np.max
        with np.errstate(all="ignore"):
            out.append(red(tiles[-1], axis=1, keepdims=True))
    return out


def overflows_fp32(prog: Program, inputs: list[np.ndarray]) -> bool:
    """Whether some intermediate value leaves fp32's range (then only elements finite in both are compared)."""
    with np.errstate(all="ignore"):
        return any(not np.all(np.abs(t) < FP32_EDGE) for t in [*_tiles(prog, inputs), *reference(prog, inputs)])


def _tiles(prog: Program, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Every tile the program makes, in order, in float64."""
    tiles = [x.astype(np.float64) for x in inputs]
    if prog.masked_rows is not None:
        tiles[0] = np.where(np.arange(prog.p)[:, None] < prog.masked_rows, tiles[0], 0.0)
    with np.errstate(all="ignore"):
        for s in prog.steps:
            x, y = tiles[s.a], tiles[s.b]
            if s.kind in ("tt", "legacy_bin"):
                tiles.append(TT_OPS[s.op](x, y))
            elif s.kind == "ts":
                tiles.append(TS_OPS[s.op](x, s.scalar))
            elif s.kind == "act":
                tiles.append(ACTS[s.op](x * s.scalar))
            elif s.kind == "legacy_unary":
                tiles.append(ACTS[s.op](x))
            elif s.kind == "copy":
                tiles.append(x.copy())
            elif s.kind == "mm":
                tiles.append(x.T @ y)
            elif s.kind == "transpose":
                tiles.append(x.T.copy())
    return tiles


def _step_lines(prog: Program, k: int, s: Step) -> list[str]:
    """The kernel lines of step `s`, making tile t{k}; the call is always the last line."""
    shape = f"({prog.p}, {prog.f})"
    tile = f"t{k} = nl.ndarray({shape}, nl.float32, buffer=nl.sbuf)"
    a, b = f"t{s.a}", f"t{s.b}"
    if s.kind == "tt":
        return [tile, f"nisa.tensor_tensor(dst=t{k}, data1={a}, data2={b}, op=nl.{s.op})"]
    if s.kind == "ts":
        return [tile, f"nisa.tensor_scalar(dst=t{k}, data={a}, op0=nl.{s.op}, operand0={s.scalar})"]
    if s.kind == "act":
        return [tile, f"nisa.activation(dst=t{k}, op=nl.{s.op}, data={a}, scale={s.scalar})"]
    if s.kind == "copy":
        return [tile, f"nisa.tensor_copy(dst=t{k}, src={a})"]
    if s.kind == "legacy_bin":
        return [f"t{k} = nl.{s.op}({a}, {b})"]
    if s.kind == "legacy_unary":
        return [f"t{k} = nl.{s.op}({a})"]
    psum = f"ps{k} = nl.ndarray({shape}, nl.float32, buffer=nl.psum)"
    if s.kind == "mm":
        return [psum, tile, f"nisa.nc_matmul(ps{k}, {a}, {b})", f"nisa.tensor_copy(dst=t{k}, src=ps{k})"]
    return [psum, tile, f"nisa.nc_transpose(dst=ps{k}, data={a})", f"nisa.tensor_copy(dst=t{k}, src=ps{k})"]


def body_lines(prog: Program) -> list[str]:
    shape = f"({prog.p}, {prog.f})"
    lines = []
    for i in range(prog.n_inputs):
        if i == 0 and prog.masked_rows is not None:
            lines += [
                f"t0 = nl.zeros({shape}, nl.float32)",
                f"ix, iy = nl.mgrid[0:{prog.p}, 0:{prog.f}]",
                f"t0[ix, iy] = nl.load(in0[ix, iy], mask=(ix < {prog.masked_rows}))",
            ]
        else:
            lines += [f"t{i} = nl.ndarray({shape}, nl.float32, buffer=nl.sbuf)", f"nisa.dma_copy(dst=t{i}, src=in{i})"]
    for k, s in enumerate(prog.steps):
        lines += _step_lines(prog, prog.n_inputs + k, s)
    last = f"t{prog.n_inputs + len(prog.steps) - 1}"
    lines += [f"out = nl.ndarray({shape}, nl.float32, buffer=nl.shared_hbm)", f"nisa.dma_copy(dst=out, src={last})"]
    if prog.reduce_op is None:
        lines.append("return out")
    else:
        lines += [
            f"red = nl.ndarray(({prog.p}, 1), nl.float32, buffer=nl.sbuf)",
            f"nisa.tensor_reduce(dst=red, op=nl.{prog.reduce_op}, data={last}, axis=1)",
            f"red_out = nl.ndarray(({prog.p}, 1), nl.float32, buffer=nl.shared_hbm)",
            "nisa.dma_copy(dst=red_out, src=red)",
            "return out, red_out",
        ]
    return lines


HEADER = [
    "import numpy as np",
    "import trnsim.nki as nki",
    "import trnsim.nki.isa as nisa",
    "import trnsim.nki.language as nl",
    "",
    "",
    "@nki.jit",
]


def render(prog: Program, body: list[str] | None = None) -> str:
    args = ", ".join(f"in{i}" for i in range(prog.n_inputs))
    lines = [*HEADER, f"def kernel({args}):", *("    " + ln for ln in (body or body_lines(prog)))]
    return "\n".join(lines) + "\n"


_loaded = 0


def load_kernel(source: str, directory: Path) -> tuple[Any, Path]:
    """Write `source` to a fresh file under `directory`, import it, and return (its kernel, the file)."""
    global _loaded
    _loaded += 1
    path = directory / f"fuzz_kernel_{_loaded}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(path.stem, None)
    return module.kernel, path


def random_inputs(prog: Program, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, size=(prog.p, prog.f)).astype(np.float32) for _ in range(prog.n_inputs)]


def close_enough(got: np.ndarray, want: np.ndarray, depth: int, overflowed: bool = False) -> bool:
    """fp32 against float64: a relative error per op, on the scale of the values (sums mix magnitudes).

    Where the program overflows fp32 (`overflows_fp32`), values that are inf or NaN in either are not
    compared: fp32 rightly gives inf (and NaN from inf - inf) where float64 stays finite.
    """
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        return False
    finite = np.isfinite(want) & np.isfinite(got)
    if not overflowed and not np.array_equal(np.isfinite(want), np.isfinite(got)):
        return False
    scale = np.max(np.abs(want[finite]), initial=1.0)
    tol = 1e-5 * (depth + 1) * 128 * scale
    return bool(np.all(np.abs(got[finite] - want[finite]) <= tol + 1e-4 * np.abs(want[finite])))


# -- invalid programs: one planted mistake, the error class it must raise and the line -----------------
@dataclass
class Broken:
    source: str
    error: type[errors.TrnsimError]
    line: int  # 1-based line of the source the error must name
    what: str


def break_program(prog: Program, rng: random.Random) -> Broken:
    """Plant one mistake in a copy of `prog`'s kernel, right before its output store."""
    body = body_lines(prog)
    at = next(i for i, ln in enumerate(body) if ln.startswith("out = nl.ndarray"))
    t = f"t{prog.n_inputs + len(prog.steps) - 1}"
    p, f = prog.p, prog.f
    mistakes: list[tuple[list[str], type[errors.TrnsimError], str]] = [
        ([f"bad = nl.ndarray(({p + 129}, {f}), nl.float32, buffer=nl.sbuf)"], errors.TileShapeError, "partition"),
        # wider than a partition's whole PSUM (8 banks of 2 KiB: a PSUM tile may span banks)
        ([f"bad = nl.ndarray((128, {8 * 512 + 4}), nl.float32, buffer=nl.psum)"], errors.TileShapeError, "psum"),
        (
            [
                f"bad = nl.ndarray(({p}, {f + 1}), nl.float32, buffer=nl.sbuf)",
                f"nisa.tensor_tensor(dst=bad, data1={t}, data2={t}, op=nl.add)",
            ],
            errors.ShapeMismatchError,
            "shape",
        ),
        ([f"bad = nl.load(in0[0:{p + 1}, :])"], errors.BoundsError, "bounds"),
        ([f"bad = nl.load(in0[:, 0:{f + 5}])"], errors.BoundsError, "bounds"),
        ([f"bad = {t}.reshape((0, -1))"], errors.UsageError, "reshape"),
        ([f"bad = {t}.reshape(({p * f + 1},))"], errors.UsageError, "reshape size"),
        (["bad = nl.program_id(-5)"], errors.UsageError, "program_id"),
        (
            [
                f"bad = nl.ndarray(({p}, {f}), nl.int32, buffer=nl.sbuf)",
                f"nisa.tensor_tensor(dst=bad, data1={t}, data2={t}, op=nl.bitwise_and)",
            ],
            errors.DtypeError,
            "bitwise on fp32",
        ),
        (
            [
                f"bad = nl.ndarray(({p}, {f}), nl.float32, buffer=nl.shared_hbm)",
                f"nisa.tensor_tensor(dst=bad, data1={t}, data2={t}, op=nl.add)",
            ],
            errors.UsageError,
            "compute into hbm",
        ),
    ]
    mistakes += [
        (
            [f"bad = nl.ndarray(({p}, {f + 1}), nl.float32, buffer=nl.shared_hbm)", f"nl.store(bad, {t})"],
            errors.ShapeMismatchError,
            "store shape",
        ),
        (
            [
                f"bad = nl.ndarray(({p}, 2), nl.float32, buffer=nl.sbuf)",
                f"nisa.tensor_reduce(dst=bad, op=nl.add, data={t}, axis=1)",
            ],
            errors.ShapeMismatchError,
            "reduce dst",
        ),
        (
            ["bad = [nl.ndarray((128, 512), nl.float32, buffer=nl.psum) for _ in range(9)]"],
            errors.CapacityError,
            "psum full",
        ),
        (["bad = nl.ndarray((128, 70000), nl.float32, buffer=nl.sbuf)"], errors.CapacityError, "sbuf full"),
        (
            [
                f"bad = nl.ndarray(({p}, {f}), nl.float32, buffer=nl.sbuf)",
                "nisa.activation(dst=bad, op=nl.exp, data=in0)",
            ],
            errors.UsageError,
            "compute from hbm",
        ),
        ([f"bad = {t}[{p}:{p + 2}, :]"], errors.BoundsError, "index past tile"),
        ([f"bad = nl.ndarray(({p}, {f}), 'complex64', buffer=nl.sbuf)"], errors.DtypeError, "unknown dtype"),
        ([f"bad = nl.ndarray(({p}, -3), nl.float32, buffer=nl.sbuf)"], errors.UsageError, "negative dim"),
    ]
    if f <= 128:  # matmul mistakes need a legal stationary free size
        mm_dst = f"bad = nl.ndarray(({f}, {f}), nl.{{}}, buffer=nl.{{}})"
        mistakes += [
            ([mm_dst.format("float32", "sbuf"), f"nisa.nc_matmul(bad, {t}, {t})"], errors.UsageError, "mm to sbuf"),
            ([mm_dst.format("float32", "psum"), f"nisa.nc_matmul(bad, {t}, in0)"], errors.UsageError, "mm from hbm"),
            ([mm_dst.format("bfloat16", "psum"), f"nisa.nc_matmul(bad, {t}, {t})"], errors.DtypeError, "mm into bf16"),
            (
                [
                    f"st = nl.ndarray(({p}, {f}), nl.bfloat16, buffer=nl.sbuf)",
                    f"nisa.tensor_copy(dst=st, src={t})",
                    mm_dst.format("float32", "psum"),
                    f"nisa.nc_matmul(bad, st, {t})",
                ],
                errors.DtypeError,
                "mm mixes fp32 and bf16",
            ),
            (
                [
                    f"st = nl.ndarray(({p}, {f}), nl.int32, buffer=nl.sbuf)",
                    "nisa.memset(dst=st, value=1)",
                    mm_dst.format("float32", "psum"),
                    "nisa.nc_matmul(bad, st, st)",
                ],
                errors.DtypeError,
                "mm on int32",
            ),
        ]
    if f <= 128 and p > 1:
        mistakes.append(
            (
                [
                    f"st = nl.ndarray(({p - 1}, {f}), nl.float32, buffer=nl.sbuf)",
                    f"nisa.tensor_copy(dst=st, src={t}[0:{p - 1}, :])",
                    f"bad = nl.ndarray(({f}, {f}), nl.float32, buffer=nl.psum)",
                    f"nisa.nc_matmul(bad, st, {t})",
                ],
                errors.ShapeMismatchError,
                "contraction",
            )
        )
    lines, error, what = rng.choice(mistakes)
    body = body[:at] + lines + body[at:]
    line = len(HEADER) + 1 + at + len(lines)  # header, def line, then the body up to the planted call
    return Broken(render(prog, body), error, line, what)

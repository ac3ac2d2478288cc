"""The compiled scheduler (sim/scheduler.py + sim/schedule_core.py) against the interpreted one it replaced.

tests/sim/_reference_scheduler.py is a frozen copy of the interpreted scheduler; every Timeline array must be
equal to the last bit (same dtype, same bytes) on real streams (library kernels traced at random ragged
shapes, trn1 with its port groups, SPMD cores sharing HBM, memory reuse, DMAs of fewer rows than queues) and
on random synthetic streams that stress the corners (overlapping and empty boxes, lists long enough for the
grid rule, PSUM accumulation chains, nested memory reuse, many cores).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trnsim.kernels as K
import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.hw import load_preset
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki import TensorSpec
from trnsim.nki.kernel import trace
from trnsim.sim.scheduler import interleave_cores, schedule
from trnsim.sim.timeline import Timeline

_spec = importlib.util.spec_from_file_location(
    "_reference_scheduler", Path(__file__).with_name("_reference_scheduler.py")
)
assert _spec is not None and _spec.loader is not None
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

FIELDS = ("instr_start", "instr_end", "slice_instr", "slice_core", "slice_unit", "slice_start", "slice_end")
BF16 = "bfloat16"


def assert_identical(new: Timeline, ref: Timeline) -> None:
    assert (new.n_cores, new.dma_queues) == (ref.n_cores, ref.dma_queues)
    for f in FIELDS:
        a, b = getattr(new, f), getattr(ref, f)
        assert a.dtype == b.dtype, f
        assert a.shape == b.shape, f
        if a.tobytes() != b.tobytes():
            bad = np.flatnonzero(a != b)
            raise AssertionError(f"{f} differs at {bad[:5]}: {a[bad[:5]]} vs {b[bad[:5]]}")


def check(instrs: list[Instruction], target: Any, n_cores: int, reuse: dict[int, tuple[int, ...]]) -> Timeline:
    spec = load_preset(target) if isinstance(target, str) else target
    new = schedule(instrs, spec, n_cores, reuse)
    assert_identical(new, reference.schedule(instrs, spec, n_cores, reuse))
    return new


def ragged(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi))


def kernel_cases(rng: np.random.Generator) -> list[tuple[str, Any, tuple[tuple[int, ...], ...], dict[str, Any]]]:
    m, k, n = ragged(rng, 130, 400), ragged(rng, 130, 800), ragged(rng, 100, 600)
    s = 128 * ragged(rng, 2, 4) + ragged(rng, 0, 2) * 64
    return [
        ("matmul", K.matmul, ((m, k), (k, n)), {}),
        ("linear", K.linear, ((m, k), (n, k), (n,)), {"activation": "gelu"}),
        ("flash_causal", K.flash_attention, ((1, 2, s, 64),) * 3, {"causal": True}),
        ("rmsnorm", K.rmsnorm, ((m, n), (n,)), {}),
        ("softmax", K.softmax, ((ragged(rng, 20, 300), ragged(rng, 100, 1200)),), {}),
        ("conv2d", K.conv2d, ((1, 16, 18, 18), (ragged(rng, 8, 40), 16, 3, 3)), {"padding": 1}),
    ]


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_library_kernels_at_random_ragged_shapes(rng: np.random.Generator, target: str) -> None:
    """trn1 (NC-v2: VectorE/GpSimdE share the SBUF port) and trn2; ragged tails give DMAs of fewer rows
    than queues; flash attention's tiles reuse freed memory."""
    reused = 0
    for _name, kernel, shapes, kw in kernel_cases(rng):
        tr = trace(kernel, tuple(TensorSpec(sh, BF16) for sh in shapes), kw, target=target, mode="timing", cores=1)
        check(tr.machine.instructions, target, tr.n_cores, tr.machine.reuse)
        reused += len(tr.machine.reuse)
    assert reused > 0  # the suite covers memory reuse


def test_spmd_cores_sharing_hbm(rng: np.random.Generator) -> None:
    s = 128 * ragged(rng, 2, 5)
    tr = trace(K.flash_attention, (TensorSpec((1, 4, s, 128), BF16),) * 3, {"causal": True}, "trn2", "timing", 2)
    check(tr.machine.instructions, "trn2", 2, tr.machine.reuse)
    m = 128 * ragged(rng, 4, 9)
    tr = trace(K.matmul, (TensorSpec((m, 1024), BF16), TensorSpec((1024, 512), BF16)), {}, "trn2", "timing", 2)
    check(tr.machine.instructions, "trn2", 2, tr.machine.reuse)


@nki.jit
def many_loads(x):
    out = nl.ndarray((128, 1), x.dtype, buffer=nl.shared_hbm)
    last = None
    for i in nl.affine_range(x.shape[1] // 512):
        t = nl.ndarray((128, 512), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[:, i * 512 : (i + 1) * 512])
        last = t
    nisa.dma_copy(dst=out, src=last[:, 0:1])
    return out


def test_eight_cores_loading_at_once(rng: np.random.Generator) -> None:
    """Eight programs' transfers contend for HBM; every queue of every core is busy."""
    arg = TensorSpec((128, 512 * ragged(rng, 4, 12)), "float32")
    tr = trace(many_loads[8], (arg,), {}, "trn2", "timing", 8)
    tl = check(tr.machine.instructions, "trn2", 8, tr.machine.reuse)
    assert set(tl.slice_core.tolist()) == set(range(8))


def random_stream(
    rng: np.random.Generator, n: int, n_cores: int
) -> tuple[list[Instruction], dict[int, tuple[int, ...]]]:
    """Instructions on random engines touching random boxes of a few allocations: repeated tiles, boxes that
    cover others, empty boxes, lists longer than the grid threshold; accumulating matmuls; DMAs of any rows
    with and without HBM; reuse chains (an allocation over freed ones that themselves reused others)."""
    n_alloc = 12
    tiles = [(r, r + 32, c, c + 64, 0, 1) for r in range(0, 256, 32) for c in range(0, 512, 64)]
    big = [(0, 256, 0, 512, 0, 1), (0, 128, 0, 256, 0, 1), (128, 256, 0, 4096, 0, 20000)]
    odd = [(5, 5, 0, 8, 0, 1), (0, 300, 100, 100, 0, 1), (130, 129, 0, 10, 0, 1)]  # empty / reversed boxes

    def region() -> tuple[int, ...]:
        aid = int(rng.integers(1, n_alloc + 1))
        u = rng.random()
        pool = tiles if u < 0.8 else big if u < 0.95 else odd
        return (aid, *pool[int(rng.integers(len(pool)))])

    engines = [Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD, Engine.SYNC, Engine.DMA, Engine.DMA]
    instrs = []
    for _ in range(n):
        e = engines[int(rng.integers(len(engines)))]
        reads = tuple(region() for _ in range(int(rng.integers(0, 3))))
        writes = tuple(region() for _ in range(int(rng.integers(0, 3))))
        acc = e is Engine.TENSOR and rng.random() < 0.6
        if acc and writes:
            reads = (*reads, writes[0])
        ins = Instruction(Opcode.TENSOR_COPY, e, int(rng.integers(n_cores)), reads, writes)
        ins.accumulate = acc
        ins.cycles = float(rng.choice([0.0, 64.0, 128.0, float(rng.integers(1, 5000))]))
        ins.touches_psum = bool(rng.random() < 0.4)
        ins.touches_sbuf = bool(rng.random() < 0.8)
        if e is Engine.DMA:
            ins.dma_rows = int(rng.choice([1, 3, 8, 9, 64, 127, 128, 500]))
            ins.dma_row_bytes = int(rng.choice([4, 256, 2048, 4096]))
            ins.dma_bytes = ins.dma_rows * ins.dma_row_bytes
            ins.hbm_bytes = ins.dma_bytes if rng.random() < 0.7 else 0
        instrs.append(ins)
    # allocation 1 took over 2 and 3; 3 had taken over 4 (never touched: 5, 6); 7 over 1
    reuse = {1: (2, 3), 3: (4, 5), 4: (6,), 7: (1, 8), 100: (3,)}
    return instrs, reuse


@pytest.mark.parametrize(("target", "n_cores"), [("trn1", 1), ("trn2", 1), ("trn2", 3), ("inf2", 2)])
def test_random_streams(rng: np.random.Generator, target: str, n_cores: int) -> None:
    for _ in range(4):
        instrs, reuse = random_stream(rng, int(rng.integers(1, 600)), n_cores)
        check(instrs, target, n_cores, reuse)
        check(instrs, target, n_cores, {})


def test_empty_stream() -> None:
    tl = check([], "trn2", 1, {})
    assert len(tl.instr_end) == 0 and len(tl.slice_unit) == 0


def test_interleave_cores_matches_program_order_per_core(rng: np.random.Generator) -> None:
    instrs, _ = random_stream(rng, 200, 3)
    order = interleave_cores(instrs, 3)
    assert sorted(order) == list(range(200))
    for c in range(3):
        assert [i for i in order if instrs[i].core == c] == [i for i in range(200) if instrs[i].core == c]


def test_core_out_of_range_is_an_error(rng: np.random.Generator) -> None:
    instrs, _ = random_stream(rng, 50, 2)
    instrs[int(rng.integers(50))].core = 2
    with pytest.raises(IndexError, match="core 2"):
        schedule(instrs, load_preset("trn2"), 2)
    with pytest.raises(IndexError):
        reference.schedule(instrs, load_preset("trn2"), 2)

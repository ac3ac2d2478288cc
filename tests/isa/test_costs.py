"""Every opcode's cycle count against the documented closed-form estimate (trainium.md §3.6-3.7).

Each test issues one instruction through the kernel language in timing mode and compares the cycles
the machine recorded with the formula written out here from the preset's numbers (MIN_II, GpSimd's
start-up, perf-mode speedups, the stride penalty, TensorE's fp32 factor), never with trnsim's cost code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.hw.presets import get_spec
from trnsim.hw.spec import CoreSpec
from trnsim.isa import RECORDS, Engine, Instruction, Opcode
from trnsim.isa.cost import CostArgs, compute_cycles, dma_efficiency, dma_transfer_ns

TARGETS = ("trn1", "trn2", "trn3")
COVERED: set[Opcode] = set()  # opcodes some test below checks; one test makes sure that is all of them


def covers(*ops: Opcode) -> Callable[[Any], Any]:
    COVERED.update(ops)
    return lambda f: f


def core_of(target: str) -> CoreSpec:
    return get_spec(target).core


def issued(target: str, body: Callable[[], None], op: Opcode) -> Instruction:
    """The one `op` instruction a timing-mode kernel running `body` issues."""

    @nki.jit
    def kernel():
        body()
        out = nl.ndarray((1, 1), nl.float32, buffer=nl.shared_hbm)
        return out

    prof = nki.profile(kernel, target=target, mode="timing")()
    (ins,) = [i for i in prof.instructions if i.opcode is op]
    return ins


def sbuf(shape: tuple[int, ...], dt: Any = nl.float32) -> Any:
    return nl.ndarray(shape, dt, buffer=nl.sbuf)


def psum(shape: tuple[int, ...], dt: Any = nl.float32) -> Any:
    return nl.ndarray(shape, dt, buffer=nl.psum)


# -- TensorE ----------------------------------------------------------------------------------------
@covers(Opcode.NC_MATMUL)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("m", "n"), [(128, 512), (128, 16), (32, 16), (16, 200)])
@pytest.mark.parametrize("dt", [nl.bfloat16, nl.float32])
def test_matmul(target: str, m: int, n: int, dt: Any) -> None:
    """max(min(MIN_II, N_stationary), N_moving), 4x for fp32 inputs."""
    t = core_of(target).tensor
    ins = issued(target, lambda: nisa.nc_matmul(psum((m, n)), sbuf((128, m), dt), sbuf((128, n), dt)), Opcode.NC_MATMUL)
    factor = t.fp32_cost_factor if dt == nl.float32 else 1
    assert ins.cycles == max(min(t.min_ii_cycles, m), n) * factor
    assert ins.flops == 2 * 128 * m * n


def test_matmul_double_row_costs_like_one_bf16_step() -> None:
    """fp8 double-row: K = 256 in the time of a K = 128 bf16 matmul (§3.6), twice the FLOPs."""
    t = core_of("trn2").tensor
    perf = nisa.matmul_perf_mode.double_row

    def body() -> None:
        st, mv = sbuf((128, 2, 128), nl.float8_e4m3), sbuf((128, 2, 512), nl.float8_e4m3)
        nisa.nc_matmul(psum((128, 512)), st, mv, perf_mode=perf)

    ins = issued("trn2", body, Opcode.NC_MATMUL)
    assert ins.cycles == max(min(t.min_ii_cycles, 128), 512)
    assert ins.flops == 2 * 256 * 128 * 512


@covers(Opcode.NC_TRANSPOSE)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("p", "f"), [(128, 128), (128, 16), (16, 100)])
def test_transpose_on_tensor_engine(target: str, p: int, f: int) -> None:
    """TensorE: max(P, min(MIN_II, F))."""
    t = core_of(target).tensor
    ins = issued(
        target, lambda: nisa.nc_transpose(psum((f, p)), sbuf((p, f)), engine=nisa.tensor_engine), Opcode.NC_TRANSPOSE
    )
    assert ins.cycles == max(p, min(t.min_ii_cycles, f))


@pytest.mark.parametrize(("p", "f"), [(32, 32), (8, 20)])
def test_transpose_on_vector_engine(p: int, f: int) -> None:
    """VectorE: max(MIN_II, N)."""
    v = core_of("trn2").vector
    ins = issued(
        "trn2", lambda: nisa.nc_transpose(sbuf((f, p)), sbuf((p, f)), engine=nisa.vector_engine), Opcode.NC_TRANSPOSE
    )
    assert ins.engine is Engine.VECTOR and ins.cycles == max(v.min_ii_cycles, f)


# -- ScalarE ----------------------------------------------------------------------------------------
@covers(Opcode.ACTIVATION)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("n", [16, 64, 1000])
@pytest.mark.parametrize("reduce", [False, True])
def test_activation(target: str, n: int, reduce: bool) -> None:
    """max(MIN_II, N), scale and bias free; with a reduction, + MIN_II for the accumulator read."""
    ii = core_of(target).scalar.min_ii_cycles

    def body() -> None:
        bias = sbuf((128, 1))
        red = sbuf((128, 1)) if reduce else None
        nisa.activation(sbuf((128, n)), nl.exp, sbuf((128, n)), bias=bias, scale=2.0, reduce_op=nl.add, reduce_res=red)

    ins = issued(target, body, Opcode.ACTIVATION)
    assert ins.cycles == max(ii, n) + (ii if reduce else 0)


def test_strided_access_halves_the_rate() -> None:
    """An innermost stride of 16 bytes or more: the SBUF access rate halves (x strided_slowdown)."""
    c = core_of("trn2")
    stride_elems = c.sbuf.full_rate_max_stride_bytes // 4  # fp32 elements per step at the limit
    n = 500

    def body() -> None:
        x = sbuf((128, n * stride_elems))
        nisa.activation(sbuf((128, n)), nl.exp, x[:, ::stride_elems])

    ins = issued("trn2", body, Opcode.ACTIVATION)
    assert ins.cycles == max(c.scalar.min_ii_cycles, n) * c.sbuf.strided_slowdown


# -- VectorE / GpSimd ALU ---------------------------------------------------------------------------
def two_input(c: CoreSpec, n: int, fast: bool, bf16: bool) -> float:
    """tensor_tensor on VectorE: N when fast, else 2N; the bf16 perf mode divides; at least MIN_II."""
    base = n if fast else 2 * n
    return max(c.vector.min_ii_cycles, base / (c.vector.bf16_speedup if bf16 else 1.0))


@covers(Opcode.TENSOR_TENSOR)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    ("dt", "op", "fast"),
    [
        (nl.float32, nl.add, False),  # fp32: 2N
        (nl.bfloat16, nl.add, True),  # all bf16 in SBUF, add/multiply/subtract, unit stride: N
        (nl.bfloat16, nl.multiply, True),
        (nl.bfloat16, nl.divide, False),  # other ops: 2N (still the 2x bf16 perf mode)
    ],
)
@pytest.mark.parametrize("n", [16, 2048])
def test_tensor_tensor(target: str, dt: Any, op: Any, fast: bool, n: int) -> None:
    c = core_of(target)
    ins = issued(
        target,
        lambda: nisa.tensor_tensor(sbuf((128, n), dt), sbuf((128, n), dt), sbuf((128, n), dt), op),
        Opcode.TENSOR_TENSOR,
    )
    assert ins.cycles == two_input(c, n, fast, dt == nl.bfloat16)


def test_tensor_tensor_with_an_input_in_psum_runs_at_one_element_per_cycle() -> None:
    c = core_of("trn2")
    n = 512
    ins = issued(
        "trn2", lambda: nisa.tensor_tensor(sbuf((128, n)), psum((128, n)), sbuf((128, n)), nl.add), Opcode.TENSOR_TENSOR
    )
    assert ins.cycles == max(c.vector.min_ii_cycles, n)


@pytest.mark.parametrize("n", [10, 1000])
def test_gpsimd_start_up_plus_one_element_per_input(n: int) -> None:
    """GpSimd ~ GPSIMD_START + N per input read: power runs there by default (§3.6)."""
    g = core_of("trn2").gpsimd
    ins = issued(
        "trn2",
        lambda: nisa.tensor_tensor(sbuf((128, n)), sbuf((128, n)), sbuf((128, n)), nl.power),
        Opcode.TENSOR_TENSOR,
    )
    assert ins.engine is Engine.GPSIMD and ins.cycles == g.start_cycles + 2 * n


@covers(Opcode.TENSOR_SCALAR)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dt", [nl.float32, nl.bfloat16])
@pytest.mark.parametrize("n", [32, 4096])
def test_tensor_scalar_on_vector(target: str, dt: Any, n: int) -> None:
    """max(MIN_II, N), one op or two; bf16 SBUF -> SBUF at unit stride: the 4x copy perf mode."""
    c = core_of(target)
    ins = issued(
        target,
        lambda: nisa.tensor_scalar(sbuf((128, n), dt), sbuf((128, n), dt), nl.multiply, 2.0, op1=nl.add, operand1=1.0),
        Opcode.TENSOR_SCALAR,
    )
    speedup = c.vector.bf16_copy_speedup if dt == nl.bfloat16 else 1.0
    assert ins.cycles == max(c.vector.min_ii_cycles, n / speedup)


@pytest.mark.parametrize("target", ["trn2", "trn3"])
@pytest.mark.parametrize("dt", [nl.float32, nl.bfloat16])
def test_tensor_scalar_on_scalar_engine(target: str, dt: Any) -> None:
    """ScalarE: max(MIN_II, N), with NC-v4's 2x bf16 perf mode for tensor_scalar/tensor_copy."""
    c = core_of(target)
    n = 1024
    ins = issued(
        target,
        lambda: nisa.tensor_scalar(sbuf((128, n), dt), sbuf((128, n), dt), nl.add, 1.0, engine=nisa.scalar_engine),
        Opcode.TENSOR_SCALAR,
    )
    speedup = c.scalar.bf16_speedup if dt == nl.bfloat16 else 1.0
    assert ins.engine is Engine.SCALAR and ins.cycles == max(c.scalar.min_ii_cycles, n / speedup)


@covers(Opcode.TENSOR_COPY)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    ("src_buf", "dt", "engine"),
    [
        ("sbuf", nl.float32, nisa.vector_engine),
        ("sbuf", nl.bfloat16, nisa.vector_engine),  # SBUF -> SBUF bf16: 4x
        ("psum", nl.bfloat16, nisa.vector_engine),  # from PSUM: only the 2x bf16 mode
        ("sbuf", nl.bfloat16, nisa.scalar_engine),
        ("sbuf", nl.float32, nisa.gpsimd_engine),
    ],
)
def test_tensor_copy(target: str, src_buf: str, dt: Any, engine: Any) -> None:
    c = core_of(target)
    n = 1024  # a bf16 PSUM tile within one 2 KiB bank
    src = (lambda: psum((128, n), dt)) if src_buf == "psum" else (lambda: sbuf((128, n), dt))
    ins = issued(target, lambda: nisa.tensor_copy(sbuf((128, n), dt), src(), engine=engine), Opcode.TENSOR_COPY)
    bf16 = dt == nl.bfloat16
    if engine == nisa.gpsimd_engine:
        expected = c.gpsimd.start_cycles + n
    elif engine == nisa.scalar_engine:
        expected = max(c.scalar.min_ii_cycles, n / (c.scalar.bf16_speedup if bf16 else 1.0))
    else:
        speedup = (c.vector.bf16_copy_speedup if src_buf == "sbuf" else c.vector.bf16_speedup) if bf16 else 1.0
        expected = max(c.vector.min_ii_cycles, n / speedup)
    assert ins.cycles == expected


@covers(Opcode.TENSOR_REDUCE)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    ("dt", "op", "half"),
    [
        (nl.float32, nl.add, False),
        (nl.bfloat16, nl.add, True),
        (nl.bfloat16, nl.maximum, True),
        (nl.bfloat16, nl.multiply, False),
    ],
)
def test_tensor_reduce(target: str, dt: Any, op: Any, half: bool) -> None:
    """N/2 with bf16 in and out and op add or max, else N; at least MIN_II."""
    c = core_of(target)
    n = 1024
    ins = issued(
        target,
        lambda: nisa.tensor_reduce(sbuf((128, 1), dt), op, sbuf((128, n), dt), axis=1, keepdims=True),
        Opcode.TENSOR_REDUCE,
    )
    assert ins.cycles == max(c.vector.min_ii_cycles, n / 2 if half else n)


@covers(Opcode.MEMSET)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    ("dt", "value", "half"), [(nl.bfloat16, 0.0, True), (nl.bfloat16, 1.0, False), (nl.float32, 0.0, False)]
)
def test_memset(target: str, dt: Any, value: float, half: bool) -> None:
    """max(MIN_II, N/2) for zero with bf16/fp16, else max(MIN_II, N); GpSimd: start-up + N."""
    c = core_of(target)
    n = 777
    ins = issued(target, lambda: nisa.memset(sbuf((128, n), dt), value), Opcode.MEMSET)
    assert ins.cycles == max(c.vector.min_ii_cycles, n / 2 if half else n)
    gp = issued(target, lambda: nisa.memset(sbuf((128, n), dt), value, engine=nisa.gpsimd_engine), Opcode.MEMSET)
    assert gp.cycles == c.gpsimd.start_cycles + n


@covers(Opcode.IOTA, Opcode.AFFINE_SELECT)
@pytest.mark.parametrize("target", TARGETS)
def test_iota_and_affine_select(target: str) -> None:
    """GpSimd index patterns: GPSIMD_START + N."""
    g = core_of(target).gpsimd
    n = 300
    iota = issued(target, lambda: nisa.iota(sbuf((128, n), nl.int32), [[1, n]], offset=0), Opcode.IOTA)
    assert iota.engine is Engine.GPSIMD and iota.cycles == g.start_cycles + n

    def select() -> None:
        x = sbuf((128, n))
        nisa.affine_select(sbuf((128, n)), [[-1, n]], 1, x, -1e9)

    sel = issued(target, select, Opcode.AFFINE_SELECT)
    assert sel.engine is Engine.GPSIMD and sel.cycles == g.start_cycles + n


@covers(Opcode.BN_STATS, Opcode.BN_AGGR)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("n", [30, 512])
def test_bn_stats_and_aggr(target: str, n: int) -> None:
    """bn_stats: max(MIN_II, N); bn_aggr: max(MIN_II, 13 * (N / 3)) over its N = 6 x groups inputs."""
    ii = core_of(target).vector.min_ii_cycles
    stats = issued(target, lambda: nisa.bn_stats(sbuf((128, 6)), sbuf((128, n))), Opcode.BN_STATS)
    assert stats.cycles == max(ii, n)
    groups = n // 6 or 1
    aggr = issued(target, lambda: nisa.bn_aggr(sbuf((128, 2)), sbuf((128, 6 * groups))), Opcode.BN_AGGR)
    assert aggr.cycles == max(ii, 13 * (6 * groups / 3))


@covers(Opcode.SELECT)
@pytest.mark.parametrize("target", TARGETS)
def test_select(target: str) -> None:
    """nl.where reads a predicate and a tile: two-input VectorE cost, max(MIN_II, 2N) in fp32."""
    c = core_of(target)
    n = 400
    ins = issued(target, lambda: nisa.select(sbuf((128, n)), sbuf((128, n)), sbuf((128, n)), 0.0), Opcode.SELECT)
    assert ins.cycles == max(c.vector.min_ii_cycles, 2 * n)


@covers(Opcode.TENSOR_TENSOR_SCAN, Opcode.SCALAR_TENSOR_TENSOR, Opcode.RECIPROCAL)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("n", [16, 64, 63, 1000])
def test_compound_vector_instructions(target: str, n: int) -> None:
    """scan: max(MIN_II, 2N); scalar_tensor_tensor bf16 subtract-then-multiply: N for even N, else 2N, no
    MIN_II floor; reciprocal: max(MIN_II, 8N)."""
    ii = core_of(target).vector.min_ii_cycles
    bf = nl.bfloat16

    def scan() -> None:
        nisa.tensor_tensor_scan(sbuf((128, n)), sbuf((128, n)), sbuf((128, n)), 0.0, nl.multiply, nl.add)

    assert issued(target, scan, Opcode.TENSOR_TENSOR_SCAN).cycles == max(ii, 2 * n)

    def stt() -> None:
        x = sbuf((128, n), bf)
        nisa.scalar_tensor_tensor(sbuf((128, n), bf), x, nl.subtract, 2.0, nl.multiply, sbuf((128, n), bf))

    assert issued(target, stt, Opcode.SCALAR_TENSOR_TENSOR).cycles == (n if n % 2 == 0 else 2 * n)
    recip = issued(target, lambda: nisa.reciprocal(sbuf((128, n)), sbuf((128, n))), Opcode.RECIPROCAL)
    assert recip.cycles == max(ii, 8 * n)


@covers(Opcode.TENSOR_SCALAR_REDUCE, Opcode.MAX8, Opcode.NC_FIND_INDEX8, Opcode.NC_MATCH_REPLACE8)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("n", [8, 64, 63, 1000])
def test_fused_reduce_and_max8(target: str, n: int) -> None:
    """tensor_scalar_reduce: max(MIN_II, N) + MIN_II (the accumulator read-out); max8: N, no MIN_II floor."""
    ii = core_of(target).vector.min_ii_cycles

    def tsr() -> None:
        nisa.tensor_scalar_reduce(sbuf((128, n)), sbuf((128, n)), nl.multiply, 2.0, nl.add, reduce_res=sbuf((128, 1)))

    assert issued(target, tsr, Opcode.TENSOR_SCALAR_REDUCE).cycles == max(ii, n) + ii
    assert issued(target, lambda: nisa.max8(sbuf((128, 8)), sbuf((128, n))), Opcode.MAX8).cycles == n

    def find() -> None:
        nisa.nc_find_index8(sbuf((128, 8), nl.uint32), sbuf((128, n)), sbuf((128, 8)))

    def replace() -> None:
        nisa.nc_match_replace8(sbuf((128, n)), sbuf((128, n)), sbuf((128, 8)), 0.0)

    assert issued(target, find, Opcode.NC_FIND_INDEX8).cycles == n
    assert issued(target, replace, Opcode.NC_MATCH_REPLACE8).cycles == min(ii, n)  # as §3.6 writes it


@covers(Opcode.TENSOR_COPY_PREDICATED, Opcode.NONZERO_WITH_COUNT, Opcode.NC_STREAM_SHUFFLE)
@pytest.mark.parametrize("target", ("trn2", "trn3"))
@pytest.mark.parametrize("n", [8, 64, 1000])
def test_predicated_copy_and_nonzero(target: str, n: int) -> None:
    """tensor_copy_predicated: max(MIN_II, N) on VectorE; nonzero_with_count: GpSimd start-up + N."""
    c = core_of(target)

    def copy() -> None:
        nisa.tensor_copy_predicated(sbuf((128, n)), sbuf((128, n)), sbuf((128, n), nl.uint8))

    assert issued(target, copy, Opcode.TENSOR_COPY_PREDICATED).cycles == max(c.vector.min_ii_cycles, n)

    def nonzero() -> None:
        nisa.nonzero_with_count(sbuf((128, n + 1)), sbuf((128, n)))

    assert issued(target, nonzero, Opcode.NONZERO_WITH_COUNT).cycles == c.gpsimd.start_cycles + n

    def shuffle() -> None:
        nisa.nc_stream_shuffle(sbuf((128, n)), sbuf((128, n)), list(range(32)))

    assert issued(target, shuffle, Opcode.NC_STREAM_SHUFFLE).cycles == max(c.vector.min_ii_cycles, n)


# -- DMA and Sync -----------------------------------------------------------------------------------
@covers(Opcode.DMA_COPY)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("p", "f", "dt"), [(128, 512, nl.float32), (64, 100, nl.bfloat16)])
def test_dma_transfer(target: str, p: int, f: int, dt: Any) -> None:
    """A DMA occupies no engine; its queue time is bytes / (rate x b / (b + descriptor overhead))."""
    d = core_of(target).dma

    def body() -> None:
        src = nl.ndarray((p, f), dt, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=sbuf((p, f), dt), src=src)

    ins = issued(target, body, Opcode.DMA_COPY)
    row = f * (4 if dt == nl.float32 else 2)
    assert (ins.cycles, ins.dma_bytes, ins.dma_rows, ins.dma_row_bytes, ins.hbm_bytes) == (
        0.0,
        p * row,
        p,
        row,
        p * row,
    )
    efficiency = row / (row + d.descriptor_overhead_bytes)
    assert dma_efficiency(d, row) == pytest.approx(efficiency)
    assert dma_transfer_ns(d, p * row, row, 1e9) == pytest.approx(p * row / (d.queue_bytes_per_ns * efficiency))


@covers(Opcode.DMA_TRANSPOSE)
@pytest.mark.parametrize("target", ("trn2", "trn3"))
@pytest.mark.parametrize("from_hbm", [False, True])
def test_dma_transpose_runs_at_its_documented_share_of_dma_throughput(target: str, from_hbm: bool) -> None:
    """trainium2_arch.rst: all 16 DMA engines take part; up to 90% (HBM) / 50% (SBUF) of DMA throughput."""
    d = core_of(target).dma
    fraction = d.transpose_hbm_fraction if from_hbm else d.transpose_sbuf_fraction

    def body() -> None:
        src = nl.ndarray((64, 128), nl.bfloat16, buffer=nl.shared_hbm if from_hbm else nl.sbuf)
        nisa.dma_transpose(dst=sbuf((128, 64), nl.bfloat16), src=src)

    ins = issued(target, body, Opcode.DMA_TRANSPOSE)
    nbytes = 64 * 128 * 2
    assert (ins.cycles, ins.dma_bytes, ins.dma_rows, ins.hbm_bytes) == (0.0, nbytes, 128, nbytes if from_hbm else 0)
    assert dma_efficiency(d, ins.dma_row_bytes) == pytest.approx(fraction, rel=1e-3)
    assert dma_transfer_ns(d, nbytes, ins.dma_row_bytes, 1e9) == pytest.approx(
        nbytes / (d.queue_bytes_per_ns * fraction), rel=1e-3
    )


@covers(Opcode.BARRIER)
@pytest.mark.parametrize("target", TARGETS)
def test_barrier(target: str) -> None:
    c = core_of(target)
    assert compute_cycles(Opcode.BARRIER, Engine.SYNC, c, CostArgs()) == c.sync.min_ii_cycles


@covers(Opcode.SENDRECV)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("p,row_bytes", [(128, 4096), (16, 64)])
def test_sendrecv_is_one_dma_over_all_queues(target: str, p: int, row_bytes: int) -> None:
    c = core_of(target)
    d = c.dma
    rate = d.queues * d.queue_bytes_per_ns * row_bytes / (row_bytes + d.descriptor_overhead_bytes)
    want = (d.fixed_latency_ns + p * row_bytes / rate) * c.sync.clock_ghz
    got = compute_cycles(Opcode.SENDRECV, Engine.SYNC, c, CostArgs(n=row_bytes, p=p))
    assert got == pytest.approx(want, rel=1e-12)


@covers(Opcode.CORE_BARRIER, Opcode.COLLECTIVE)
@pytest.mark.parametrize("target", TARGETS)
def test_core_barrier_and_collective_issue_in_one_min_ii(target: str) -> None:
    """Their wait for partners and link time are the instance timing's (tests/nki/test_collectives_timing.py)."""
    c = core_of(target)
    assert compute_cycles(Opcode.CORE_BARRIER, Engine.GPSIMD, c, CostArgs()) == c.gpsimd.min_ii_cycles
    assert compute_cycles(Opcode.COLLECTIVE, Engine.SYNC, c, CostArgs()) == c.sync.min_ii_cycles


@covers(Opcode.NC_MATMUL_MX)
@pytest.mark.parametrize(("m", "n"), [(128, 512), (128, 16), (32, 16), (64, 4096)])
def test_matmul_mx(m: int, n: int) -> None:
    """NC-v4 MX: nc_matmul's rule with a packed moving column (4 values) at mx_speedup x the bf16 rate."""
    t = core_of("trn3").tensor

    def body() -> None:
        k = 128
        st, mv = sbuf((k, m), nl.float8_e4m3fn_x4), sbuf((k, n), nl.float8_e5m2_x4)
        st_s, mv_s = sbuf((k // 8, m), nl.float8_e8m0fnu), sbuf((k // 8, n), nl.uint8)
        nisa.nc_matmul_mx(psum((m, n)), st, mv, st_s, mv_s)

    ins = issued("trn3", body, Opcode.NC_MATMUL_MX)
    assert ins.cycles == max(min(t.min_ii_cycles, m), n * 4 / t.mx_speedup)
    assert ins.flops == 2 * 128 * 4 * m * n
    assert 4 / t.mx_speedup == 1  # trn3: a 4x-packed column per cycle, i.e. 4x the bf16 FLOP rate


@covers(Opcode.QUANTIZE_MX)
@pytest.mark.parametrize(("p", "f"), [(128, 2048), (32, 64), (64, 4)])
def test_quantize_mx(p: int, f: int) -> None:
    """VectorE: max(MIN_II, F / rate) with rate = 4 elements per partition per cycle (§3.6)."""
    v = core_of("trn3").vector
    ins = issued(
        "trn3",
        lambda: nisa.quantize_mx(
            sbuf((p, f // 4), nl.float8_e4m3fn_x4), sbuf((p, f), nl.bfloat16), sbuf((p // 8, f // 4), nl.float8_e8m0fnu)
        ),
        Opcode.QUANTIZE_MX,
    )
    assert ins.cycles == max(v.min_ii_cycles, f / v.mx_quantize_elems_per_cycle)


@covers(Opcode.EXPONENTIAL)
@pytest.mark.parametrize("f", [2048, 256, 16])
@pytest.mark.parametrize("reduce", [False, True])
def test_exponential(f: int, reduce: bool) -> None:
    """VectorE at exponential_speedup x ScalarE's exp: max(MIN_II, N / 4), + MIN_II reading the sum out."""
    v = core_of("trn3").vector

    def body() -> None:
        red = sbuf((128, 1)) if reduce else None
        cmd = nisa.reduce_cmd.reset_reduce if reduce else nisa.reduce_cmd.idle
        nisa.exponential(sbuf((128, f)), sbuf((128, f)), max_value=1.0, reduce_res=red, reduce_cmd=cmd)

    ins = issued("trn3", body, Opcode.EXPONENTIAL)
    ii = v.min_ii_cycles
    assert ins.cycles == max(ii, f / v.exponential_speedup) + (ii if reduce else 0)


@covers(Opcode.ACTIVATE2)
@pytest.mark.parametrize("f", [2048, 16])
@pytest.mark.parametrize("reduce", [False, True])
def test_activate2(f: int, reduce: bool) -> None:
    """ScalarE, activation's rule: max(MIN_II, N), + MIN_II reading the accumulator into reduce_res."""
    s = core_of("trn3").scalar

    def body() -> None:
        red = sbuf((128, 1)) if reduce else None
        cmd = nisa.reduce_cmd.reset_reduce if reduce else nisa.reduce_cmd.idle
        x = sbuf((128, f))
        nisa.activate2(x, nl.exp, x, 2.0, 1.0, nl.multiply, nl.add, reduce_op=nl.add, reduce_res=red, reduce_cmd=cmd)

    ins = issued("trn3", body, Opcode.ACTIVATE2)
    ii = s.min_ii_cycles
    assert ins.cycles == max(ii, f) + (ii if reduce else 0)


@covers(Opcode.TENSOR_SCALAR_CUMULATIVE)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("f", [2048, 16])
def test_tensor_scalar_cumulative(target: str, f: int) -> None:
    """Undocumented; the one-input VectorE rule max(MIN_II, N)."""
    v = core_of(target).vector
    x = (128, f)
    ins = issued(
        target,
        lambda: nisa.tensor_scalar_cumulative(sbuf(x), sbuf(x), nl.multiply, nl.add, 2.0),
        Opcode.TENSOR_SCALAR_CUMULATIVE,
    )
    assert ins.cycles == max(v.min_ii_cycles, f)


@covers(Opcode.SELECT_REDUCE)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("f", [2048, 16])
def test_select_reduce(target: str, f: int) -> None:
    """max(MIN_II, N) (§3.6 select_reduce)."""
    v = core_of(target).vector
    x = (128, f)

    def body() -> None:
        red = sbuf((128, 1))
        nisa.select_reduce(
            sbuf(x), sbuf(x, nl.uint8), sbuf(x), -1.0, reduce_res=red, reduce_cmd=nisa.reduce_cmd.reset_reduce
        )

    ins = issued(target, body, Opcode.SELECT_REDUCE)
    assert ins.cycles == max(v.min_ii_cycles, f)


@covers(Opcode.RANGE_SELECT)
@pytest.mark.parametrize("target", ["trn2", "trn3"])
@pytest.mark.parametrize("f", [2048, 16])
def test_range_select(target: str, f: int) -> None:
    """max(MIN_II, N) (§3.6 range_select)."""
    v = core_of(target).vector
    x = (128, f)

    def body() -> None:
        b0, b1 = sbuf((128, 1)), sbuf((128, 1))
        nisa.range_select(sbuf(x), sbuf(x), nl.greater_equal, nl.less, b0, b1, reduce_res=sbuf((128, 1)))

    ins = issued(target, body, Opcode.RANGE_SELECT)
    assert ins.cycles == max(v.min_ii_cycles, f)


@covers(Opcode.NC_N_GATHER)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("n", [1024, 8])
def test_nc_n_gather(target: str, n: int) -> None:
    """Undocumented; the GpSimd rule GPSIMD_START + N over the gathered elements per partition."""
    core = core_of(target)
    ins = issued(
        target,
        lambda: nisa.nc_n_gather(sbuf((128, n)), sbuf((128, 300)), sbuf((128, n), nl.uint32)),
        Opcode.NC_N_GATHER,
    )
    assert ins.cycles == core.gpsimd.start_cycles + n


@covers(Opcode.SEQUENCE_BOUNDS)
@pytest.mark.parametrize("n", [512, 8])
def test_sequence_bounds(n: int) -> None:
    """Undocumented; the GpSimd rule GPSIMD_START + N over the segment ids."""
    core = core_of("trn2")
    ins = issued("trn2", lambda: nisa.sequence_bounds(sbuf((1, 2, n)), sbuf((1, n))), Opcode.SEQUENCE_BOUNDS)
    assert ins.cycles == core.gpsimd.start_cycles + n


# -- NKI 0.6's remaining instructions --------------------------------------------------------------------
@covers(Opcode.TENSOR_PARTITION_REDUCE)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("f", [512, 3])
def test_tensor_partition_reduce(target: str, f: int) -> None:
    """Undocumented; the GpSimd rule GPSIMD_START + N, N the elements per partition of data."""
    g = core_of(target).gpsimd
    ins = issued(
        target,
        lambda: nisa.tensor_partition_reduce(sbuf((1, f)), nl.add, sbuf((128, f))),
        Opcode.TENSOR_PARTITION_REDUCE,
    )
    assert ins.engine is Engine.GPSIMD and ins.cycles == g.start_cycles + f


@covers(Opcode.LOCAL_GATHER)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    ("e", "v", "dt", "size"), [(1, 64, nl.float32, 4), (4, 16, nl.bfloat16, 2), (32, 5, nl.float32, 4)]
)
def test_local_gather(target: str, e: int, v: int, dt: Any, size: int) -> None:
    """150 + V*E / C, C = ((28 + 4E) / (4E)) / min(4 / dtype_size, E) (legacy docstring)."""
    g = core_of(target).gpsimd

    def body() -> None:
        nisa.local_gather(sbuf((128, v * e), dt), sbuf((128, 64), dt), sbuf((128, 8), nl.uint16), e, v)

    c = ((28 + 4 * e) / (4 * e)) / min(4 / size, e)
    assert (g.local_gather_setup_cycles, g.local_gather_t) == (28, 4)
    assert issued(target, body, Opcode.LOCAL_GATHER).cycles == pytest.approx(g.start_cycles + v * e / c, rel=1e-12)


@covers(Opcode.TOPK)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("n", "k"), [(42, 8), (4000, 64)])
def test_topk(target: str, n: int, k: int) -> None:
    """4*n + K GpSimd cycles per partition (NKI 0.6 docs, nki.isa.topk)."""
    g = core_of(target).gpsimd

    def body() -> None:
        src = sbuf((128, -(-n // 16)), nl.bfloat16)
        nisa.topk(sbuf((128, k), nl.bfloat16), sbuf((128, k), nl.uint32), src, n)

    assert g.topk_cycles_per_element == 4
    assert issued(target, body, Opcode.TOPK).cycles == 4 * n + k


@covers(Opcode.RNG, Opcode.RAND_SET_STATE, Opcode.RAND_GET_STATE)
@pytest.mark.parametrize("target", ["trn2", "trn3"])
@pytest.mark.parametrize("f", [512, 8])
def test_rng_and_state(target: str, f: int) -> None:
    """Undocumented; the streaming rules: max(MIN_II, N) on VectorE, GPSIMD_START + N on GpSimd (N words)."""
    c = core_of(target)
    vec = issued(target, lambda: nisa.rng(sbuf((128, f), nl.uint32)), Opcode.RNG)
    gp = issued(target, lambda: nisa.rng(sbuf((128, f), nl.uint32), engine=nisa.engine.gpsimd), Opcode.RNG)
    assert (vec.engine, vec.cycles) == (Engine.VECTOR, max(c.vector.min_ii_cycles, f))
    assert (gp.engine, gp.cycles) == (Engine.GPSIMD, c.gpsimd.start_cycles + f)
    st = issued(target, lambda: nisa.rand_set_state(sbuf((128, 6), nl.uint32)), Opcode.RAND_SET_STATE)
    gt = issued(target, lambda: nisa.rand_get_state(sbuf((128, 6), nl.uint32)), Opcode.RAND_GET_STATE)
    assert st.cycles == gt.cycles == c.gpsimd.start_cycles + 6


@covers(Opcode.RAND2)
@pytest.mark.parametrize("f", [1024, 16])
def test_rand2(f: int) -> None:
    """Undocumented; rng's VectorE rule max(MIN_II, N) (NC-v4 only)."""
    v = core_of("trn3").vector
    assert issued("trn3", lambda: nisa.rand2(sbuf((128, f)), 0.0, 1.0), Opcode.RAND2).cycles == max(v.min_ii_cycles, f)


@covers(Opcode.DROPOUT, Opcode.SET_RNG_SEED)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("f", [512, 8])
def test_dropout_and_seed(target: str, f: int) -> None:
    """dropout: max(MIN_II, N) (§3.6); set_rng_seed reads one element: MIN_II."""
    v = core_of(target).vector
    assert issued(target, lambda: nisa.dropout(sbuf((128, f)), sbuf((128, f)), 0.5), Opcode.DROPOUT).cycles == max(
        v.min_ii_cycles, f
    )
    seed = issued(target, lambda: nisa.set_rng_seed(sbuf((1, 1), nl.int32)), Opcode.SET_RNG_SEED)
    assert seed.cycles == v.min_ii_cycles


@covers(Opcode.DMA_COMPUTE)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("k", [1, 3])
def test_dma_compute(target: str, k: int) -> None:
    """A DMA: no engine cycles; one copy's bytes per source (dma_copy's rule), the SBUF side's descriptors."""

    def body() -> None:
        srcs = [nl.ndarray((128, 256), nl.bfloat16, buffer=nl.shared_hbm) for _ in range(k)]
        nisa.dma_compute(sbuf((128, 256)), srcs, nl.add)

    ins = issued(target, body, Opcode.DMA_COMPUTE)
    n = 128 * 256
    assert (ins.cycles, ins.dma_bytes, ins.dma_rows, ins.hbm_bytes) == (0.0, k * n * 4, 128, k * n * 2)


@covers(Opcode.REGISTER_LOAD, Opcode.REGISTER_STORE)
@pytest.mark.parametrize("target", TARGETS)
def test_register_load_and_store(target: str) -> None:
    """Undocumented; one Sync-sequencer instruction each: MIN_II."""
    s = core_of(target).sync

    def body() -> None:
        reg = nisa.register_alloc()
        nisa.register_load(reg, sbuf((1, 1), nl.int32))
        nisa.register_store(sbuf((1, 1), nl.int32), reg)

    for op in (Opcode.REGISTER_LOAD, Opcode.REGISTER_STORE):
        ins = issued(target, body, op)
        assert (ins.engine, ins.cycles) == (Engine.SYNC, s.min_ii_cycles)


def test_every_opcode_has_a_closed_form_cost_test() -> None:
    assert set(RECORDS) == set(Opcode)
    missing = sorted(op.key for op in set(Opcode) - COVERED)
    assert not missing, f"add a closed-form cost test for {missing}"

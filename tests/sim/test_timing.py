"""The timing model against its formulas (trainium.md §3.6-3.7), computed here by hand from the preset."""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.hw import load_preset
from trnsim.hw.presets import spec_from_dict
from trnsim.isa.opcodes import Opcode
from trnsim.sim.timeline import N_ENGINES


def _slices(profile: nki.kernel.Profile, opcode: Opcode) -> list[tuple[float, float, int]]:
    tl = profile.timeline
    return [
        (s, e, u)
        for i, s, e, u in zip(tl.slice_instr, tl.slice_start, tl.slice_end, tl.slice_unit)
        if profile.instructions[i].opcode is opcode
    ]


@nki.jit
def one_matmul(a_t, b):
    at = nl.ndarray(a_t.shape, a_t.dtype, buffer=nl.sbuf)
    bt = nl.ndarray(b.shape, b.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=at, src=a_t)
    nisa.dma_copy(dst=bt, src=b)
    ps = nl.ndarray((a_t.shape[1], b.shape[1]), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, at, bt)
    out = nl.ndarray(ps.shape, nl.float32, buffer=nl.shared_hbm)
    sb = nl.ndarray(ps.shape, nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=sb, src=ps)
    nisa.dma_copy(dst=out, src=sb)
    return out


@pytest.mark.parametrize("target", ["trn1", "trn2", "trn3"])
@pytest.mark.parametrize(("dtype", "factor"), [(ml_dtypes.bfloat16, 1), (np.float32, 4)])
def test_matmul_busy_cycles(rng: np.random.Generator, target: str, dtype: type, factor: int) -> None:
    a_t = rng.standard_normal((128, 128)).astype(dtype)
    b = rng.standard_normal((128, 512)).astype(dtype)
    prof = nki.profile(one_matmul, target=target)(a_t, b)
    clock = load_preset(target).core.tensor.clock_ghz
    # max(min(64, N_stationary=128), N_moving=512) = 512 cycles, x4 for fp32
    assert prof.engine_busy_us["tensor"] == pytest.approx(512 * factor / clock / 1000)
    ref = a_t.astype(np.float32).T @ b.astype(np.float32)
    np.testing.assert_allclose(prof.outputs, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("n_moving", [32, 64, 200, 512])
def test_matmul_cost_is_max_of_min_ii_and_moving(n_moving: int) -> None:
    prof = nki.profile(one_matmul, target="trn2", mode="timing")(
        nki.TensorSpec((128, 128), "bfloat16"), nki.TensorSpec((128, n_moving), "bfloat16")
    )
    clock = load_preset("trn2").core.tensor.clock_ghz
    assert prof.engine_busy_us["tensor"] == pytest.approx(max(64, n_moving) / clock / 1000)


@nki.jit
def two_engines(z, dependent: bool):
    half = z.shape[1] // 2
    zt = nl.ndarray(z.shape, z.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=zt, src=z)
    a = nl.ndarray((128, half), nl.float32, buffer=nl.sbuf)
    b = nl.ndarray((128, half), nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=a, op=nl.exp, data=zt[:, 0:half])  # ScalarE
    src = a if dependent else zt[:, half : 2 * half]
    nisa.tensor_scalar(dst=b, data=src, op0=nl.multiply, operand0=2.0)  # VectorE
    out = nl.ndarray((128, half), nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=b)
    return out


def test_independent_instructions_on_different_engines_overlap(rng: np.random.Generator) -> None:
    z = rng.standard_normal((128, 4096)).astype(np.float32)
    prof = nki.profile(two_engines, target="trn2")(z, False)
    ((a0, a1, _),) = _slices(prof, Opcode.ACTIVATION)
    ((b0, b1, _),) = _slices(prof, Opcode.TENSOR_SCALAR)
    assert max(a0, b0) < min(a1, b1), "ScalarE and VectorE work should run at the same time"
    np.testing.assert_allclose(prof.outputs, 2 * z[:, 2048:], rtol=1e-6)


def test_dependent_pair_does_not_overlap(rng: np.random.Generator) -> None:
    z = rng.standard_normal((128, 4096)).astype(np.float32)
    prof = nki.profile(two_engines, target="trn2")(z, True)
    ((_, a1, _),) = _slices(prof, Opcode.ACTIVATION)
    ((b0, _, _),) = _slices(prof, Opcode.TENSOR_SCALAR)
    scalar = load_preset("trn2").core.scalar
    assert b0 >= a1 + scalar.pipeline_latency_cycles / scalar.clock_ghz - 1e-9
    np.testing.assert_allclose(prof.outputs, 2 * np.exp(z[:, :2048]), rtol=1e-5)


@nki.jit
def load_store(x):
    t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x)
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out


@pytest.mark.parametrize("free", [16, 256, 2048, 8192])
def test_dma_time_matches_formula(rng: np.random.Generator, free: int) -> None:
    x = rng.standard_normal((128, free)).astype(np.float32)
    prof = nki.profile(load_store, target="trn2")(x)
    np.testing.assert_array_equal(prof.outputs, x)
    dma = load_preset("trn2").core.dma
    row = free * 4
    per_queue = x.nbytes / dma.queues  # 128 partitions split over 16 queues
    expect = per_queue / (dma.queue_bytes_per_ns * row / (row + dma.descriptor_overhead_bytes))
    loads = [s for s in _slices(prof, Opcode.DMA_COPY) if s[2] >= N_ENGINES]
    assert len(loads) == 2 * dma.queues
    # each piece holds its queue for its data time, but at least the per-transfer overhead
    assert all(e - s == pytest.approx(max(expect, dma.transfer_overhead_ns)) for s, e, _ in loads)
    # load then dependent store: each pays its data time plus the fixed latency
    assert prof.latency_us == pytest.approx(2 * (expect + dma.fixed_latency_ns) / 1000)


def test_dma_time_grows_with_bytes() -> None:
    times = [
        nki.profile(load_store, target="trn1", mode="timing")(nki.TensorSpec((128, f), "float32")).latency_us
        for f in (64, 512, 4096, 32768)
    ]
    assert times == sorted(times) and times[-1] > 8 * times[1]


@nki.jit
def many_loads(x):
    out = nl.ndarray((128, 1), x.dtype, buffer=nl.shared_hbm)
    n = x.shape[1] // 2048
    last = None
    for i in nl.affine_range(n):
        t = nl.ndarray((128, 2048), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[:, i * 2048 : (i + 1) * 2048])
        last = t
    nisa.dma_copy(dst=out, src=last[:, 0:1])
    return out


@pytest.mark.parametrize("hbm_gbps", [50.0, 100.0, 10000.0])
def test_dma_throughput_is_capped_by_hbm_bandwidth(hbm_gbps: float) -> None:
    base = load_preset("trn2").model_dump()
    base["chip"]["hbm_bytes_per_ns"] = hbm_gbps
    spec = spec_from_dict(base)
    n_tiles = 32
    prof = nki.profile(many_loads, target=spec, mode="timing")(nki.TensorSpec((128, 2048 * n_tiles), "float32"))
    dma = spec.core.dma
    row = 2048 * 4
    queues_rate = dma.queues * dma.queue_bytes_per_ns * row / (row + dma.descriptor_overhead_bytes)
    moved = n_tiles * 128 * 2048 * 4
    busy_ns = prof.engine_busy_us["dma"] * 1000
    rate = moved / busy_ns
    assert rate <= min(hbm_gbps, queues_rate) * 1.02
    assert rate >= min(hbm_gbps, queues_rate) * 0.8


def test_spmd_programs_share_hbm_bandwidth() -> None:
    """Eight cores loading at once cannot beat the chip's HBM bandwidth (trn2: 8 x 368 GB/s > 2.9 TB/s)."""
    arg = nki.TensorSpec((128, 2048 * 16), "float32")
    one = nki.profile(many_loads, target="trn2", mode="timing", cores=1)(arg)
    eight = nki.profile(many_loads[8], target="trn2", mode="timing", cores=8)(arg)
    hbm = load_preset("trn2").chip.hbm_bytes_per_ns
    moved = 8 * 128 * 2048 * 16 * 4
    assert moved / (eight.latency_us * 1000) <= hbm * 1.02
    assert eight.latency_us > one.latency_us


@nki.jit
def vector_and_gpsimd(z):
    half = z.shape[1] // 2
    zt = nl.load(z)
    a = nl.ndarray((128, half), nl.float32, buffer=nl.sbuf)
    b = nl.ndarray((128, half), nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=a, data=zt[:, 0:half], op0=nl.multiply, operand0=2.0, engine=nisa.vector_engine)
    nisa.tensor_copy(dst=b, src=zt[:, half : 2 * half], engine=nisa.gpsimd_engine)
    out = nl.ndarray((128, 2 * half), nl.float32, buffer=nl.shared_hbm)
    nl.store(out[:, 0:half], a)
    nl.store(out[:, half : 2 * half], b)
    return out


@pytest.mark.parametrize(("target", "exclusive"), [("trn1", True), ("inf2", True), ("trn2", False), ("trn3", False)])
def test_nc_v2_vector_and_gpsimd_share_the_sbuf_port(rng: np.random.Generator, target: str, exclusive: bool) -> None:
    """trainium.md §1.2: on NC-v2 VectorE and GpSimdE cannot access SBUF in parallel; lifted on NC-v3."""
    z = rng.standard_normal((128, 4096)).astype(np.float32)
    prof = nki.profile(vector_and_gpsimd, target=target)(z)
    np.testing.assert_allclose(prof.outputs, np.concatenate([2 * z[:, :2048], z[:, 2048:]], axis=1), rtol=1e-6)
    ((v0, v1, _),) = _slices(prof, Opcode.TENSOR_SCALAR)
    ((g0, g1, _),) = _slices(prof, Opcode.TENSOR_COPY)
    overlap = max(v0, g0) < min(v1, g1)
    assert overlap is not exclusive


@nki.jit
def k_accumulation(a_t, b):
    k_tiles = a_t.shape[0] // 128
    acc = nl.ndarray((128, b.shape[1]), nl.float32, buffer=nl.psum)
    # one operand pair reused, so the matmuls wait only for each other (and not for DMAs)
    lhs = nl.load(a_t[0:128, :])
    rhs = nl.load(b[0:128, :])
    for _ in nl.affine_range(k_tiles):
        nisa.nc_matmul(acc, lhs, rhs)
    res = nl.ndarray(acc.shape, nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)
    out = nl.ndarray(acc.shape, nl.float32, buffer=nl.shared_hbm)
    nl.store(out, res)
    return out


def test_accumulating_matmuls_run_back_to_back(rng: np.random.Generator) -> None:
    """Matmuls adding into one PSUM tile are limited by TensorE throughput, not by result latency."""
    a_t = rng.standard_normal((128 * 8, 128)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((128 * 8, 448)).astype(ml_dtypes.bfloat16)
    prof = nki.profile(k_accumulation, target="trn2")(a_t, b)
    ref = 8 * (a_t[:128].astype(np.float32).T @ b[:128].astype(np.float32))
    np.testing.assert_allclose(prof.outputs, ref, rtol=2e-3, atol=2e-2)
    mm = sorted(_slices(prof, Opcode.NC_MATMUL))
    clock = load_preset("trn2").core.tensor.clock_ghz
    assert all(e - s == pytest.approx(448 / clock) for s, e, _ in mm)
    # each matmul starts as soon as the previous one leaves TensorE (no result-latency bubble)
    gaps = [b0 - a1 for (_, a1, _), (b0, _, _) in itertools.pairwise(mm)]
    assert gaps == pytest.approx([0.0] * len(gaps), abs=1e-9)


@nki.jit
def accumulate_3d_psum(a_t, b):
    acc = nl.ndarray((128, 2, 256), nl.float32, buffer=nl.psum)
    for k in nl.affine_range(2):
        lhs = nl.load(a_t[k * 128 : (k + 1) * 128, :])
        rhs = nl.load(b[k * 128 : (k + 1) * 128, :])
        nisa.nc_matmul(acc, lhs, rhs)
    res = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)
    out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
    nl.store(out, res)
    return out


def test_matmul_accumulates_into_a_3d_psum_tile(rng: np.random.Generator) -> None:
    a_t = rng.standard_normal((256, 128)).astype(np.float32)
    b = rng.standard_normal((256, 512)).astype(np.float32)
    out = nki.simulate(accumulate_3d_psum)(a_t, b)
    np.testing.assert_allclose(out, a_t.T @ b, rtol=1e-4, atol=1e-3)


@nki.jit
def two_row_bands(x):
    _n, c, h, w = x.shape
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    half = h // 2
    top = nl.ndarray((c, half, w), x.dtype, buffer=nl.sbuf)
    bottom = nl.ndarray((c, half, w), x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=top, src=x[0, :, 0:half, :])
    nisa.dma_copy(dst=bottom, src=x[0, :, half:h, :])
    nisa.dma_copy(dst=out[0, :, 0:half, :], src=top)
    nisa.dma_copy(dst=out[0, :, half:h, :], src=bottom)
    return out


def test_disjoint_row_bands_of_a_4d_tensor_do_not_depend_on_each_other(rng: np.random.Generator) -> None:
    """Two stores into different rows of every channel of [N, C, H, W] touch disjoint memory, so the second
    waits only for its queues, not for the first store's result (dependency boxes are per dim, not flat)."""
    x = rng.standard_normal((1, 64, 16, 32)).astype(np.float32)
    prof = nki.profile(two_row_bands, target="trn2")(x)
    np.testing.assert_array_equal(prof.outputs, x)
    tl = prof.timeline
    first_store, second_store = 2, 3
    end_first = tl.slice_end[tl.slice_instr == first_store].max()
    start_second = tl.slice_start[tl.slice_instr == second_store].min()
    assert start_second < end_first + load_preset("trn2").core.dma.fixed_latency_ns


@nki.jit
def reuse_after_free(x, n_reads: int):
    a = nl.load(x)
    sink = nl.ndarray(x.shape, nl.float32, buffer=nl.sbuf)
    # fill the rest of SBUF, so the only free bytes after `del a` are a's own
    rest = nl.tile_size.sbuf_size_bytes - 2 * x.shape[1] * 4
    filler = nl.ndarray((128, rest // 4), nl.float32, buffer=nl.sbuf)
    for _ in range(n_reads):
        nisa.activation(dst=sink, op=nl.exp, data=a)
    del a  # its SBUF bytes go back to the allocator ...
    b = nl.load(x)  # ... and this tile gets them: the load must wait for a's readers
    del filler  # held until b is placed, so b can only take a's bytes
    out = nl.ndarray(x.shape, nl.float32, buffer=nl.shared_hbm)
    nl.store(out, b)
    return out


def test_reused_memory_waits_for_the_previous_tensors_readers(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 1024)).astype(np.float32)
    prof = nki.profile(reuse_after_free, target="trn2")(x, 20)
    np.testing.assert_array_equal(prof.outputs, x)
    acts = _slices(prof, Opcode.ACTIVATION)
    last_read_end = max(e for _, e, _ in acts)
    second_load = prof.timeline.slice_start[prof.timeline.slice_instr == 21].min()
    assert second_load >= last_read_end

"""P^T by the DMA engines' transpose in flash attention (NeuronCore-v3+), and the instruction it uses.

The instruction (isa/instructions/dma_transpose.py) against numpy on fresh random data in the access-pattern
forms the kernel writes; flash attention with every DMA share against torch's sdpa (causal and not, ragged
S, GQA, bf16 / fp32, trn2 and trn3); the pairing of units into one transpose; the planner's share following
the ISA's DMA-transpose cost.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trnsim.kernels
import trnsim.kernels.attention_plan as attention_plan
import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError
from trnsim.isa import Opcode
from trnsim.kernels import attention, attention_dma_transpose
from trnsim.nki import TensorSpec
from trnsim.nki.target import get_target_spec

P = 128
BF16 = ml_dtypes.bfloat16
TOL = {np.dtype(np.float32): 2e-5, np.dtype(BF16): 3e-2}  # as test_attention.py: bf16 keeps P in bf16


def sdpa(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    t = [torch.from_numpy(np.asarray(x, np.float32)) for x in (q, k, v)]
    return F.scaled_dot_product_attention(*t, is_causal=causal, enable_gqa=True).numpy()


def qkv(rng: np.random.Generator, b: int, h: int, hkv: int, s: int, s_kv: int, d: int, dtype: Any) -> list[Any]:
    shapes = [(b, h, s, d), (b, hkv, s_kv, d), (b, hkv, s_kv, d)]
    return [rng.standard_normal(shape).astype(np.float32).astype(dtype) for shape in shapes]


def assert_close(out: np.ndarray, ref: np.ndarray, dtype: Any) -> None:
    assert out.shape == ref.shape and out.dtype == np.dtype(dtype)
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=tol, atol=tol)


@nki.jit
def blocks_transposed(x, rows, full, ragged):
    """x [128, W] -> per 128-column block j: x[:rows, block j].T at [:, j * 128 : j * 128 + rows], as the
    kernel's 3-D form (full blocks) and a ragged last block of `ragged` columns."""
    nblk = full + (1 if ragged else 0)
    s = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=s, src=x)
    pt = nl.ndarray((P, nblk * P), x.dtype, buffer=nl.sbuf)
    nisa.memset(dst=pt, value=0.0)
    w = x.shape[1]
    nisa.dma_transpose(dst=pt.ap([[nblk * P, P], [P, full], [1, rows]]), src=s.ap([[w, rows], [P, full], [1, P]]))
    if ragged:
        nisa.dma_transpose(
            dst=pt.ap([[nblk * P, ragged], [P, 1], [1, rows]], offset=full * P),
            src=s.ap([[w, rows], [P, 1], [1, ragged]], offset=full * P),
        )
    out = nl.ndarray(pt.shape, x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=pt)
    return out


@pytest.mark.parametrize("dtype", [BF16, np.float32])
@pytest.mark.parametrize(("rows", "full", "ragged"), [(128, 4, 0), (100, 3, 33)])
def test_dma_transpose_sbuf_to_sbuf_matches_numpy(rng: np.random.Generator, dtype: Any, rows, full, ragged) -> None:
    x = rng.standard_normal((P, 512)).astype(dtype)
    prof = nki.profile(blocks_transposed, target="trn2")(x, rows, full, ragged)
    out = np.asarray(prof.outputs)
    want = np.zeros_like(out)
    for j in range(full + (1 if ragged else 0)):
        wk = P if j < full else ragged
        want[:wk, j * P : j * P + rows] = x[:rows, j * P : j * P + wk].T
    np.testing.assert_array_equal(out, want)  # bit-exact (trainium2_arch.rst)
    moved = [i for i in prof.instructions if i.opcode is Opcode.DMA_TRANSPOSE]
    item = np.dtype(dtype).itemsize
    assert [i.dma_bytes for i in moved] == [rows * full * P * item] + ([rows * ragged * item] if ragged else [])
    assert all(i.hbm_bytes == 0 for i in moved)


@nki.jit
def from_hbm(x):
    t = nl.ndarray((x.shape[1], x.shape[0]), x.dtype, buffer=nl.sbuf)
    nisa.dma_transpose(dst=t, src=x)
    out = nl.ndarray(t.shape, x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out


def test_dma_transpose_hbm_to_sbuf_and_generations(rng: np.random.Generator) -> None:
    """HBM -> SBUF on trn3 is the DMA transpose (HBM bytes counted); on trn1 (NC-v2, none) the same call is
    the element-walk DMA, with the same values."""
    x = rng.standard_normal((64, 96)).astype(BF16)
    prof = nki.profile(from_hbm, target="trn3")(x)
    np.testing.assert_array_equal(prof.outputs, x.T)
    (ins,) = [i for i in prof.instructions if i.opcode is Opcode.DMA_TRANSPOSE]
    assert ins.hbm_bytes == x.nbytes
    old = nki.profile(from_hbm, target="trn1")(x)
    np.testing.assert_array_equal(old.outputs, x.T)
    assert not [i for i in old.instructions if i.opcode is Opcode.DMA_TRANSPOSE]


def test_dma_transpose_rejects_one_byte_dtypes() -> None:
    x = np.zeros((16, 32), ml_dtypes.float8_e4m3fn)
    with pytest.raises(UsageError, match="2- or 4-byte"):
        nki.simulate(from_hbm, target="trn2")(x)


def with_share(monkeypatch: pytest.MonkeyPatch, share: float) -> None:
    plan_split = attention_plan.engine_split
    monkeypatch.setattr(attention, "engine_split", lambda plan: dataclasses.replace(plan_split(plan), dma_share=share))


CASES = [(1, 4, 2, 300, 300, 128, True), (2, 2, 1, 257, 257, 64, True), (1, 4, 2, 130, 700, 96, False)]


@pytest.mark.parametrize("share", [0.5, 1.0])
@pytest.mark.parametrize("case", CASES)
def test_flash_with_dma_transposes_matches_sdpa(rng: np.random.Generator, monkeypatch, share, case) -> None:
    """Every share of DMA-transposed units (pairs, lone units falling back to TensorE, ragged tiles) computes
    the same attention as torch on trn2; fp32 too."""
    with_share(monkeypatch, share)
    b, h, hkv, s, s_kv, d, causal = case
    for dtype in (BF16, np.float32) if case is CASES[0] else (BF16,):
        q, k, v = qkv(rng, b, h, hkv, s, s_kv, d, dtype)
        out = nki.simulate(trnsim.kernels.flash_attention, target="trn2")(q, k, v, causal=causal)
        assert_close(out, sdpa(q, k, v, causal), dtype)


def test_flash_pairs_units_into_one_transpose(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every unit on the DMA, two units of the same full shape share one transpose (2 x 128 x 512 bf16),
    the diagonal's partial units go alone or to TensorE; trn3 too. Q^T (one per block of query tiles: here a
    head) and K^T (one per KV head) come from HBM by DMA transposes, so TensorE transposes nothing."""
    with_share(monkeypatch, 1.0)
    q, kv = TensorSpec((1, 2, 1024, 128), "bfloat16"), TensorSpec((1, 1, 1024, 128), "bfloat16")
    prof = nki.profile(trnsim.kernels.flash_attention, target="trn3", mode="timing")(q, kv, kv, causal=False)
    dma_t = [i for i in prof.instructions if i.opcode is Opcode.DMA_TRANSPOSE]
    sizes = [i.dma_bytes for i in dma_t if not i.hbm_bytes]
    units = 2 * (1024 // 128) * (1024 // 512)  # heads x query tiles x 512-key units
    assert sizes == [2 * 128 * 512 * 2] * (units // 2)
    assert sorted(i.hbm_bytes for i in dma_t if i.hbm_bytes) == [1024 * 128 * 2] * 3  # K^T, Q^T of 2 heads
    assert not [i for i in prof.instructions if i.opcode is Opcode.NC_TRANSPOSE]


def test_flash_q_and_k_transposed_by_tensor_engine_on_trn1() -> None:
    """NeuronCore-v2 has no DMA transpose: Q^T and K^T are TensorE transposes of naturally loaded rows (one per
    query tile, one per 128 keys), and no dma_transpose is issued."""
    q, kv = TensorSpec((1, 2, 1024, 128), "bfloat16"), TensorSpec((1, 1, 1024, 128), "bfloat16")
    prof = nki.profile(trnsim.kernels.flash_attention, target="trn1", mode="timing")(q, kv, kv, causal=False)
    assert not [i for i in prof.instructions if i.opcode is Opcode.DMA_TRANSPOSE]
    loads = [i for i in prof.instructions if i.opcode is Opcode.DMA_COPY and i.hbm_bytes and i.label.endswith("sbuf")]
    assert sum(i.hbm_bytes for i in loads) == 4 * 1024 * 128 * 2  # Q of 2 heads, K, V


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_flash_stores_results_in_runs_of_tiles(rng: np.random.Generator, monkeypatch, target) -> None:
    """A block of query tiles stores its results in runs of plan.store_tiles finished tiles (the last run
    ragged, with the ragged last tile): values as torch's; 9 tiles in runs of 3 are 3 stores per head."""
    monkeypatch.setattr(attention_plan, "store_tiles", lambda plan: 3)
    q, k, v = qkv(rng, 1, 2, 1, 1100, 1100, 64, BF16)
    prof = nki.profile(trnsim.kernels.flash_attention, target=target)(q, k, v, causal=True)
    assert_close(prof.outputs, sdpa(q, k, v, True), BF16)
    stores = [i for i in prof.instructions if i.opcode is Opcode.DMA_COPY and i.label.startswith("dma sbuf->hbm")]
    assert sum(i.hbm_bytes for i in stores) == q.nbytes
    assert len(stores) == 2 * 3 + 2  # per head: 3 runs, the last one's ragged tile in a DMA of its own


def test_store_tiles_is_the_per_transfer_floor() -> None:
    """trn2, D 128 bf16: a tile's result is 128 rows of 256 B over 16 queues, 2 KiB each at 23 B/ns x
    256 / (256 + 256); the fewest tiles whose bytes hold a queue for the 1300 ns per-transfer overhead: 8."""
    from trnsim.kernels._flash_tiles import Plan

    plan = Plan(1, 8, 2, 4096, 4096, 128, True, 0.1, BF16, 128, 512)
    plan.q_block_tiles = 32
    got = nki.simulate(nki.jit(lambda x: attention_plan.store_tiles(plan)), target="trn2")(np.zeros((1, 1), np.float32))
    dma = get_target_spec("trn2").core.dma
    tile_ns = 128 * 256 / 16 / (dma.queue_bytes_per_ns * 256 / (256 + dma.descriptor_overhead_bytes))
    assert got == int(np.ceil(dma.transfer_overhead_ns / tile_ns)) == 8


def test_dma_transpose_cost_is_the_isa_rule() -> None:
    """A unit pair's transpose holds each of the 16 queues for max(1300 ns, bytes / 16 / (23 B/ns x 50%))."""
    from trnsim.kernels._flash_tiles import Plan

    plan = Plan(1, 8, 2, 4096, 4096, 128, True, 0.1, BF16, 128, 512)
    got = nki.simulate(nki.jit(lambda x: attention_dma_transpose.unit_ns(plan, 1024)), target="trn2")(
        np.zeros((1, 1), np.float32)
    )
    dma = get_target_spec("trn2").core.dma
    want = max(dma.transfer_overhead_ns, 128 * 1024 * 2 / 16 / (dma.queue_bytes_per_ns * dma.transpose_sbuf_fraction))
    assert got == pytest.approx(want)


def plan_for(target: str, causal: bool = True) -> Any:
    from trnsim.kernels._flash_tiles import Plan

    probe = nki.jit(lambda x: attention_plan.engine_split(Plan(1, 8, 2, 4096, 4096, 128, causal, 0.1, BF16, 128, 512)))
    return nki.simulate(probe, target=target)(np.zeros((1, 1), np.float32))


def test_planner_share_follows_the_dma_transpose_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """trn2 and trn3 give the DMA a share; trn1 has no DMA transpose; a dearer DMA transpose gets a smaller
    share, a free one a larger share."""
    base = plan_for("trn2")
    assert 0 < base.dma_share < 1 and plan_for("trn3").dma_share > 0
    assert plan_for("trn1").dma_share == 0
    cost = attention_dma_transpose.unit_ns
    monkeypatch.setattr(attention_dma_transpose, "unit_ns", lambda plan, keys: 3 * cost(plan, keys))
    dearer = plan_for("trn2")
    assert dearer.dma_share < base.dma_share and dearer.bound_ns > base.bound_ns
    monkeypatch.setattr(attention_dma_transpose, "unit_ns", lambda plan, keys: 0.0)
    free = plan_for("trn2")  # until VectorE / ScalarE (exp, the rescale) bound the block
    assert free.dma_share > base.dma_share and free.bound_ns <= base.bound_ns

"""flash_attention and decode_attention against torch.nn.functional.scaled_dot_product_attention: causal and
not, GQA / MQA, head dims 64-128, ragged sequences, fp32 / bf16 / fp16, the K/V placement modes, errors, and
timing-mode floors at medium sizes (the issue's full-size targets are in bench/kernels_attention.py)."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trnsim.kernels
import trnsim.kernels.attention_plan as attention_plan
import trnsim.nki as nki
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.kernels import attention
from trnsim.nki import TensorSpec

BF16 = ml_dtypes.bfloat16
# bf16 runs keep P in bf16 for the P V matmul, as flash attention on hardware does
TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float16): 5e-3, np.dtype(BF16): 3e-2}


def f32(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


def sdpa(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, scale: float | None = None) -> np.ndarray:
    t = [torch.from_numpy(f32(x)) for x in (q, k, v)]
    return F.scaled_dot_product_attention(*t, is_causal=causal, scale=scale, enable_gqa=True).numpy()


def qkv(rng: np.random.Generator, b: int, h: int, hkv: int, s: int, s_kv: int, d: int, dtype: Any) -> list[Any]:
    shapes = [(b, h, s, d), (b, hkv, s_kv, d), (b, hkv, s_kv, d)]
    return [rng.standard_normal(shape).astype(np.float32).astype(dtype) for shape in shapes]


def assert_close(out: np.ndarray, ref: np.ndarray, dtype: Any) -> None:
    assert out.shape == ref.shape and out.dtype == np.dtype(dtype), (out.shape, out.dtype)
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(f32(out), ref, rtol=tol, atol=tol)


# (B, H, Hkv, S, S_kv, D, causal): ragged S, GQA 8/2 and 4/2, MQA, D 64 / 96 / 128, S != S_kv both ways
FLASH_CASES = [
    (1, 2, 2, 200, 200, 64, True),
    (1, 8, 2, 300, 300, 128, True),
    (2, 4, 1, 257, 257, 128, True),
    (1, 4, 2, 130, 700, 96, False),
    (1, 2, 1, 600, 300, 64, True),
    (1, 2, 1, 150, 1100, 128, True),
    (1, 1, 1, 1, 77, 64, False),
]


@pytest.mark.parametrize("case", FLASH_CASES)
def test_flash_fp32(rng: np.random.Generator, case: tuple[Any, ...]) -> None:
    b, h, hkv, s, s_kv, d, causal = case
    q, k, v = qkv(rng, b, h, hkv, s, s_kv, d, np.float32)
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=causal)
    assert_close(out, sdpa(q, k, v, causal), np.float32)


@pytest.mark.parametrize("case", [FLASH_CASES[1], FLASH_CASES[2], (2, 2, 2, 128, 128, 64, False)])
def test_flash_bf16(rng: np.random.Generator, case: tuple[Any, ...]) -> None:
    b, h, hkv, s, s_kv, d, causal = case
    q, k, v = qkv(rng, b, h, hkv, s, s_kv, d, BF16)
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=causal)
    assert_close(out, sdpa(q, k, v, causal), BF16)


def test_flash_fp16_and_scale(rng: np.random.Generator) -> None:
    q, k, v = qkv(rng, 1, 2, 1, 140, 140, 64, np.float16)
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=True, scale=0.3)
    assert_close(out, sdpa(q, k, v, True, scale=0.3), np.float16)


def test_flash_torch_tensors(rng: np.random.Generator) -> None:
    q, k, v = (torch.from_numpy(x) for x in qkv(rng, 1, 2, 2, 70, 70, 64, np.float32))
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("reserve, mode", [(10**9, "stream"), ("one", "resident")])
def test_flash_kv_modes(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, reserve: Any, mode: str) -> None:
    """Long sequences whose K/V do not fit SBUF stream them per unit; one group at a time when only one fits."""
    b, h, hkv, s, d = 2, 4, 2, 520, 64
    if reserve == "one":  # room for one KV group: K^T, V (with its ones column) and (while transposing) K, fp32
        per_group = s * 4 + -(-s // 128) * (2 * d + 1) * 4
        reserve = nki_sbuf_bytes("trn2") - per_group - 16
    monkeypatch.setattr(attention_plan, "SBUF_RESERVE", reserve)
    seen = []
    choose = attention_plan.kv_mode
    monkeypatch.setattr(attention_plan, "kv_mode", lambda plan: seen.append(choose(plan)) or seen[-1])
    q, k, v = qkv(rng, b, h, hkv, s, s, d, np.float32)
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=True)
    assert seen == [mode]
    assert_close(out, sdpa(q, k, v, True), np.float32)


def nki_sbuf_bytes(target: str) -> int:
    from trnsim.hw import load_preset

    return int(load_preset(target).core.sbuf.partition_bytes)


@pytest.mark.parametrize(
    "shapes, error, match",
    [
        (((1, 2, 64, 256), (1, 2, 64, 256)), ShapeMismatchError, "pmax"),
        (((1, 3, 64, 64), (1, 2, 64, 64)), ShapeMismatchError, "multiple of KV heads"),
        (((2, 64, 64), (2, 1, 64, 64)), ShapeMismatchError, "B, H, S, D"),
        (((1, 2, 64, 64), (1, 2, 64, 32)), ShapeMismatchError, "does not match"),
    ],
)
def test_flash_shape_errors(shapes: Any, error: type, match: str) -> None:
    qs, ks = shapes
    with pytest.raises(error, match=match):
        nki.profile(trnsim.kernels.flash_attention, mode="timing")(TensorSpec(qs), TensorSpec(ks), TensorSpec(ks))


def test_flash_dtype_errors() -> None:
    q = TensorSpec((1, 1, 64, 64), "bfloat16")
    with pytest.raises(DtypeError, match="int32"):
        nki.profile(trnsim.kernels.flash_attention, mode="timing")(TensorSpec((1, 1, 64, 64), "int32"), q, q)
    with pytest.raises(ShapeMismatchError, match="float32"):
        nki.profile(trnsim.kernels.flash_attention, mode="timing")(TensorSpec((1, 1, 64, 64)), q, q)


def test_flash_timing_floor() -> None:
    """Causal bf16 prefill keeps TensorE busy on useful work: a regression floor well under the measured
    ~58% at S=4096 (bench; smaller S pays more for its start and its diagonal), at a size that simulates quickly."""
    s, d, h = 2048, 128, 2
    spec = [TensorSpec((1, h, s, d), "bfloat16")] * 3
    prof = nki.profile(trnsim.kernels.flash_attention, target="trn2", mode="timing", cores=1)(*spec, causal=True)
    useful = 4 * s * s * d * h / 2
    peak = 128 * 128 * 2 * 2.4e9
    # measured 0.40 (0.16 before Q blocks were prefetched and the row max / row sums left VectorE / ScalarE)
    assert useful / peak / (prof.latency_us * 1e-6) > 0.33
    assert prof.psum_peak_bytes <= 16 * 1024 and not prof.warnings


def decode_ref(q: np.ndarray, k: np.ndarray, v: np.ndarray, lengths: list[int]) -> np.ndarray:
    out = np.empty(q.shape, np.float32)
    for b, n in enumerate(lengths):
        out[b] = sdpa(q[b : b + 1, :, None, :], k[b : b + 1, :, :n], v[b : b + 1, :, :n], False)[0, :, 0]
    return out


# (B, H, Hkv, S_max, D, lengths): GQA 8/2 and 32/8, MQA 16/1, MHA; ragged lengths incl. 1 and < 128
DECODE_CASES = [
    (3, 8, 2, 700, 128, [700, 1, 129]),
    (2, 16, 1, 600, 96, [600, 513]),
    (2, 4, 4, 300, 64, [77, 300]),
    (2, 32, 8, 2100, 128, [2100, 1000]),
]


@pytest.mark.parametrize("case", DECODE_CASES)
def test_decode_fp32(rng: np.random.Generator, case: tuple[Any, ...]) -> None:
    b, h, hkv, s, d, lengths = case
    q = rng.standard_normal((b, h, d)).astype(np.float32)
    _, k, v = qkv(rng, b, 1, hkv, 1, s, d, np.float32)
    out = nki.simulate(trnsim.kernels.decode_attention)(q, k, v, lengths)
    assert_close(out, decode_ref(q, k, v, lengths), np.float32)


def test_decode_bf16_array_lengths(rng: np.random.Generator) -> None:
    b, h, hkv, s, d = 4, 8, 2, 1500, 128
    q = rng.standard_normal((b, h, d)).astype(BF16)
    _, k, v = qkv(rng, b, 1, hkv, 1, s, d, BF16)
    lengths = np.array([1500, 3, 640, 1111], dtype=np.int32)
    out = nki.simulate(trnsim.kernels.decode_attention)(q, k, v, lengths)
    assert_close(out, decode_ref(q, k, v, lengths.tolist()), BF16)


def test_decode_errors() -> None:
    q, c = TensorSpec((2, 4, 64), "bfloat16"), TensorSpec((2, 2, 100, 64), "bfloat16")
    run = nki.profile(trnsim.kernels.decode_attention, mode="timing")
    with pytest.raises(ShapeMismatchError, match=r"1\.\.100"):
        run(q, c, c, [0, 100])
    with pytest.raises(ShapeMismatchError, match=r"shape \[2\]"):
        run(q, c, c, [5])
    with pytest.raises(UsageError, match="Python list"):
        run(q, c, c, np.array([5, 6], dtype=np.int32))
    with pytest.raises(ShapeMismatchError, match="multiple of KV heads"):
        run(TensorSpec((2, 3, 64), "bfloat16"), c, c, [5, 6])


def test_decode_timing_floor() -> None:
    """Decode streams the KV cache near the DMA rate (bench: ~92% of the roofline at batch 32, context 2048)."""
    b, h, hkv, s, d = 4, 32, 8, 2048, 128
    cache = TensorSpec((b, hkv, s, d), "bfloat16")
    prof = nki.profile(trnsim.kernels.decode_attention, target="trn2", mode="timing", cores=1)(
        TensorSpec((b, h, d), "bfloat16"), cache, cache, [s] * b
    )
    roofline_us = 2 * b * hkv * s * d * 2 / (16 * 23.0) / 1000
    assert roofline_us / prof.latency_us > 0.75


def test_flash_query_blocks(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Query tiles load and store in blocks (one DMA each): blocks of 2 tiles over 5 tiles, the last ragged."""
    b, h, hkv, s, d = 1, 2, 1, 520, 64
    monkeypatch.setattr(attention_plan, "QO_BLOCK_BYTES", 2 * d * 4)
    q, k, v = qkv(rng, b, h, hkv, s, s, d, np.float32)
    for causal in (True, False):
        out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=causal)
        assert_close(out, sdpa(q, k, v, causal), np.float32)


SPLITS = [(0.0, False, False, 0.0), (1.0, True, False, 1.0), (0.5, True, False, 0.5), (0.0, False, True, 0.0)]


@pytest.mark.parametrize("share, mask_on_vector, transposed, rescale", SPLITS)
@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_flash_engine_splits(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, share, mask_on_vector, transposed, rescale, dtype
):
    """Every placement of the P^T copies (VectorE, ScalarE, both), of the causal mask (TensorE matmul or
    VectorE add in PSUM) and of the O rescales (ScalarE, VectorE, both), and the transposed-scores variant,
    compute the same attention; the planner picks among them by speed alone. Ragged tiles, GQA, a causal
    diagonal inside a unit."""
    split = attention_plan.EngineSplit(share, mask_on_vector, 0.0, transposed, rescale_on_vector=rescale)
    monkeypatch.setattr(attention, "engine_split", lambda plan: split)
    q, k, v = qkv(rng, 1, 4, 2, 300, 300, 128, dtype)
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=True)
    assert_close(out, sdpa(q, k, v, True), dtype)


@pytest.mark.parametrize("case", [(1, 2, 1, 600, 300, 64, True), (1, 4, 2, 130, 700, 96, False)])
def test_flash_transposed_shapes(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, case) -> None:
    """Transposed scores with S_q > S_kv causal (tiles past the last key) and S_q < S_kv without the mask."""
    monkeypatch.setattr(attention, "engine_split", lambda plan: attention_plan.EngineSplit(0.0, False, 0.0, True))
    b, h, hkv, s, s_kv, d, causal = case
    q, k, v = qkv(rng, b, h, hkv, s, s_kv, d, np.float32)
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=causal)
    assert_close(out, sdpa(q, k, v, causal), np.float32)


def test_flash_transposed_where_psum_port_is_shared() -> None:
    """On NeuronCore-v2 (VectorE and ScalarE share one PSUM port) the planner takes transposed scores: the
    copies of P^T out of PSUM would queue behind exp at that port, TensorE has room for S^T and the bias."""
    from trnsim.kernels._flash_tiles import Plan

    def split() -> Any:
        return attention_plan.engine_split(Plan(1, 8, 2, 4096, 4096, 128, True, 0.1, BF16, 128, 512))

    probe = nki.jit(lambda x: split())
    assert nki.simulate(probe, target="trn1")(np.zeros((1, 1), np.float32)).transposed
    assert not nki.simulate(probe, target="trn2")(np.zeros((1, 1), np.float32)).transposed


def test_flash_large_logits(rng: np.random.Generator) -> None:
    """Logits in the hundreds (exp overflows fp32 above ~88): the softmax's shift, the max read from the
    scores' bf16 upper halves, is within a bf16 ulp of the true max, so nothing overflows or underflows."""
    q, k, v = qkv(rng, 1, 2, 1, 200, 700, 64, np.float32)
    q, k = q * 4.0, k * 4.0  # q.k ~ N(0, 16^2 * 64): logits up to several hundred at scale 1
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=False, scale=1.0)
    assert np.isfinite(out).all()
    # fp32 logits of magnitude L carry ~L * 2^-24 absolute rounding per operation (the D-term dot product, the
    # scale and shift), which exp turns into that relative error of each probability: the 2e-5 of unit-size
    # logits does not fit L in the hundreds (it failed for some seeds before and after the rescale split)
    logits = np.abs(np.einsum("bhqd,bkd->bhqk", q, k[:, 0])).max()
    tol = max(TOL[np.dtype(np.float32)], 8 * logits * 2.0**-24)
    np.testing.assert_allclose(out, sdpa(q, k, v, False, scale=1.0), rtol=tol, atol=tol)


def test_flash_plan_bound_is_the_documented_costs() -> None:
    """trn2, bf16, D = 128, no mask, per block of 512 keys (trainium.md §3.6 costs at the preset clocks):
    TensorE 512 + 4 x 128 (P^T) + 4 x 129 (P [V | 1]) cycles at 2.4 GHz, plus Q^T's transpose (128) once per
    8 blocks; VectorE the bf16 max N/2 at 0.96 GHz plus, per 8 blocks, Q^T's copy (bf16, 64) and O / l (fp32
    from PSUM, 128); ScalarE exp 512 at 1.2 GHz. The O rescale (129 fp32 columns in PSUM) goes to ScalarE
    (129 cycles) or VectorE (129 cycles at its clock) in a share r. The P^T copies (VectorE 256, ScalarE 512
    cycles) balance VectorE and ScalarE. A share s of the units has its P^T transposed by the DMA engines
    instead (no TensorE transposes, no copies): one SBUF -> SBUF transpose per two units, 2 x 128 x 512 bf16
    over 16 queues at 50% of 23 B/ns (or the 1300 ns per-transfer floor), plus Q in and O out once per 8
    blocks (256-byte rows: 256 / (256 + 256) of the queue rate). The planner's bound is the closed form's
    least over its grid of (s, r); among those within 1% of it, the one with the least max(TensorE, DMA), then
    the least max(VectorE, ScalarE)."""
    from trnsim.kernels._flash_tiles import Plan

    def split() -> Any:
        plan = Plan(1, 8, 2, 4096, 4096, 128, False, 0.1, BF16, 128, 512)
        return attention_plan.engine_split(plan)

    got = nki.simulate(nki.jit(lambda x: split()), target="trn2")(np.zeros((1, 1), np.float32))
    pair_ns = max(1300.0, 2 * 128 * 512 * 2 / 16 / (23.0 * 0.5))
    tile_dma = 2 * 128 * 128 * 2 / 16 / (23.0 * 0.5) / 8
    slack = 1 + attention_plan.CHAIN_SLACK

    def costs(s: float, r: float) -> tuple[float, float, float, float]:
        vector = (256 + (64 + 128) / 8) / 0.96 + r * 129 / 0.96
        scalar = (512 + (1 - r) * 129) / 1.2
        copy_v, copy_s = (1 - s) * 256 / 0.96, (1 - s) * 512 / 1.2
        share = min(1.0, max(0.0, (vector + copy_v - scalar) / (copy_v + copy_s))) if s < 1 else 0.0
        pair = max(vector + (1 - share) * copy_v, scalar + share * copy_s)
        tensor = (512 + 4 * 128 + 4 * 129 + 128 / 8 - s * 4 * 128) / 2.4
        dma = tile_dma + s * pair_ns / 2
        return max(tensor, pair * slack, dma), max(tensor, dma), pair, share

    steps, r_steps = attention_plan.DMA_SHARE_STEPS, attention_plan.RESCALE_SHARE_STEPS
    grid = [(i / steps, j / r_steps) for i in range(steps + 1) for j in range(r_steps + 1)]
    least = min(costs(*sr)[0] for sr in grid)
    pick = min((sr for sr in grid if costs(*sr)[0] <= least * 1.01), key=lambda sr: costs(*sr)[1:3])
    assert got.mask_on_vector is False and got.transposed is False
    assert (got.dma_share, got.rescale_on_vector) == pytest.approx(pick)
    assert got.bound_ns == pytest.approx(costs(*pick)[0])
    assert got.evac_on_scalar == pytest.approx(costs(*pick)[3])

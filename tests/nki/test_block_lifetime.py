"""Legacy block tensors larger than PSUM get their banks block by block, by lifetime (nki/block_banks.py).

PSUM holds 8 banks of 2 KiB per partition; each block below is one bank ([128, 512] fp32), so a block
tensor of 12 blocks is larger than PSUM. Used one block at a time it runs (values checked against numpy);
with more than 8 blocks waiting to be read it is still a CapacityError; a block whose bank went to another
block can neither be read nor leak that block's (or its own old) values. Each in functional and timing mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki

trnsim.nki.install_aliases()

import neuronxcc.nki as nki  # noqa: E402
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402

from trnsim.errors import CapacityError  # noqa: E402

TARGET = "trn2"
BLOCKS = 12  # 12 banks: more than PSUM's 8
N = 512  # fp32 per bank
MODES = ["functional", "timing"]


def run(kernel: Any, mode: str, *args: np.ndarray) -> Any:
    if mode == "functional":
        return nki.simulate(kernel, target=TARGET)(*args)
    return trnsim.nki.profile(kernel, target=TARGET, mode="timing")(*args)


@nki.jit
def one_block_at_a_time(a, b):
    """out[:, i*N:(i+1)*N] = a.T @ b[:, i*N:(i+1)*N]; each PSUM block is written, copied out, done."""
    out = nl.ndarray((128, BLOCKS * N), dtype=nl.float32, buffer=nl.shared_hbm)
    a_sb = nl.load(a)
    ps = nl.ndarray((BLOCKS, nl.par_dim(128), N), dtype=nl.float32, buffer=nl.psum, name="ps")
    for i in nl.affine_range(BLOCKS):
        ps[i] = nisa.nc_matmul(a_sb, nl.load(b[:, nl.ds(i * N, N)]))
        res = nl.ndarray((nl.par_dim(128), N), dtype=nl.float32, buffer=nl.sbuf)
        res[...] = nl.copy(ps[i])
        nl.store(out[:, nl.ds(i * N, N)], value=res)
    return out


@nki.jit
def all_blocks_then_read(a, b):
    """Writes every block before reading any: 12 banks live at once."""
    out = nl.ndarray((128, BLOCKS * N), dtype=nl.float32, buffer=nl.shared_hbm)
    a_sb = nl.load(a)
    ps = nl.ndarray((BLOCKS, nl.par_dim(128), N), dtype=nl.float32, buffer=nl.psum, name="ps")
    for i in nl.affine_range(BLOCKS):
        ps[i] = nisa.nc_matmul(a_sb, nl.load(b[:, nl.ds(i * N, N)]))
    for i in nl.affine_range(BLOCKS):
        nl.store(out[:, nl.ds(i * N, N)], value=nl.copy(ps[i]))
    return out


@nki.jit
def read_after_bank_reused(a, b):
    """Block 0 is read, then 8 more blocks are written (the 8th takes block 0's bank), then block 0 is read."""
    out = nl.ndarray((128, N), dtype=nl.float32, buffer=nl.shared_hbm)
    a_sb = nl.load(a)
    ps = nl.ndarray((BLOCKS, nl.par_dim(128), N), dtype=nl.float32, buffer=nl.psum, name="ps")
    ps[0] = nisa.nc_matmul(a_sb, nl.load(b[:, nl.ds(0, N)]))
    first = nl.copy(ps[0])
    for i in nl.affine_range(8):
        ps[i + 1] = nisa.nc_matmul(a_sb, nl.load(b[:, nl.ds((i + 1) * N, N)]))
    nl.store(out, value=nl.copy(ps[0]) + first)
    return out


@nki.jit
def half_rewritten_after_reuse(a, b):
    """Block 0 loses its bank, then only its first half is written again and the whole block read."""
    out = nl.ndarray((128, N), dtype=nl.float32, buffer=nl.shared_hbm)
    a_sb = nl.load(a)
    ps = nl.ndarray((BLOCKS, nl.par_dim(128), N), dtype=nl.float32, buffer=nl.psum, name="ps")
    ps[0] = nisa.nc_matmul(a_sb, nl.load(b[:, nl.ds(0, N)]))
    done = nl.copy(ps[0])
    for i in nl.affine_range(8):
        ps[i + 1] = nisa.nc_matmul(a_sb, nl.load(b[:, nl.ds((i + 1) * N, N)]))
        nl.store(out, value=nl.copy(ps[i + 1]) + done)  # read: each of these blocks is finished
    ps[0, :, 0 : N // 2] = nisa.nc_matmul(a_sb, nl.load(b[:, nl.ds(0, N // 2)]))
    nl.store(out, value=nl.copy(ps[0]))
    return out


def inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((128, 128)).astype(np.float32), rng.standard_normal((128, BLOCKS * N)).astype(np.float32)


@pytest.mark.parametrize("mode", MODES)
def test_block_tensor_larger_than_psum_used_one_block_at_a_time(mode: str) -> None:
    a, b = inputs(1)
    result = run(one_block_at_a_time, mode, a, b)
    if mode == "functional":
        np.testing.assert_allclose(result, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)
    else:
        assert result.latency_us > 0


@pytest.mark.parametrize("mode", MODES)
def test_more_live_blocks_than_psum_is_a_capacity_error(mode: str) -> None:
    a, b = inputs(2)
    with pytest.raises(CapacityError, match=r"PSUM capacity exceeded allocating") as info:
        run(all_blocks_then_read, mode, a, b)
    assert "8 live tensors" in str(info.value) and "ps[0] [128, 512]" in str(info.value)


@pytest.mark.parametrize("mode", MODES)
def test_read_of_a_block_whose_bank_was_reused_is_an_error(mode: str) -> None:
    a, b = inputs(3)
    with pytest.raises(CapacityError, match=r"block ps\[0\] is read after its bytes went to"):
        run(read_after_bank_reused, mode, a, b)


def test_rewritten_block_shows_poison_not_old_values() -> None:
    a, b = inputs(4)
    with pytest.warns(UserWarning, match="read of uninitialised memory in ps"):
        result = nki.simulate(half_rewritten_after_reuse, target=TARGET)(a, b)
    ref = a.T.astype(np.float64) @ b[:, : N // 2]
    np.testing.assert_allclose(result[:, : N // 2], ref, rtol=1e-4, atol=1e-3)
    assert np.isnan(result[:, N // 2 :]).all()  # neither block 0's first values nor block 8's


@nki.jit
def accumulate_into_uninitialised_blocks(a, b):
    """acc[i] += matmul over K chunks into an nl.ndarray PSUM block tensor never zeroed (attention v8a)."""
    out = nl.ndarray((128, BLOCKS * 128), dtype=nl.float32, buffer=nl.shared_hbm)
    acc = nl.ndarray((BLOCKS, nl.par_dim(128), 128), dtype=nl.float32, buffer=nl.psum, name="acc")
    for i in nl.affine_range(BLOCKS):
        for k in nl.affine_range(2):
            acc[i] += nisa.nc_matmul(nl.load(a[k]), nl.load(b[k, :, nl.ds(i * 128, 128)]))
        nl.store(out[:, nl.ds(i * 128, 128)], value=nl.copy(acc[i]))
    return out


@nki.jit
def stale_psum_variables(a, b):
    """Each iteration's PSUM tile stays named by a Python variable after its last read; 12 banks in all."""
    out = nl.ndarray((128, BLOCKS * N), dtype=nl.float32, buffer=nl.shared_hbm)
    a_sb = nl.load(a)
    kept = []
    for i in nl.affine_range(BLOCKS):
        ps = nisa.nc_matmul(a_sb, nl.load(b[:, nl.ds(i * N, N)]))
        nl.store(out[:, nl.ds(i * N, N)], value=nl.copy(ps))
        kept.append(ps)  # still referenced: only its lifetime (last read) frees its bank
    return out


@pytest.mark.parametrize("mode", MODES)
def test_accumulate_into_uninitialised_psum_block_starts_a_group(mode: str) -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 128, 128)).astype(np.float32)
    b = rng.standard_normal((2, 128, BLOCKS * 128)).astype(np.float32)
    result = run(accumulate_into_uninitialised_blocks, mode, a, b)
    if mode == "functional":
        ref = sum(a[k].T.astype(np.float64) @ b[k] for k in range(2))
        np.testing.assert_allclose(result, ref, rtol=1e-4, atol=1e-3)
    else:
        assert result.latency_us > 0


@pytest.mark.parametrize("mode", MODES)
def test_psum_tiles_read_since_written_give_their_banks_up(mode: str) -> None:
    a, b = inputs(6)
    result = run(stale_psum_variables, mode, a, b)
    if mode == "functional":
        np.testing.assert_allclose(result, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)
    else:
        assert result.latency_us > 0

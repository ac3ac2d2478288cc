"""nki.collectives permutes and variable-size exchanges, nisa.sendrecv and nisa.core_barrier, against numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as tn
from trnsim.errors import UsageError

tn.install_aliases()
import nki.collectives as ncc  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402
from nki.collectives import ReplicaGroup  # noqa: E402

import nki  # noqa: E402


def rng() -> np.random.Generator:
    return np.random.default_rng()


def hbm_copy(x: Any, name: str = "") -> Any:
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm, name=name)
    nisa.dma_copy(dst=t, src=x)
    return t


@nki.jit
def permute_kernel(x, pairs):
    s = hbm_copy(x)
    d = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    zero = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.memset(zero, 0.0)
    nisa.dma_copy(dst=d, src=zero)
    ncc.collective_permute([s], [d], pairs)
    return d


@nki.jit
def ring_kernel(x0, x1, group, reduce):
    a, b = hbm_copy(x0), hbm_copy(x1)
    d = nl.ndarray(x0.shape, dtype=x0.dtype, buffer=nl.shared_hbm)
    if reduce:
        ncc.collective_permute_implicit_reduce([[a]], [[b]], [[d]], group, nl.add)
    else:
        ncc.collective_permute_implicit([[a]], [[d]], group)
    return d


@pytest.mark.parametrize("n", [2, 5, 16])
def test_collective_permute_moves_each_pair(n: int) -> None:
    xs = [rng().standard_normal((4, 8)).astype(np.float32) for _ in range(n)]
    perm = rng().permutation(n)
    pairs = [(int(s), int(t)) for s, t in zip(range(n), perm)][: max(1, n - 1)]  # one rank receives nothing
    prof = tn.run_ranks(permute_kernel, [(x, pairs) for x in xs], target="trn2")
    received = {t: s for s, t in pairs}
    for r, out in enumerate(prof.outputs):
        want = xs[received[r]] if r in received else np.zeros_like(xs[r])
        np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("n", [2, 4, 8])
@pytest.mark.parametrize("reduce", [False, True])
def test_implicit_ring_receives_the_predecessors_data(n: int, reduce: bool) -> None:
    x0 = [rng().standard_normal((4, 8)).astype(np.float32) for _ in range(n)]
    x1 = [rng().standard_normal((4, 8)).astype(np.float32) for _ in range(n)]
    order = [int(r) for r in rng().permutation(n)]  # the ring follows the group's order, not rank order
    g = ReplicaGroup([order])
    prof = tn.run_ranks(ring_kernel, [(a, b, g, reduce) for a, b in zip(x0, x1)], target="trn2")
    for r, out in enumerate(prof.outputs):
        pred = order[(order.index(r) - 1) % n]
        want = x0[pred] + x1[pred] if reduce else x0[pred]
        np.testing.assert_allclose(out, want, rtol=1e-6)


def test_current_processing_rank_walks_back_around_the_ring() -> None:
    @nki.jit
    def k(x, g, steps):
        out = nl.ndarray((1, steps), dtype=nl.int32, buffer=nl.shared_hbm)
        t = nl.ndarray((1, steps), dtype=nl.int32, buffer=nl.sbuf)
        for i in range(steps):
            nisa.memset(t[:, i : i + 1], ncc.collective_permute_implicit_current_processing_rank_id(i, g))
        nisa.dma_copy(dst=out, src=t)
        return out

    order = [3, 0, 2, 1]
    prof = tn.run_ranks(k, [(np.zeros(1, np.float32), ReplicaGroup([order]), 4) for _ in range(4)], target="trn2")
    for r, out in enumerate(prof.outputs):
        pos = order.index(r)
        assert list(out[0]) == [order[(pos - i) % 4] for i in range(4)]


@nki.jit
def a2av_kernel(x, meta, group, gather):
    s = hbm_copy(x)
    m = hbm_copy(meta)
    d = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    zero = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.memset(zero, 0.0)
    nisa.dma_copy(dst=d, src=zero)
    if gather:
        ncc.all_gather_v([s], [d], group, m)
    else:
        ncc.all_to_all_v([s], [d], group, m)
    counts = nl.ndarray(meta.shape, dtype=meta.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=counts, src=m)
    return d, counts


@pytest.mark.parametrize("n", [2, 4])
def test_all_to_all_v_sends_each_rank_its_chunk(n: int) -> None:
    slot = 6
    xs = [rng().standard_normal((1, n * slot)).astype(np.float32) for _ in range(n)]
    counts = rng().integers(0, slot + 1, size=(n, n))  # counts[j, i]: elements rank j sends to rank i
    displs = [np.arange(n) * slot for _ in range(n)]
    metas = [np.stack([counts[j], displs[j], np.zeros(n, int)]).astype(np.uint32) for j in range(n)]
    g = ReplicaGroup([list(range(n))])
    prof = tn.run_ranks(a2av_kernel, [(x, m, g, False) for x, m in zip(xs, metas)], target="trn2")
    for i, (out, meta) in enumerate(prof.outputs):
        want = np.zeros(n * slot, np.float32)
        for j in range(n):
            c = counts[j, i]
            want[j * slot : j * slot + c] = xs[j][0, displs[j][i] : displs[j][i] + c]
        np.testing.assert_array_equal(out.reshape(-1), want)
        assert list(meta[2]) == list(counts[:, i])


def test_all_gather_v_broadcasts_one_chunk() -> None:
    n, slot = 4, 5
    xs = [rng().standard_normal((1, n * slot)).astype(np.float32) for _ in range(n)]
    counts = rng().integers(1, slot + 1, size=n)
    offs = rng().integers(0, n * slot - slot, size=n)
    metas = [
        np.stack([np.full(n, counts[j]), np.full(n, offs[j]), np.zeros(n, int)]).astype(np.uint32) for j in range(n)
    ]
    g = ReplicaGroup([list(range(n))])
    prof = tn.run_ranks(a2av_kernel, [(x, m, g, True) for x, m in zip(xs, metas)], target="trn2")
    for out, meta in prof.outputs:
        want = np.zeros(n * slot, np.float32)
        for j in range(n):
            want[j * slot : j * slot + counts[j]] = xs[j][0, offs[j] : offs[j] + counts[j]]
        np.testing.assert_array_equal(out.reshape(-1), want)
        assert list(meta[2]) == list(counts)


@nki.jit
def swap_kernel(x):
    """Each core of an LNC=2 rank sends its half to the other (nki-library's sendrecv pattern)."""
    core = nl.program_id(0)
    half = x.shape[0] // 2
    mine = nl.ndarray((half, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
    recv = nl.ndarray((half, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=mine, src=x[core * half : (core + 1) * half, :])
    nisa.sendrecv(src=mine, dst=recv, send_to_rank=1 - core, recv_from_rank=1 - core, pipe_id=0)
    nisa.dma_copy(dst=out[core * half : (core + 1) * half, :], src=recv)
    return out


def test_sendrecv_swaps_the_halves_of_an_lnc2_pair() -> None:
    xs = [rng().standard_normal((8, 16)).astype(np.float32) for _ in range(2)]
    prof = tn.run_ranks(swap_kernel[nl.nc(2)], [(x,) for x in xs], target="trn2", lnc=2)
    for x, out in zip(xs, prof.outputs):
        np.testing.assert_array_equal(out, np.concatenate([x[4:], x[:4]]))


@nki.jit
def barrier_kernel(x):
    """Each core writes half of a shared tensor, both wait at the barrier, then each reads all of it."""
    core = nl.program_id(0)
    half = x.shape[0] // 2
    shared = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    out = nl.ndarray((2, *x.shape), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((half, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x[core * half : (core + 1) * half, :])
    nisa.activation(dst=t, op=nl.exp, data=t)
    nisa.dma_copy(dst=shared[core * half : (core + 1) * half, :], src=t)
    nisa.core_barrier(shared, (0, 1))
    whole = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=whole, src=shared)
    nisa.dma_copy(dst=out[core], src=whole)
    return out


@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_core_barrier_lets_each_core_read_the_others_half(mode: str) -> None:
    x = rng().standard_normal((8, 16)).astype(np.float32)
    arg = x if mode == "functional" else tn.TensorSpec(x.shape)
    prof = tn.run_ranks(barrier_kernel[nl.nc(2)], [(arg,)], target="trn2", lnc=2, mode=mode)
    if mode == "functional":
        np.testing.assert_allclose(prof.outputs[0], np.stack([np.exp(x)] * 2), rtol=1e-5)
    # timing: both barriers end together, after both cores' writes into the shared tensor
    p = prof.ranks[0]
    ins, tl = p.instructions, p.timeline
    barrier = {ins[i].core: i for i in range(len(ins)) if ins[i].opcode.key == "core_barrier"}
    assert sorted(barrier) == [0, 1]
    writes = [i for i in range(len(ins)) if "sbuf->hbm" in ins[i].label and i < barrier[ins[i].core]]
    assert len(writes) == 2
    ends = tl.instr_end[[barrier[0], barrier[1]]]
    assert ends[0] == pytest.approx(ends[1])
    assert ends.min() >= max(tl.instr_end[w] for w in writes)


def test_sendrecv_in_a_plain_launch_says_how_to_run_it() -> None:
    x = np.ones((8, 16), np.float32)
    with pytest.raises(UsageError, match="run_ranks"):
        nki.simulate(swap_kernel[nl.nc(2)])(x)


@nki.jit
def neighbour_swap(x):
    """At LNC=1 the two NeuronCores of an HBM stack are two ranks; each sends its tile to the other."""
    me = ncc.rank_id() % 2
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    r = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=t, src=x)
    nisa.sendrecv(src=t, dst=r, send_to_rank=1 - me, recv_from_rank=1 - me, pipe_id=3)
    nisa.dma_copy(dst=out, src=r)
    return out


def test_sendrecv_between_neighbouring_ranks_at_lnc1() -> None:
    xs = [rng().standard_normal((16, 32)).astype(np.float32) for _ in range(4)]  # two stacks, two ranks each
    prof = tn.run_ranks(neighbour_swap, [(x,) for x in xs], target="trn2", lnc=1)
    for r, out in enumerate(prof.outputs):
        np.testing.assert_array_equal(out, xs[r ^ 1])
    # each pair's transfer starts when both have arrived: the early one waits, both finish together
    ends = []
    for p in prof.ranks:
        (i,) = [k for k, ins in enumerate(p.instructions) if ins.opcode.key == "sendrecv"]
        ends.append(float(p.timeline.instr_end[i]))
    assert ends[0] == pytest.approx(ends[1]) and ends[2] == pytest.approx(ends[3])


def test_sendrecv_to_a_core_that_runs_nothing_is_named() -> None:
    x = np.ones((8, 16), np.float32)
    with pytest.raises(UsageError, match=r"rank 0 waits at sendrecv from core 1") as info:
        tn.run_ranks(swap_kernel, [(x,)], target="trn2", lnc=2)  # one program: core 1 of the pair is idle
    assert info.value.rule == "collective-mismatch"


@nki.jit
def ring_all_gather(x, group, n):
    """The ring all-gather nki-library's fine_grained_allgather does: pass the block along the ring n - 1
    times, and store each received block at the row of the rank it came from (a register offset in .ap)."""
    m, k = x.shape
    result = nl.ndarray((n, m, k), dtype=x.dtype, buffer=nl.shared_hbm)  # indexed by rank, as fg_allgather's
    bufs = [nl.ndarray((m, k), dtype=x.dtype, buffer=nl.shared_hbm) for _ in range(2)]
    nisa.dma_copy(dst=bufs[0], src=x)
    for step in range(n):
        cur = bufs[step % 2]
        owner = ncc.collective_permute_implicit_current_processing_rank_id(iteration_id=step, replica_group=group)
        tile = nl.ndarray((m, k), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=tile, src=cur)
        nisa.dma_copy(dst=result.ap(pattern=[[k, m], [1, k]], offset=0, scalar_offset=owner, indirect_dim=0), src=tile)
        if step < n - 1:
            ncc.collective_permute_implicit([[cur]], [[bufs[(step + 1) % 2]]], group)
    return result


@pytest.mark.parametrize("n", [2, 4, 8])
def test_ring_all_gather_with_register_offsets_as_nki_library_writes_it(n: int) -> None:
    m, k = 4, 16
    xs = [rng().standard_normal((m, k)).astype(np.float32) for _ in range(n)]
    prof = tn.run_ranks(ring_all_gather, [(x, ReplicaGroup([list(range(n))]), n) for x in xs], target="trn2")
    for out in prof.outputs:
        np.testing.assert_array_equal(out, np.stack(xs))

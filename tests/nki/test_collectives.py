"""nki.collectives values on every rank against numpy, on 2-16 ranks with fresh random data, both modes.

Kernels are written the way nki-library's collective tests write them (copy the input into a shared HBM
tensor, run the collective, copy the result out), through the `nki` aliases.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as tn
from trnsim.errors import ShapeMismatchError, UsageError

tn.install_aliases()
import nki.collectives as ncc  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402
from nki.collectives import ReplicaGroup  # noqa: E402

import nki  # noqa: E402

RANKS = [2, 4, 8, 16]


def rng() -> np.random.Generator:
    return np.random.default_rng()


def staged(input: Any, out_shape: tuple[int, ...], body: Any) -> Any:
    """Copy `input` to a shared HBM src, run body(src, dst), return a copy of dst (as nki-library does)."""
    src = nl.ndarray(input.shape, dtype=input.dtype, buffer=nl.shared_hbm, name="src")
    dst = nl.ndarray(out_shape, dtype=input.dtype, buffer=nl.shared_hbm, name="dst")
    out = nl.ndarray(out_shape, dtype=input.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=src, src=input)
    body(src, dst)
    nisa.dma_copy(dst=out, src=dst)
    return out


@nki.jit
def all_reduce_kernel(input, replica_group, op):
    return staged(input, input.shape, lambda s, d: ncc.all_reduce([s], [d], replica_group, op))


@nki.jit
def all_gather_kernel(input, replica_group, n):
    shape = (input.shape[0] * n, input.shape[1])
    return staged(input, shape, lambda s, d: ncc.all_gather([s], [d], replica_group, collective_dim=0))


@nki.jit
def reduce_scatter_kernel(input, replica_group, n):
    shape = (input.shape[0] // n, input.shape[1])
    return staged(input, shape, lambda s, d: ncc.reduce_scatter([s], [d], replica_group, 0, nl.add))


@nki.jit
def all_to_all_kernel(input, replica_group):
    return staged(input, input.shape, lambda s, d: ncc.all_to_all([s], [d], replica_group, collective_dim=0))


@nki.jit
def sbuf_all_gather_kernel(input, replica_group, n):
    """SBUF collective along the free dim (dim 1)."""
    p, f = input.shape
    t = nl.ndarray((p, f), dtype=input.dtype, buffer=nl.sbuf)
    g = nl.ndarray((p, f * n), dtype=input.dtype, buffer=nl.sbuf)
    out = nl.ndarray((p, f * n), dtype=input.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=t, src=input)
    ncc.all_gather([t], [g], replica_group, collective_dim=1)
    nisa.dma_copy(dst=out, src=g)
    return out


def run(kernel: Any, rank_args: list[tuple[Any, ...]], mode: str = "functional", target: str = "trn2") -> Any:
    return tn.run_ranks(kernel, rank_args, target=target, mode=mode)


@pytest.mark.parametrize("n", RANKS)
@pytest.mark.parametrize("op", ["add", "maximum", "minimum"])
def test_all_reduce_every_rank(n: int, op: str) -> None:
    xs = [rng().standard_normal((8, 16)).astype(np.float32) for _ in range(n)]
    g = ReplicaGroup([list(range(n))])
    prof = run(all_reduce_kernel, [(x, g, getattr(nl, op)) for x in xs])
    want = getattr(np, op).reduce(np.stack(xs), axis=0)
    for out in prof.outputs:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_all_reduce_subgroups_reduce_apart() -> None:
    xs = [rng().standard_normal((4, 8)).astype(np.float32) for _ in range(4)]
    g = ReplicaGroup([[0, 2], [1, 3]])
    prof = run(all_reduce_kernel, [(x, g, nl.add) for x in xs])
    for r, out in enumerate(prof.outputs):
        np.testing.assert_allclose(out, xs[r % 2] + xs[r % 2 + 2], rtol=1e-6)


def test_all_reduce_bf16_rounds_once() -> None:
    import ml_dtypes

    xs = [rng().standard_normal((4, 8)).astype(ml_dtypes.bfloat16) for _ in range(4)]
    g = ReplicaGroup([[0, 1, 2, 3]])
    prof = run(all_reduce_kernel, [(x, g, nl.add) for x in xs])
    want = np.stack([x.astype(np.float32) for x in xs]).sum(0)
    for out in prof.outputs:
        np.testing.assert_allclose(out.astype(np.float32), want, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("n", RANKS)
def test_all_gather_every_rank(n: int) -> None:
    xs = [rng().standard_normal((4, 8)).astype(np.float32) for _ in range(n)]
    g = ReplicaGroup([list(range(n))])
    prof = run(all_gather_kernel, [(x, g, n) for x in xs])
    for out in prof.outputs:
        np.testing.assert_array_equal(out, np.concatenate(xs, axis=0))


def test_sbuf_all_gather_along_free_dim() -> None:
    xs = [rng().standard_normal((16, 8)).astype(np.float32) for _ in range(4)]
    g = ReplicaGroup([[0, 1, 2, 3]])
    prof = run(sbuf_all_gather_kernel, [(x, g, 4) for x in xs])
    for out in prof.outputs:
        np.testing.assert_array_equal(out, np.concatenate(xs, axis=1))


@pytest.mark.parametrize("n", RANKS)
def test_reduce_scatter_every_rank(n: int) -> None:
    xs = [rng().standard_normal((2 * n, 8)).astype(np.float32) for _ in range(n)]
    g = ReplicaGroup([list(range(n))])
    prof = run(reduce_scatter_kernel, [(x, g, n) for x in xs])
    total = np.stack(xs).astype(np.float64).sum(0)
    for r, out in enumerate(prof.outputs):
        np.testing.assert_allclose(out, total[2 * r : 2 * r + 2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", RANKS)
def test_all_to_all_every_rank(n: int) -> None:
    xs = [rng().standard_normal((n, 8)).astype(np.float32) for _ in range(n)]
    g = ReplicaGroup([list(range(n))])
    prof = run(all_to_all_kernel, [(x, g) for x in xs])
    for r, out in enumerate(prof.outputs):
        np.testing.assert_array_equal(out, np.stack([xs[j][r] for j in range(n)]))


def test_timing_mode_gives_the_same_timeline() -> None:
    xs = [rng().standard_normal((8, 16)).astype(np.float32) for _ in range(4)]
    g = ReplicaGroup([[0, 1, 2, 3]])
    f = run(all_reduce_kernel, [(x, g, nl.add) for x in xs])
    t = run(all_reduce_kernel, [(tn.TensorSpec(x.shape), g, nl.add) for x in xs], mode="timing")
    assert t.outputs[0].shape == (8, 16)
    for a, b in zip(f.ranks, t.ranks):
        np.testing.assert_array_equal(a.timeline.instr_end, b.timeline.instr_end)


def test_rank_id_is_each_ranks_own() -> None:
    @nki.jit
    def k(x):
        out = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
        t = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.memset(t, ncc.rank_id())
        nisa.dma_copy(dst=out, src=t)
        return out

    prof = run(k, [(np.zeros((1, 1), np.float32),) for _ in range(6)])
    assert [int(o[0, 0]) for o in prof.outputs] == list(range(6))


def test_mismatched_shapes_and_groups_are_user_errors() -> None:
    xs = [np.ones((4, 8), np.float32) for _ in range(2)]
    with pytest.raises(ShapeMismatchError, match="all_gather"):
        run(all_gather_kernel, [(x, ReplicaGroup([[0, 1]]), 3) for x in xs])
    with pytest.raises(UsageError, match="overlap"):
        ReplicaGroup([[0, 1], [1, 2]])
    with pytest.raises(UsageError, match=r"ranks 0\.\.1"):
        run(all_reduce_kernel, [(x, ReplicaGroup([[0, 1, 2]]), nl.add) for x in xs])
    with pytest.raises(UsageError, match="collective reduction"):
        run(all_reduce_kernel, [(x, ReplicaGroup([[0, 1]]), nl.multiply) for x in xs])


def test_a_rank_that_skips_the_collective_is_named() -> None:
    @nki.jit
    def k(x, g):
        s = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        d = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=s, src=x)
        if ncc.rank_id() != 1:
            ncc.all_reduce([s], [d], g, nl.add)
        return d

    x = np.ones((2, 2), np.float32)
    with pytest.raises(UsageError, match=r"rank 0 waits at all_reduce.*finished: rank 1") as info:
        run(k, [(x, ReplicaGroup([[0, 1, 2]])) for _ in range(3)])
    assert info.value.rule == "collective-mismatch"


def test_one_rank_launch_runs_a_collective_over_itself() -> None:
    x = rng().standard_normal((4, 8)).astype(np.float32)
    out = nki.simulate(all_reduce_kernel)(x, ReplicaGroup([[0]]), nl.add)
    np.testing.assert_array_equal(out, x)
    with pytest.raises(UsageError, match="run_ranks"):
        nki.simulate(all_reduce_kernel)(x, ReplicaGroup([[0, 1]]), nl.add)

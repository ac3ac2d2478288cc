"""The compiler-spill model (nki/spill.py, TRNSIM_SPILL=compiler): values, counts, cost, default error.

SBUF: a kernel loads N tiles of T bytes per partition where only K = capacity // T fit, then works on them in
reverse order. With least-recently-used victims the loads spill tiles 0..N-K-1 to HBM; the reverse pass finds
tiles N-1..N-K resident and refills tiles N-K-1..0, each refill spilling a tile already done with (its spill is a
dead store, dropped when the kernel's list of tiles dies). Closed form: N-K spills kept, N-K refills, N-K dropped.
PSUM: the same with blocks of a block tensor (one bank each) written before any is read.
Each case in functional and timing mode (the same instruction stream, the same timeline).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

import trnsim.nki

trnsim.nki.install_aliases()

import neuronxcc.nki.isa as lisa  # noqa: E402  (the legacy surface: nc_matmul returns its PSUM tile)

import trnsim.nki as nki  # noqa: E402
import trnsim.nki.isa as nisa  # noqa: E402
import trnsim.nki.language as nl  # noqa: E402
from trnsim.errors import CapacityError  # noqa: E402
from trnsim.nki import spill  # noqa: E402
from trnsim.sim.memory import SPILL_ENV  # noqa: E402

TARGET = "trn2"
SPEC = trnsim.nki.get_target_spec(TARGET)
P = SPEC.core.sbuf.partitions
SBUF_BYTES = SPEC.core.sbuf.partition_bytes
F = 7168  # fp32 per partition per tile: 28 KiB
TILE_BYTES = F * 4
K = SBUF_BYTES // TILE_BYTES  # tiles that fit
N = K + 3  # tiles the kernel keeps live
MODES = ["functional", "timing"]

BANKS = SPEC.core.psum.banks
BLOCKS = BANKS + 4
BN = SPEC.core.psum.bank_bytes // 4  # fp32 per bank


@nki.jit
def hoard_sbuf(x):
    """out[i] = 2 * x[i] + 1, with all N tiles loaded before any is computed on (reverse order)."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    tiles = []
    for i in range(x.shape[0]):
        t = nl.ndarray((P, F), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[i])
        tiles.append(t)
    for i in reversed(range(x.shape[0])):
        nisa.tensor_scalar(dst=tiles[i], data=tiles[i], op0=nl.multiply, operand0=2.0, op1=nl.add, operand1=1.0)
        nisa.dma_copy(dst=out[i], src=tiles[i])
    return out


@nki.jit
def hoard_psum(a, b):
    """out[:, i] = a.T @ b[:, i] per bank-sized block, all blocks written before any is read."""
    out = nl.ndarray((P, BLOCKS * BN), dtype=nl.float32, buffer=nl.shared_hbm)
    a_sb = nl.load(a)
    ps = nl.ndarray((BLOCKS, nl.par_dim(P), BN), dtype=nl.float32, buffer=nl.psum, name="ps")
    for i in nl.affine_range(BLOCKS):
        ps[i] = lisa.nc_matmul(a_sb, nl.load(b[:, nl.ds(i * BN, BN)]))
    for i in nl.affine_range(BLOCKS):
        k = BLOCKS - 1 - i
        res = nl.ndarray((nl.par_dim(P), BN), dtype=nl.float32, buffer=nl.sbuf)
        res[...] = nl.copy(ps[k])
        nl.store(out[:, nl.ds(k * BN, BN)], value=res)
    return out


def run(kernel: Any, mode: str, *args: np.ndarray, target: Any = TARGET) -> Any:
    return trnsim.nki.profile(kernel, target=target, mode=mode)(*args)  # type: ignore[arg-type]


def labels(prof: Any) -> Counter[str]:
    return Counter(i.label for i in prof.instructions if i.label.startswith(("spill", "refill")))


def queue_time(prof: Any, label: str) -> float:
    tl = prof.timeline
    ids = {k for k, i in enumerate(prof.instructions) if i.label == label}
    keep = np.isin(tl.slice_instr, list(ids))
    return float((tl.slice_end[keep] - tl.slice_start[keep]).sum())


def vector_time(prof: Any) -> float:
    tl = prof.timeline
    ids = [k for k, i in enumerate(prof.instructions) if i.engine.key == "vector"]
    keep = np.isin(tl.slice_instr, ids)
    return float((tl.slice_end[keep] - tl.slice_start[keep]).sum())


@pytest.fixture
def spilling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPILL_ENV, "compiler")


def test_default_is_an_error_that_says_how_to_spill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPILL_ENV, raising=False)
    x = np.random.default_rng().standard_normal((N, P, F)).astype(np.float32)
    with pytest.raises(CapacityError) as err:
        run(hoard_sbuf, "timing", x)
    msg = str(err.value)
    assert "SBUF capacity exceeded" in msg and f"{SPILL_ENV}=compiler" in msg and "test_spill_d.py" in msg


def test_unknown_mode_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPILL_ENV, "sometimes")
    x = np.random.default_rng().standard_normal((2, P, F)).astype(np.float32)
    with pytest.raises(trnsim.errors.UsageError, match="not a spill mode") as err:
        run(hoard_sbuf, "timing", x)
    assert "test_spill_d.py" in str(err.value)


@pytest.mark.usefixtures("spilling")
def test_sbuf_spill_values_counts_and_cost() -> None:
    x = np.random.default_rng().standard_normal((N, P, F)).astype(np.float32)
    spilled = N - K
    tile_total = P * TILE_BYTES
    profs = {m: run(hoard_sbuf, m, x) for m in MODES}
    np.testing.assert_array_equal(profs["functional"].outputs, np.float32(2.0) * x + np.float32(1.0))
    for prof in profs.values():
        assert labels(prof) == {"spill": spilled, "refill": spilled, "spill (dropped)": spilled}
        for ins in prof.instructions:
            if ins.label in ("spill", "refill"):
                assert ins.dma_bytes == tile_total and ins.engine.key == "dma"
        warned = [w for w in prof.warnings if f"{SPILL_ENV}=compiler" in w]
        assert warned and all("test_spill_d.py" in w for w in warned)
        assert any(f"{spilled} refill(s) HBM -> SBUF, {spilled * tile_total} B" in w for w in warned)
        # a spill frees the bytes the next load writes: that load starts once the spill has read them
        tl, instrs = prof.timeline, prof.instructions
        for k, ins in enumerate(instrs):
            if ins.label == "spill":
                assert instrs[k + 1].label == "dma hbm->sbuf" and tl.instr_start[k + 1] >= tl.instr_end[k]
    func, timing = profs["functional"].timeline, profs["timing"].timeline
    np.testing.assert_array_equal(func.instr_start, timing.instr_start)
    np.testing.assert_array_equal(func.instr_end, timing.instr_end)
    # the same kernel where SBUF is large enough: no spills, and it finishes earlier by at least the spill and
    # refill transfers' DMA queue time spread over every queue (the kernel is DMA-bound: loads and stores)
    big = SPEC.model_copy(
        update={
            "core": SPEC.core.model_copy(
                update={"sbuf": SPEC.core.sbuf.model_copy(update={"partition_bytes": N * TILE_BYTES})}
            )
        }
    )
    fits = run(hoard_sbuf, "timing", x, target=big)
    assert not labels(fits)
    prof = profs["timing"]
    extra = (queue_time(prof, "spill") + queue_time(prof, "refill")) / SPEC.core.dma.queues
    assert prof.timeline.instr_end.max() >= fits.timeline.instr_end.max() + extra


@pytest.mark.usefixtures("spilling")
def test_psum_spill_values_counts_and_dependencies() -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((P, P)).astype(np.float32)
    b = rng.standard_normal((P, BLOCKS * BN)).astype(np.float32)
    profs = {m: run(hoard_psum, m, a, b) for m in MODES}
    np.testing.assert_allclose(profs["functional"].outputs, a.T @ b, rtol=1e-4, atol=1e-3)
    over = BLOCKS - BANKS
    bank_total = P * BN * 4
    for prof in profs.values():
        # the writes spill blocks 0..over-1 (each new matmul result needs a bank); reading in reverse finds
        # the last BANKS blocks resident and refills the first `over`, each refill spilling a block already read
        assert labels(prof) == {"spill": over, "refill": over, "spill (dropped)": over}
        instrs = prof.instructions
        for k, ins in enumerate(instrs):
            if ins.label in ("spill", "refill"):
                assert ins.engine.key == "vector" and ins.touches_psum
                assert ins.label != "spill" or k + 1 < len(instrs)
        tl = prof.timeline
        spill_of = {instrs[k].writes[0][0]: k for k, i in enumerate(instrs) if i.label == "spill"}
        refills = [k for k, i in enumerate(instrs) if i.label == "refill"]
        for r in refills:  # a refill reads its block's SBUF copy: it starts after that copy's spill is done
            (s,) = [spill_of[reg[0]] for reg in instrs[r].reads if reg[0] in spill_of]
            assert s < r and tl.instr_start[r] >= tl.instr_end[s]
        assert any(f"{over} refill(s) SBUF -> PSUM, {over * bank_total} B" in w for w in prof.warnings)
    np.testing.assert_array_equal(profs["functional"].timeline.instr_end, profs["timing"].timeline.instr_end)
    # with PSUM large enough (a bank per block and one for the fresh matmul result) nothing spills; the spills
    # and refills add exactly their own VectorE time, and the kernel (bound by its loads) is not faster for them
    psum = SPEC.core.psum.model_copy(update={"banks": BLOCKS + 1})
    fits = run(
        hoard_psum, "timing", a, b, target=SPEC.model_copy(update={"core": SPEC.core.model_copy(update={"psum": psum})})
    )
    assert not labels(fits)
    prof = profs["timing"]
    added = queue_time(prof, "spill") + queue_time(prof, "refill")
    assert added > 0 and vector_time(prof) - vector_time(fits) == pytest.approx(added)
    assert prof.timeline.instr_end.max() >= fits.timeline.instr_end.max()


def test_summary_counts_match_the_stream(spilling: None) -> None:
    x = np.random.default_rng().standard_normal((N, P, F)).astype(np.float32)
    machine_out: dict[str, int] = {}

    @nki.jit
    def probe(x):
        out = hoard_sbuf.fn(x)
        machine_out.update(spill.summary(trnsim.nki.context.current().machine))
        return out

    run(probe, "timing", x)
    moved = (N - K) * P * TILE_BYTES
    # hoard_sbuf's list of tiles died when it returned: the reverse pass's spills are dead stores, dropped
    assert machine_out == {
        "spills": N - K,
        "spill_bytes": moved,
        "refills": N - K,
        "refill_bytes": moved,
        "dropped": N - K,
        "dropped_bytes": moved,
    }


@nki.jit
def two_big_operands(x):
    """One copy whose source and destination together need more than SBUF: no spill can make room."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    src = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=src, src=x)
    dst = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)  # spills src (its bytes are needed here)
    nisa.tensor_copy(dst=dst, src=src)  # src's refill can spill nothing: dst is the other operand
    nisa.dma_copy(dst=out, src=dst)
    return out


@pytest.mark.usefixtures("spilling")
def test_operands_that_cannot_fit_together_are_still_an_error() -> None:
    free = (SBUF_BYTES // 2 + 4096) // 4  # fp32 per partition: two tiles need more than SBUF
    x = np.random.default_rng().standard_normal((P, free)).astype(np.float32)
    with pytest.raises(CapacityError, match="nothing left to spill") as err:
        run(two_big_operands, "timing", x)
    assert "test_spill_d.py" in str(err.value)


@nki.jit
def interleaved_accumulators(a, b):
    """BANKS + 1 PSUM accumulators, each summing two matmuls, the groups interleaved: one is always spilled
    while its accumulation group is open, and refilled to go on accumulating."""
    n_acc = BANKS + 1
    out = nl.ndarray((P, n_acc * BN), dtype=nl.float32, buffer=nl.shared_hbm)
    a_sb = nl.ndarray((P, 2 * P), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=a_sb, src=a)
    b_sb = nl.ndarray((P, 2 * n_acc * BN), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=b_sb, src=b)
    accs = [nl.ndarray((P, BN), dtype=nl.float32, buffer=nl.psum) for _ in range(n_acc)]
    for k in range(2):
        for j in range(n_acc):
            col = (k * n_acc + j) * BN
            nisa.nc_matmul(dst=accs[j], stationary=a_sb[:, k * P : (k + 1) * P], moving=b_sb[:, col : col + BN])
    for j in range(n_acc):
        res = nl.ndarray((P, BN), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=res, src=accs[j])
        nisa.dma_copy(dst=out[:, j * BN : (j + 1) * BN], src=res)
    return out


@pytest.mark.usefixtures("spilling")
def test_a_spilled_psum_accumulation_group_goes_on_accumulating() -> None:
    rng = np.random.default_rng()
    n_acc = BANKS + 1
    a = rng.standard_normal((P, 2 * P)).astype(np.float32)
    b = rng.standard_normal((P, 2 * n_acc * BN)).astype(np.float32)
    prof = run(interleaved_accumulators, "functional", a, b)
    bs = b.reshape(P, 2, n_acc, BN)
    want = np.concatenate([a[:, :P].T @ bs[:, 0, j] + a[:, P:].T @ bs[:, 1, j] for j in range(n_acc)], axis=1)
    np.testing.assert_allclose(prof.outputs, want, rtol=1e-4, atol=1e-3)
    assert labels(prof)["refill"] >= 1

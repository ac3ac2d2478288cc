"""New nki.isa instructions against numpy, with their documented cycle counts and error rules:
tensor_scalar_reduce (VectorE, max(MIN_II, N) + MIN_II), max8 (VectorE, N), activation_reduce (the
activation record with its reduction), get_nc_sub_version; current and legacy surfaces.

Cycle formulas are trainium.md §3.6, computed here from the preset's MIN_II.
"""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
import trnsim.nki.legacy_isa as lisa
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.isa.opcodes import Opcode

SPEC = nki.get_target_spec("trn2")
MIN_II = SPEC.core.vector.min_ii_cycles


@nki.jit
def scale_and_reduce(x, scale, reduce_op, cmd, init):
    t = nl.load(x)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    r = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=r, value=2.0)
    nisa.tensor_scalar_reduce(
        dst=y,
        data=t,
        op0=nl.multiply,
        operand0=scale,
        reduce_op=reduce_op,
        reduce_res=r,
        reduce_cmd=cmd,
        reduce_init=init,
    )
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    red = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    nl.store(red, r)
    return out, red


@pytest.mark.parametrize(
    ("reduce_op", "ref"), [(nl.add, np.sum), (nl.maximum, np.max), (nl.minimum, np.min), (nl.multiply, np.prod)]
)
def test_tensor_scalar_reduce_matches_numpy_and_its_cycle_formula(
    rng: np.random.Generator, reduce_op: object, ref: object
) -> None:
    p, n = int(rng.integers(1, 129)), int(rng.integers(1, 300))
    x = rng.uniform(0.5, 1.5, size=(p, n)).astype(np.float32)
    scale = float(rng.uniform(0.5, 1.5))
    prof = nki.profile(scale_and_reduce, target="trn2")(x, scale, reduce_op, nisa.reduce_cmd.reset_reduce, None)
    out, red = prof.outputs
    want = x * np.float32(scale)
    np.testing.assert_allclose(out, want, rtol=1e-6)
    np.testing.assert_allclose(red[:, 0], ref(want, axis=1), rtol=1e-4)  # type: ignore[operator]
    (ins,) = [i for i in prof.instructions if i.opcode is Opcode.TENSOR_SCALAR_REDUCE]
    assert ins.cycles == max(MIN_II, n) + MIN_II


def test_tensor_scalar_reduce_accumulator_commands(rng: np.random.Generator) -> None:
    x = rng.standard_normal((16, 32)).astype(np.float32)
    _, kept = nki.simulate(scale_and_reduce)(x, 1.0, nl.add, nisa.reduce_cmd.reduce, None)
    np.testing.assert_allclose(kept[:, 0], 2.0 + x.sum(axis=1), rtol=1e-5, atol=1e-5)
    _, loaded = nki.simulate(scale_and_reduce)(x, 1.0, nl.add, nisa.reduce_cmd.load_reduce, 5.0)
    np.testing.assert_allclose(loaded[:, 0], 5.0 + x.sum(axis=1), rtol=1e-5, atol=1e-5)


@nki.jit
def top8(x, legacy):
    t = nl.load(x)
    if legacy:
        m = lisa.max8(src=t)
    else:
        m = nl.ndarray((x.shape[0], 8), dtype=x.dtype, buffer=nl.sbuf)
        nisa.max8(dst=m, src=t)
    out = nl.ndarray((x.shape[0], 8), dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, m)
    return out


@pytest.mark.parametrize("legacy", [False, True])
def test_max8_returns_the_eight_largest_descending(rng: np.random.Generator, legacy: bool) -> None:
    p, n = int(rng.integers(1, 129)), int(rng.integers(8, 1000))
    x = rng.standard_normal((p, n)).astype(np.float32)
    prof = nki.profile(top8, target="trn2")(x, legacy)
    np.testing.assert_array_equal(prof.outputs, -np.sort(-x, axis=1)[:, :8])
    (ins,) = [i for i in prof.instructions if i.opcode is Opcode.MAX8]
    assert ins.cycles == n  # N cycles, no MIN_II floor (§3.6)


@nki.jit
def act_reduce(x):
    t = nl.load(x)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    r = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.activation_reduce(dst=y, op=nl.exp, data=t, reduce_op=nl.add, reduce_res=r, scale=0.5)
    out = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, r)
    return out, nisa.get_nc_sub_version()


def test_activation_reduce_sums_the_activation(rng: np.random.Generator) -> None:
    x = rng.standard_normal((32, 64)).astype(np.float32)
    red, sub = nki.simulate(act_reduce)(x)
    np.testing.assert_allclose(red[:, 0], np.exp(0.5 * x).sum(axis=1), rtol=1e-4)
    assert sub == 0


@nki.jit
def bad(x, which):
    t = nl.load(x)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    if which == "max8-few":
        nisa.max8(dst=nl.ndarray((x.shape[0], 8), dtype=nl.float32, buffer=nl.sbuf), src=t[:, 0:4])
    elif which == "max8-dst":
        nisa.max8(dst=nl.ndarray((x.shape[0], 4), dtype=nl.float32, buffer=nl.sbuf), src=t)
    elif which == "bitvec-op0":
        nisa.tensor_scalar_reduce(dst=y, data=t, op0=nl.bitwise_and, operand0=1, reduce_op=nl.add)
    elif which == "reduce-shape":
        r = nl.ndarray((x.shape[0], 2), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(dst=y, data=t, op0=nl.add, operand0=1.0, reduce_op=nl.add, reduce_res=r)
    elif which == "init-without-load":
        nisa.tensor_scalar_reduce(dst=y, data=t, op0=nl.add, operand0=1.0, reduce_op=nl.add, reduce_init=1.0)
    return x


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("max8-few", TileShapeError, "8..16384 elements"),
        ("max8-dst", ShapeMismatchError, "dst must be"),
        ("bitvec-op0", UsageError, "arithmetic op"),
        ("reduce-shape", UsageError, "one element per partition"),
        ("init-without-load", UsageError, "load_reduce"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_rules_are_clear_errors_in_both_modes(which: str, error: type[Exception], words: str, mode: str) -> None:
    x = np.zeros((16, 32), np.float32)
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn2", mode=mode)(x, which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_isa_fused.py" in str(info.value)


@nki.jit
def predicated(x, pred, reverse):
    d = nl.load(x)
    p = nl.load(pred)
    nisa.tensor_copy_predicated(dst=d, src=7.0, predicate=p, reverse_pred=reverse)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, d)
    return out


@pytest.mark.parametrize("reverse", [False, True])
def test_tensor_copy_predicated_copies_where_the_predicate_holds(rng: np.random.Generator, reverse: bool) -> None:
    p, n = int(rng.integers(1, 129)), int(rng.integers(1, 200))
    x = rng.standard_normal((p, n)).astype(np.float32)
    pred = rng.integers(0, 2, size=(p, n)).astype(np.uint8)
    prof = nki.profile(predicated, target="trn2")(x, pred, reverse)
    take = (pred == 0) if reverse else (pred != 0)
    np.testing.assert_array_equal(prof.outputs, np.where(take, np.float32(7.0), x))
    (ins,) = [i for i in prof.instructions if i.opcode is Opcode.TENSOR_COPY_PREDICATED]
    assert ins.cycles == max(MIN_II, n)  # §3.6


@nki.jit
def nonzeros(x, offset):
    t = nl.load(x)
    d = nl.zeros((x.shape[0], x.shape[1] + 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.nonzero_with_count(dst=d, src=t, index_offset=offset, padding_val=-1)
    out = nl.ndarray((x.shape[0], x.shape[1] + 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, d)
    return out


def test_nonzero_with_count_per_gpsimd_core(rng: np.random.Generator) -> None:
    p, n = 128, int(rng.integers(1, 64))
    x = (rng.uniform(size=(p, n)) < 0.4).astype(np.float32) * rng.standard_normal((p, n)).astype(np.float32)
    offset = int(rng.integers(0, 100))
    prof = nki.profile(nonzeros, target="trn2")(x, offset)
    want = np.zeros((p, n + 1), np.float32)  # partitions other than 0, 16, ... keep the memset zeros
    for r in range(0, p, 16):
        idx = np.flatnonzero(x[r])
        want[r] = -1
        want[r, : idx.size] = idx + offset
        want[r, n] = idx.size
    np.testing.assert_array_equal(prof.outputs, want)
    (ins,) = [i for i in prof.instructions if i.opcode is Opcode.NONZERO_WITH_COUNT]
    c = SPEC.core.gpsimd
    assert ins.cycles == c.start_cycles + n  # GpSimd start-up + N (§3.6)


@nki.jit
def bad_data_moves(x, which):
    t = nl.load(x)
    if which == "pred-dtype":
        nisa.tensor_copy_predicated(dst=t, src=1.0, predicate=t)
    elif which == "nonzero-shape":
        nisa.nonzero_with_count(dst=nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf), src=t)
    elif which == "nonzero-trn1":
        nisa.nonzero_with_count(dst=nl.ndarray((x.shape[0], x.shape[1] + 1), nl.float32, buffer=nl.sbuf), src=t)
    return x


@pytest.mark.parametrize(
    ("which", "target", "error", "words"),
    [
        ("pred-dtype", "trn2", DtypeError, "predicate must be uint8"),
        ("nonzero-shape", "trn2", ShapeMismatchError, "one more element"),
        ("nonzero-trn1", "trn1", UsageError, "NeuronCore-v3"),
    ],
)
def test_data_move_rules(which: str, target: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad_data_moves, target=target)(np.zeros((16, 8), np.float32), which)
    assert words in str(info.value)


@nki.jit
def shuffle(x, mask):
    t = nl.load(x)
    d = nl.zeros(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.nc_stream_shuffle(dst=d, src=t, shuffle_mask=mask)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, d)
    return out


def test_nc_stream_shuffle_moves_partitions_within_each_quadrant(rng: np.random.Generator) -> None:
    quadrants, n = int(rng.integers(1, 5)), int(rng.integers(1, 100))
    x = rng.standard_normal((32 * quadrants, n)).astype(np.float32)
    mask = [int(m) for m in rng.integers(0, 32, size=32)]
    mask[int(rng.integers(0, 32))] = 255  # that output partition keeps its (zero) value
    prof = nki.profile(shuffle, target="trn2")(x, mask)
    want = np.zeros_like(x)
    for i in range(x.shape[0]):
        if mask[i % 32] != 255:
            want[i] = x[(i // 32) * 32 + mask[i % 32]]
    np.testing.assert_array_equal(prof.outputs, want)
    (ins,) = [i for i in prof.instructions if i.opcode is Opcode.NC_STREAM_SHUFFLE]
    assert ins.cycles == max(MIN_II, n)
    with pytest.raises(UsageError, match="32 partition indices"):
        nki.simulate(shuffle)(x, mask[:31])
    with pytest.raises(ShapeMismatchError, match="reads input partition"):
        nki.simulate(shuffle)(x[:8], [31] * 32)


@nki.jit
def find_and_replace(x, vals, idx_dtype):
    t = nl.load(x)
    v = nl.load(vals)
    found = nl.ndarray((x.shape[0], 8), dtype=idx_dtype, buffer=nl.sbuf)
    nisa.nc_find_index8(dst=found, data=t, vals=v)
    replaced = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    where = nl.ndarray((x.shape[0], 8), dtype=idx_dtype, buffer=nl.sbuf)
    nisa.nc_match_replace8(dst=replaced, data=t, vals=v, imm=-100.0, dst_idx=where)
    outs = [nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm) for a in (found, replaced, where)]
    for o, a in zip(outs, (found, replaced, where)):
        nl.store(o, a)
    return tuple(outs)


def pair(row: np.ndarray, vals: np.ndarray, order: list[int]) -> list[int]:
    """Reference matching written out again: each val takes the first position no earlier val took."""
    taken: list[int] = []
    got = [-1] * 8
    for i in order:
        for j, v in enumerate(row):
            if v == vals[i] and j not in taken:
                got[i] = j
                taken.append(j)
                break
    return got


@pytest.mark.parametrize("idx_dtype", [nl.uint32, nl.uint16])
def test_find_index8_and_match_replace8(rng: np.random.Generator, idx_dtype: object) -> None:
    p, n = int(rng.integers(1, 33)), int(rng.integers(8, 64))
    x = rng.integers(0, 6, size=(p, n)).astype(np.float32)  # small alphabet: duplicates and misses happen
    vals = rng.integers(0, 8, size=(p, 8)).astype(np.float32)
    prof = nki.profile(find_and_replace, target="trn2")(x, vals, idx_dtype)
    found, replaced, where = prof.outputs
    none = np.iinfo(np.dtype(idx_dtype)).max  # type: ignore[arg-type]
    want_replaced = x.copy()
    for r in range(p):
        asc, desc = pair(x[r], vals[r], list(range(8))), pair(x[r], vals[r], list(range(7, -1, -1)))
        np.testing.assert_array_equal(found[r], [none if j < 0 else j for j in asc])
        np.testing.assert_array_equal(where[r], [none if j < 0 else j for j in desc])
        want_replaced[r, [j for j in desc if j >= 0]] = -100.0
    np.testing.assert_array_equal(replaced, want_replaced)
    (f,) = [i for i in prof.instructions if i.opcode is Opcode.NC_FIND_INDEX8]
    (m,) = [i for i in prof.instructions if i.opcode is Opcode.NC_MATCH_REPLACE8]
    assert f.cycles == n and m.cycles == min(MIN_II, n)  # §3.6, match_replace8's formula as the table writes it
    with pytest.raises(DtypeError, match="uint16 or uint32"):
        nki.simulate(find_and_replace)(x, vals, nl.float32)


@nki.jit
def transposed(x, axes, dge=nisa.dge_mode.unknown):
    perm = axes if axes is not None else {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}[len(x.shape)]
    out = nl.ndarray(tuple(x.shape[a] for a in perm), dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_transpose(dst=out, src=x, axes=axes, dge_mode=dge)
    return out


@pytest.mark.parametrize("shape", [(16, 64), (4, 8, 32), (2, 3, 4, 16)])
def test_dma_transpose_permutes_like_numpy(rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    x = rng.standard_normal(shape).astype(nl.bfloat16)
    perm = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}[len(shape)]
    prof = nki.profile(transposed, target="trn2")(x, None)
    np.testing.assert_array_equal(prof.outputs, np.transpose(x, perm))
    (dma,) = [i for i in prof.instructions if i.opcode is Opcode.DMA_COPY]
    assert dma.dma_row_bytes == 2  # the transposing walk moves one element per descriptor
    wide = x.astype(np.float32)
    np.testing.assert_array_equal(nki.simulate(transposed)(wide, None), np.transpose(wide, perm))
    with pytest.raises(UsageError, match="2-byte"):
        nki.simulate(transposed)(wide, None, nisa.dge_mode.hwdge)
    with pytest.raises(UsageError, match="permute"):
        nki.simulate(transposed)(x, (0, 0, *perm[2:]))

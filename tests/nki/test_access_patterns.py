"""Access-pattern facts that feed the cost model: strides, contiguous runs, scalar operands."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError
from trnsim.isa.opcodes import Opcode


@nki.jit
def reduce_into_column(x):
    t = nl.load(x)
    stats = nl.ndarray((x.shape[0], 16), nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=stats, value=0.0)
    nisa.tensor_reduce(dst=stats[:, 3:4], op=nl.add, data=t, axis=1, keepdims=True)
    out = nl.ndarray((x.shape[0], 16), nl.float32, buffer=nl.shared_hbm)
    nl.store(out, stats)
    return out


def test_writing_one_column_of_a_tile_is_not_a_strided_access(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 2048)).astype(np.float32)
    prof = nki.profile(reduce_into_column, target="trn2")(x)
    np.testing.assert_allclose(prof.outputs[:, 3], x.sum(axis=1), rtol=1e-4, atol=1e-3)
    (red,) = [i for i in prof.instructions if i.opcode is Opcode.TENSOR_REDUCE]
    assert red.cycles == 2048  # N cycles for fp32 add (trainium.md §3.6), no 2x stride penalty


@nki.jit
def gather_columns(x, step):
    i_p = nl.arange(x.shape[0])[:, None]
    i_f = nl.arange(x.shape[1] // step)[None, :]
    t = nl.load(x[i_p, i_f * step])
    out = nl.ndarray((x.shape[0], x.shape[1] // step), x.dtype, buffer=nl.shared_hbm)
    nl.store(out, t)
    return out


@pytest.mark.parametrize("step", [1, 4])
def test_strided_index_expressions_make_short_dma_runs(rng: np.random.Generator, step: int) -> None:
    x = rng.standard_normal((128, 2048)).astype(np.float32)
    prof = nki.profile(gather_columns, target="trn2")(x, step)
    np.testing.assert_array_equal(prof.outputs, x[:, ::step])
    load = prof.instructions[0]
    assert load.dma_row_bytes == (2048 * 4 if step == 1 else 4)


@nki.jit
def exp_with_scalar_bias(x, bias):
    t = nl.load(x)
    y = nl.ndarray(x.shape, nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=y, op=nl.exp, data=t, bias=bias, scale=0.5)
    out = nl.ndarray(x.shape, nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


def test_activation_takes_a_scalar_bias(rng: np.random.Generator) -> None:
    x = rng.standard_normal((64, 100)).astype(np.float32)
    out = nki.simulate(exp_with_scalar_bias)(x, -0.25)
    np.testing.assert_allclose(out, np.exp(0.5 * x - 0.25), rtol=1e-5)
    with pytest.raises(UsageError, match="scalar bias needs NeuronCore-v3"):
        nki.simulate(exp_with_scalar_bias, target="trn1")(x, -0.25)

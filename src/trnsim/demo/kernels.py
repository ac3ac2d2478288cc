"""Hand-written NKI kernels (current API) that double as examples of the language and as test fixtures.

`trnsim kernel src/trnsim/demo/kernels.py:tiled_matmul --arg ...` runs one from the command line.
"""

from __future__ import annotations

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl


@nki.jit
def tiled_matmul(a_t, b):
    """out[M, N] = a_t.T @ b with a_t [K, M], b [K, N]: K tiles accumulate in one PSUM bank."""
    k_dim, m_dim = a_t.shape
    n_dim = b.shape[1]
    out = nl.ndarray((m_dim, n_dim), nl.float32, buffer=nl.shared_hbm)
    for m in nl.affine_range(m_dim // 128):
        for n in nl.affine_range(n_dim // 512):
            acc = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(k_dim // 128):
                lhs = nl.ndarray((128, 128), a_t.dtype, buffer=nl.sbuf)
                rhs = nl.ndarray((128, 512), b.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=lhs, src=a_t[k * 128 : (k + 1) * 128, m * 128 : (m + 1) * 128])
                nisa.dma_copy(dst=rhs, src=b[k * 128 : (k + 1) * 128, n * 512 : (n + 1) * 512])
                nisa.nc_matmul(acc, lhs, rhs)
            res = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(dst=res, src=acc)
            nisa.dma_copy(dst=out[m * 128 : (m + 1) * 128, n * 512 : (n + 1) * 512], src=res)
    return out


@nki.jit
def softmax_rows(x):
    """Numerically stable softmax over the last axis, 128 rows per tile."""
    rows, cols = x.shape
    out = nl.ndarray((rows, cols), x.dtype, buffer=nl.shared_hbm)
    for r in nl.affine_range(rows // 128):
        t = nl.load(x[r * 128 : (r + 1) * 128, :])
        neg_max = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=neg_max, op=nl.maximum, data=t, axis=1, negate=True, keepdims=True)
        e = nl.ndarray((128, cols), nl.float32, buffer=nl.sbuf)
        total = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=e, op=nl.exp, data=t, bias=neg_max, reduce_op=nl.add, reduce_res=total)
        inv = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=inv, data=total)
        y = nl.ndarray((128, cols), x.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=y, data=e, op0=nl.multiply, operand0=inv)
        nl.store(out[r * 128 : (r + 1) * 128, :], y)
    return out


@nki.jit
def tensor_add(a, b):
    """SPMD: each program adds one 128-row block; launch as tensor_add[grid]."""
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    i = nl.program_id(0)
    rows = slice(i * 128, (i + 1) * 128)
    ta = nl.load(a[rows, :])
    tb = nl.load(b[rows, :])
    c = nl.ndarray(ta.shape, a.dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=c, data1=ta, data2=tb, op=nl.add)
    nl.store(out[rows, :], c)
    return out

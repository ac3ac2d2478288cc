"""Flash attention with transposed scores: P^T comes straight out of exp, with no TensorE transposes of P
and no copies of P^T out of PSUM (attention.py picks it where TensorE has room and VectorE / ScalarE do not,
e.g. NeuronCore-v2, whose VectorE and ScalarE share one PSUM port).

Per unit (128 queries x up to 512 keys), next to the scores S = Q K^T that the row max still reads:
  small op  the running max m kept as bf16 -m (the max is read as bf16, so it is exact in bf16), and
            D = diag(-m) [queries, queries] = identity x -m
  TensorE   per 128-key block: S^T = K Q^T (K^T stationary, Q^T moving), then ones^T D (ones stationary, D
            moving) adds -m of each query to its column, and on the causal diagonal the transposed mask
  ScalarE   P^T = exp(scale * (S^T - m)) from PSUM into SBUF: the P V stationary as it is
So TensorE does S, S^T, the bias and P V (4 x 512 columns per block instead of 3) and ScalarE / VectorE
read PSUM for the max, exp and the O rescale only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import cdiv, pmax
from trnsim.kernels._flash_tiles import KV, MASK_VALUE, Consts, Plan, QTile
from trnsim.kernels._online_softmax import OnlineSoftmax


@dataclass
class TransposedConsts:
    """What the transposed scores add to the identity and mask: ones (the bias matmul's stationary) and the
    causal mask in [key, query] layout (MASK_VALUE where key > query)."""

    ones: Any  # [128, 128] bf16
    mask_t: Any  # [128, 128] bf16


def transposed_constants(p: int) -> TransposedConsts:
    ones = nl.ndarray((p, p), nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(dst=ones, value=1.0)
    zeros = nl.ndarray((p, p), nl.bfloat16, buffer=nl.sbuf)
    nisa.memset(dst=zeros, value=0.0)
    mask_t = nl.ndarray((p, p), nl.bfloat16, buffer=nl.sbuf)
    # value = column (query) - partition (key): keep 0 where the key is not in the query's future
    nisa.affine_select(
        dst=mask_t,
        pattern=[[1, p]],
        channel_multiplier=-1,
        on_true_tile=zeros,
        on_false_value=MASK_VALUE,
        cmp_op=nl.greater_equal,
    )
    return TransposedConsts(ones, mask_t)


class TransposedSoftmax(OnlineSoftmax):
    """The online softmax with the running max kept unscaled, as bf16 -m, so diag(-m) in bf16 is exact and
    the bias matmul adds exactly the shift that alpha and the row sums assume."""

    def running_max(self, neg_max: Any) -> tuple[Any, Any]:
        """-m_new = min(-m_old, -max) in bf16; alpha = e ** (scale * (-m_new + m_old)). Returns (alpha, -m_new)."""
        rows = self.rows
        r_old = self.r
        r_new = nl.ndarray((pmax(), 1), nl.bfloat16, buffer=nl.sbuf)
        if r_old is None:
            nisa.tensor_copy(dst=r_new[:rows], src=neg_max, engine=self.engine)
        else:
            nisa.tensor_scalar(
                dst=r_new[:rows], data=neg_max, op0=nl.minimum, operand0=r_old[:rows], engine=self.engine
            )
        self.r = r_new
        alpha = None
        if r_old is not None:
            alpha = self._vec()
            nisa.tensor_scalar(
                dst=alpha[:rows],
                data=r_old[:rows],
                op0=nl.subtract,
                operand0=r_new[:rows],
                reverse0=True,
                op1=nl.power,
                operand1=math.exp(self.scale),
                reverse1=True,
                engine=self.engine,
            )
        return alpha, r_new

    def bias_matrix(self, r_new: Any, identity: Any) -> Any:
        """diag(-m) [queries, queries] bf16, the bias matmul's moving."""
        rows = self.rows
        diag = nl.ndarray((pmax(), pmax()), nl.bfloat16, buffer=nl.sbuf)
        nisa.tensor_scalar(
            dst=diag[:rows, :rows],
            data=identity[:rows, :rows],
            op0=nl.multiply,
            operand0=r_new[:rows],
            engine=self.engine,
        )
        return diag

    def exp_transposed(self, st: Any, widths: list[int], dtype: Any) -> Any:
        """ScalarE: P^T = exp(scale * (S^T - m)) per 128-key block, PSUM -> SBUF in `dtype`."""
        p, rows = pmax(), self.rows
        pt = nl.ndarray((p, len(widths) * p), dtype, buffer=nl.sbuf)
        full = rows == p and all(wk == p for wk in widths)
        pieces = [(p, 0, len(widths) * p)] if full else [(wk, j * p, rows) for j, wk in enumerate(widths)]
        for wk, c0, width in pieces:
            nisa.activation(dst=pt[:wk, c0 : c0 + width], op=nl.exp, data=st[:wk, c0 : c0 + width], scale=self.scale)
        return pt


def scores_transposed(
    plan: Plan, qt: QTile, kv: KV, consts: Consts, tconsts: TransposedConsts, diag: Any, span: tuple[int, int]
) -> tuple[Any, list[int]]:
    """TensorE: S^T - m (and the causal mask) per 128-key block of keys [k_lo, k_hi), side by side in one PSUM
    bank [keys, blocks x queries]; returns (tile, block widths)."""
    k_lo, k_hi = span
    p, d, rows = plan.p, plan.d, qt.rows
    widths = [min(p, k_hi - k_lo - j * p) for j in range(cdiv(k_hi - k_lo, p))]
    st = nl.ndarray((p, len(widths) * p), nl.float32, buffer=nl.psum)
    for j, wk in enumerate(widths):
        k0 = k_lo + j * p
        dst = st[:wk, j * p : j * p + rows]
        nisa.nc_matmul(dst=dst, stationary=kv.kt[:d, k0 - kv.lo : k0 - kv.lo + wk], moving=qt.qt[:d, :rows])
        nisa.nc_matmul(dst=dst, stationary=tconsts.ones[:rows, :wk], moving=diag[:rows, :rows], accumulate=True)
        if plan.causal and k0 + wk > qt.q0:
            # the diagonal block (keys from q0 on; causal tiles end there, so it starts at q0)
            nisa.nc_matmul(
                dst=dst, stationary=consts.identity[:wk, :wk], moving=tconsts.mask_t[:wk, :rows], accumulate=True
            )
    return st, widths

"""The online softmax of flash and decode attention: a running row max and sum over blocks of scores.

For each block of scores S (fp32, in PSUM) of a set of rows:
  VectorE   row max of S, straight from PSUM
  small op  r_new = min(r_old, -scale * max): the running max kept as r = -scale * m, the exp bias
  small op  alpha = e ** (r_new - r_old) = exp(scale * (m_old - m_new))
  ScalarE   P = exp(scale * S + r_new) into SBUF, its row sums through the activation's reduce_res
  small op  l = alpha * l + rowsum(P)
and the caller rescales its output accumulator by alpha before adding P V. At the end, O / l.
With `sum_column` the caller's P V matmul keeps l itself (a ones column of V makes column `sum_column` of
the accumulator rowsum(P), rescaled by alpha with the rest): exp skips its reduction and l its update.

The [rows, 1] "small ops" run on GpSimd where it is free (it is otherwise idle in attention), on VectorE
where GpSimd shares VectorE's SBUF port (NC-v2).
"""

from __future__ import annotations

import math
from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import pmax
from trnsim.kernels._ports import share_port

# fp32 columns of a packed block tile before its bf16 maxima: r_new, alpha, the max over the block's tiles
PACKED_COLS = 3


def small_ops_engine() -> Any:
    return nisa.vector_engine if share_port("vector", "gpsimd", "sbuf") else nisa.gpsimd_engine


class OnlineSoftmax:
    """Running max and sum of `rows` rows (partitions 0..rows-1) of scores scaled by `scale`."""

    def __init__(
        self, rows: int, scale: float, probs_dtype: Any, sum_column: int | None = None, packed: bool = False
    ) -> None:
        self.rows, self.scale, self.probs_dtype = rows, scale, probs_dtype
        self.sum_column = sum_column  # the column of the caller's accumulator that holds l, if any
        self.engine = small_ops_engine()
        self.r: Any = None  # -scale * running max, [rows, 1]
        self.l: Any = None  # running sum, [rows, 1]
        self.inv_l: Any = None
        # With `packed`, a block's [P, 1] vectors (r_new, alpha, the max over its tiles) and its bf16 maxima are
        # columns of one tile allocated by block_max: one allocation per block instead of three or four
        # (tracing time goes into allocations; the columns are separate regions, so no false dependencies).
        self.packed = packed
        self._cols: Any = None

    def _vec(self, col: int | None = None) -> Any:
        """A [P, 1] fp32 vector: column `col` of the block's packed tile, or a tile of its own."""
        if self.packed and col is not None and self._cols is not None:
            return self._cols[:, col : col + 1]
        return nl.ndarray((pmax(), 1), nl.float32, buffer=nl.sbuf)

    def block_max(self, tiles: list[tuple[Any, int]]) -> Any:
        """VectorE: -max per row over score tiles [(whole fp32 psum tile, width)]; returns a [rows, 1] view.

        The max is read from the scores' bf16 truncations: the upper half of each little-endian fp32 is that
        value rounded toward zero to bf16, so a bf16 view of the bank at odd positions is a bf16 copy of S for
        free, and a bf16 max runs at twice the fp32 rate (tensor_reduce's N/2). The softmax needs only a
        shift near the max, used consistently in P, its sum and alpha; one bf16 ulp off changes nothing.
        """
        rows = self.rows
        if self.packed:  # fp32 columns 0-2: r_new, alpha, total; then the bf16 maxima (two per fp32 column)
            self._cols = nl.ndarray((pmax(), PACKED_COLS + -(-len(tiles) // 2)), nl.float32, buffer=nl.sbuf)
            first = 2 * PACKED_COLS
            neg_max = self._cols.view(nl.bfloat16)[:, first : first + len(tiles)]
        else:
            neg_max = nl.ndarray((pmax(), len(tiles)), nl.bfloat16, buffer=nl.sbuf)
        for c, (s, w) in enumerate(tiles):
            upper = s.view(nl.bfloat16)[:rows, 1 : 2 * w : 2]
            nisa.tensor_reduce(dst=neg_max[:rows, c : c + 1], op=nl.maximum, data=upper, axis=1, negate=True)
        if len(tiles) == 1:
            return neg_max[:rows, 0:1]
        total = self._vec(2)
        nisa.tensor_reduce(dst=total[:rows], op=nl.minimum, data=neg_max[:rows, : len(tiles)], axis=1)
        return total[:rows]

    def running_max(self, neg_max: Any) -> tuple[Any, Any]:
        """r_new = min(r_old, scale * -max): a larger max is a smaller r, and alpha = exp(r_new - r_old).

        Returns (alpha or None for the first block, r_new). alpha is e ** (r_new - r_old), one tensor_scalar
        on the small-ops engine, which keeps it off ScalarE (busy with exp over every score)."""
        rows = self.rows
        r_old, r_new = self.r, self._vec(0)
        if r_old is None:
            nisa.tensor_scalar(dst=r_new[:rows], data=neg_max, op0=nl.multiply, operand0=self.scale, engine=self.engine)
        else:
            nisa.tensor_scalar(
                dst=r_new[:rows],
                data=neg_max,
                op0=nl.multiply,
                operand0=self.scale,
                op1=nl.minimum,
                operand1=r_old[:rows],
                engine=self.engine,
            )
        self.r = r_new
        alpha = None
        if r_old is not None:
            alpha = self._vec(1)
            nisa.tensor_scalar(
                dst=alpha[:rows],
                data=r_old[:rows],
                op0=nl.subtract,
                operand0=r_new[:rows],
                reverse0=True,
                op1=nl.power,
                operand1=math.e,
                reverse1=True,
                engine=self.engine,
            )
        return alpha, r_new

    def exp(self, tiles: list[tuple[Any, int]], r_new: Any, stride: int, out: Any = None) -> tuple[Any, Any]:
        """ScalarE: P = exp(scale * S + r_new) (tile c at column c * stride) with its row sums in the same
        instructions unless the caller keeps them (sum_column). Returns (P [128, len(tiles) * stride] in
        SBUF, or in `out` where given, rowsum(P) or None)."""
        rows = self.rows
        probs = nl.ndarray((pmax(), len(tiles) * stride), self.probs_dtype, buffer=nl.sbuf) if out is None else out
        row_sum = None if self.sum_column is not None else self._vec()
        for c, (s, w) in enumerate(tiles):
            reduce: dict[str, Any] = {}
            if row_sum is not None:
                cmd = nisa.reduce_cmd.reset_reduce if c == 0 else nisa.reduce_cmd.reduce
                reduce = {"reduce_op": nl.add, "reduce_res": row_sum[:rows], "reduce_cmd": cmd}
            nisa.activation(
                dst=probs[:rows, c * stride : c * stride + w],
                op=nl.exp,
                data=s[:rows, :w],
                bias=r_new[:rows],
                scale=self.scale,
                **reduce,
            )
        return probs, row_sum

    def update_sum(self, alpha: Any, row_sum: Any) -> None:
        """l = alpha * l + rowsum(P) (nothing to do where the caller's accumulator keeps l)."""
        rows = self.rows
        if self.sum_column is not None:
            return
        if alpha is None:
            self.l = row_sum
            return
        l_new = self._vec()
        nisa.tensor_scalar(
            dst=l_new[:rows],
            data=self.l[:rows],
            op0=nl.multiply,
            operand0=alpha[:rows],
            op1=nl.add,
            operand1=row_sum[:rows],
            engine=self.engine,
        )
        self.l = l_new

    @staticmethod
    def rescale(o: Any, alpha: Any, rows: int, on_vector: bool = False) -> None:
        """ScalarE (or VectorE): O *= alpha in place (PSUM), moving what earlier blocks accumulated to the new
        max. Both compute o * alpha in fp32 (ScalarE's copy with scale adds a zero bias), the same values."""
        if on_vector:
            nisa.tensor_scalar(
                dst=o[:rows], data=o[:rows], op0=nl.multiply, operand0=alpha[:rows], engine=nisa.vector_engine
            )
        else:
            nisa.activation(dst=o[:rows], op=nl.copy, data=o[:rows], scale=alpha[:rows])

    def reciprocal(self) -> None:
        """VectorE: 1 / l, once the last block is in."""
        self.inv_l = self._vec()
        nisa.reciprocal(dst=self.inv_l[: self.rows], data=self.l[: self.rows])

    def normalize(self, dst: Any, o: Any) -> None:
        """ScalarE: dst = O / l (cast to dst's dtype)."""
        rows = self.rows
        nisa.activation(dst=dst[:rows], op=nl.copy, data=o[:rows], scale=self.inv_l[:rows])

    def divide(self, dst: Any, o: Any) -> None:
        """VectorE, with sum_column: dst = O / l in one instruction, l read from O's own sum column."""
        rows, col = self.rows, self.sum_column
        assert col is not None
        nisa.tensor_scalar(
            dst=dst[:rows],
            data=o[:rows, :col],
            op0=nl.divide,
            operand0=o[:rows, col : col + 1],
            engine=nisa.vector_engine,
        )

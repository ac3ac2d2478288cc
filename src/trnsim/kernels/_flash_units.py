"""Flash attention's units of work (kernels/attention.py): one query tile against one unit of key blocks, as the
ops of a software pipeline (run_pipelined), and the stage/priority tables that place each op; the transposed-score
and DMA-transpose variants, and the K/V preparation that runs ahead of a group's first unit."""

from __future__ import annotations

from typing import Any, ClassVar

from trnsim.kernels import attention_dma_transpose
from trnsim.kernels._flash_tiles import (
    KV,
    Consts,
    Plan,
    QTile,
    copy_out,
    mask_scores,
    pv,
    scores,
    transpose_probs,
)
from trnsim.kernels._online_softmax import OnlineSoftmax
from trnsim.kernels.attention_transposed import (
    TransposedSoftmax,
    scores_transposed,
)

# (stage, priority) of each op of a unit (see run_pipelined). Each hop between engines on the chain
# scores -> row max -> running max -> exp -> P^T -> copy -> P V crosses a stage; within a step an op that
# feeds another engine comes early on its engine (low priority value) and consumers late. A buffer is
# released at the start of the stage after its last use, so consecutive units never share one.
SCHEDULE = {
    "load": (0, 0),  # DMA the query tile (first unit of a tile); K/V too when streaming
    "prep": (2, 0),  # TensorE transposes Q (and streamed K) into PSUM; VectorE copies them to SBUF
    "scores": (4, 0),  # TensorE S = Q K^T (+ causal mask, where the plan puts it here)
    "rowmax": (5, 0),  # VectorE row max of S (after adding the causal mask, where the plan puts it here)
    "runmax": (6, 0),  # GpSimd running max and alpha = exp(m_old - m_new)
    "exp": (7, 0),  # ScalarE P = exp(S - m) (its row sums come from P V: V's ones column)
    "transpose": (9, 1),  # TensorE P^T, a step after exp so ScalarE's lag does not stall TensorE
    "evac": (10, 1.2),  # P^T PSUM -> SBUF
    "rescale": (10, 3.5),  # ScalarE O *= alpha, after the P V of the tile's previous unit (if in this step)
    "pv": (11, 3),  # TensorE O += P V
    "finalize": (12, 2.5),  # VectorE O / l after a tile's last unit (l: O's sum column), after its other work
    "store": (15, 4),  # late, so a store waiting for its data does not hold up later loads on the DMA queues
}
# The transposed-scores variant (attention_transposed.py): S only for the row max, S^T - m after the running
# max, exp straight to P^T; no P^T transposes or copies.
SCHEDULE_T = {
    "load": (0, 0),
    "prep": (2, 0),
    "scores": (4, 0),  # TensorE S = Q K^T (+ causal mask), for the row max
    "rowmax": (5, 0),  # VectorE row max of S
    "runmax": (6, 0),  # small ops: running -m (bf16), alpha, diag(-m)
    "scores_t": (7, 1),  # TensorE S^T - m (+ transposed causal mask)
    "exp": (8, 0),  # ScalarE P^T = exp(scale * (S^T - m)) into SBUF
    "rescale": (9, 3.5),  # ScalarE O *= alpha, after the P V of the tile's previous unit (if in this step)
    "pv": (10, 3),  # TensorE O += P V
    "finalize": (11, 2.5),  # VectorE O / l after a tile's last unit
    "store": (14, 4),
}


class Unit:
    """One query tile x one key range [k_lo, k_hi): its work as the ops of SCHEDULE."""

    SCHEDULE: ClassVar[dict[str, tuple[int, float]]] = SCHEDULE
    # buffer attribute -> the op that reads it last; it is released at the start of the next stage
    LAST_USE: ClassVar[dict[str, str]] = {"tiles": "exp", "probs": "transpose", "pt": "pv", "kv": "pv", "res": "store"}
    _STAGES: ClassVar[Any] = None  # _stage_table's, per class

    def __init__(
        self, plan: Plan, consts: Consts, io: Any, qt: QTile, kv_box: list[KV], span: tuple[int, int], flags: Any
    ) -> None:
        self.plan, self.consts, self.io, self.qt, self.kv_box = plan, consts, io, qt, kv_box
        self.k_lo, self.k_hi = span
        self.first, self.last, self.index = flags
        self.kv: KV | None = None
        self.tiles: Any = None
        self.neg_max: Any = None
        self.r_new: Any = None
        self.probs: Any = None
        self.alpha: Any = None
        self.pt: Any = None
        self.widths: list[int] = []
        self.res: Any = None
        self.stages = len(self._stage_table())

    @classmethod
    def _stage_table(cls) -> list[tuple[list[str], list[tuple[float, str]]]]:
        """Per stage: the buffers released at its start and its (priority, op name)s; worked out once per class
        (the pipeline asks every unit in flight for its ops at every step)."""
        table = cls.__dict__.get("_STAGES")
        if table is None:
            table = [([], []) for _ in range(max(stage for stage, _ in cls.SCHEDULE.values()) + 1)]
            for attr, op in cls.LAST_USE.items():
                if cls.SCHEDULE[op][0] + 1 < len(table):
                    table[cls.SCHEDULE[op][0] + 1][0].append(attr)
            for op, (st, prio) in cls.SCHEDULE.items():
                table[st][1].append((prio, op))
            cls._STAGES = table
        return table

    def ops(self, stage: int) -> list[tuple[float, Any]]:
        releases, ops = self._stage_table()[stage]
        out: list[tuple[float, Any]] = [(-1.0, lambda: self._release(self, releases))] if releases else []
        out.extend((prio, getattr(self, op)) for prio, op in ops)
        return out

    @staticmethod
    def _release(holder: Any, attrs: list[str]) -> None:
        """Drop the references: the buffers go back to SBUF / PSUM (Python liveness is buffer liveness)."""
        for attr in attrs:
            setattr(holder, attr, None)

    @property
    def softmax(self) -> OnlineSoftmax:
        return self.qt.softmax

    # -- ops, in SCHEDULE order ----------------------------------------------------------------------------
    def load(self) -> None:
        q, k, v, _ = self.io
        if self.first:
            self.qt.load(q)
        if not self.kv_box:  # streaming: this unit loads its own keys
            self.kv = KV(self.plan, k, v, self.qt.b, self.qt.h // self.plan.group, self.k_lo, self.k_hi)

    def prep(self) -> None:
        if self.kv is None:
            self.kv = self.kv_box[0]
        if self.first:
            self.qt.transpose_q()
        if self.kv.kt is None:
            self.kv.transpose_k()

    def scores(self) -> None:
        assert self.kv is not None
        self.tiles = scores(self.plan, self.qt, self.kv, self.consts, self.k_lo, self.k_hi)

    def rowmax(self) -> None:
        if self.plan.mask_on_vector:
            mask_scores(self.plan, self.qt, self.consts, self.tiles, self.k_lo)
        self.neg_max = self.softmax.block_max(self.tiles)

    def runmax(self) -> None:
        self.alpha, self.r_new = self.softmax.running_max(self.neg_max)

    def exp(self) -> None:
        self.probs, _ = self.softmax.exp(self.tiles, self.r_new, stride=self.plan.kb)  # row sums: in O

    def transpose(self) -> None:
        self.pt, self.widths = transpose_probs(self.plan, self.qt, self.probs, self.k_lo, self.k_hi)

    def evac(self) -> None:
        self.pt = copy_out(self.plan, self.qt, self.pt, self.widths, self.index)

    def rescale(self) -> None:
        if self.alpha is not None:
            share = self.plan.rescale_on_vector  # spread evenly over the units
            on_vector = int((self.index + 1) * share) != int(self.index * share)
            self.softmax.rescale(self.qt.o, self.alpha, self.qt.rows, on_vector)

    def pv(self) -> None:
        assert self.kv is not None
        pv(self.plan, self.qt, self.kv, self.pt, self.widths, self.k_lo)

    def finalize(self) -> None:
        if self.last:
            self.res = self.qt.result()
            self.softmax.divide(self.res, self.qt.o)

    def store(self) -> None:
        if self.last:
            self.qt.block.finished(self.io[3], self.qt.index)


class TransposedUnit(Unit):
    """A unit of the transposed-scores variant: the ops of SCHEDULE_T (attention_transposed.py)."""

    SCHEDULE: ClassVar[dict[str, tuple[int, float]]] = SCHEDULE_T
    LAST_USE: ClassVar[dict[str, str]] = {
        "tiles": "rowmax",
        "diag": "scores_t",
        "st": "exp",
        "pt": "pv",
        "kv": "pv",
        "res": "store",
    }

    def runmax(self) -> None:
        softmax = self.softmax
        assert isinstance(softmax, TransposedSoftmax)
        self.alpha, self.r_new = softmax.running_max(self.neg_max)
        self.diag = softmax.bias_matrix(self.r_new, self.consts.identity)

    def scores_t(self) -> None:
        assert self.kv is not None and self.consts.transposed is not None
        span = (self.k_lo, self.k_hi)
        self.st, self.widths = scores_transposed(
            self.plan, self.qt, self.kv, self.consts, self.consts.transposed, self.diag, span
        )

    def exp(self) -> None:
        softmax = self.softmax
        assert isinstance(softmax, TransposedSoftmax)
        self.pt = softmax.exp_transposed(self.st, self.widths, self.plan.dtype)


class DmaUnit(Unit):
    """A unit of a plan with DMA transposes (attention_dma_transpose.py). P V and what follows it come
    DMA_LAG steps later than in SCHEDULE, for every unit (a tile's units keep one order of rescale and P V)."""

    SCHEDULE: ClassVar[dict[str, tuple[int, float]]] = attention_dma_transpose.delayed(
        SCHEDULE, ("rescale", "pv", "finalize", "store")
    )
    # P stays allocated until P V: a new exp must not wait for the bytes of a transpose still queued
    LAST_USE: ClassVar[dict[str, str]] = {**Unit.LAST_USE, "probs": "pv"}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.on_dma = attention_dma_transpose.on_dma(self.plan.dma_share, self.index)
        self.partner: DmaUnit | None = None  # the next unit, whose P shares this one's DMA transpose
        self.leader: DmaUnit | None = None  # the unit whose DMA transpose takes this one's P

    def exp(self) -> None:
        attention_dma_transpose.exp_and_transpose(self)

    def transpose(self) -> None:
        if not self.on_dma:
            super().transpose()

    def evac(self) -> None:
        if not self.on_dma:
            on_tensor = attention_dma_transpose.units_on_tensor_before(self.plan.dma_share, self.index)
            self.pt = copy_out(self.plan, self.qt, self.pt, self.widths, on_tensor)


class PrepKV:
    """A pipeline unit that loads a KV group's K and V, and transposes K `wait` steps later: in the step the
    group's first unit reaches "prep"."""

    def __init__(self, kv_box: list[KV], make: Any, wait: int) -> None:
        self.kv_box, self.make, self.stages = kv_box, make, wait + 1

    def ops(self, stage: int) -> list[tuple[float, Any]]:
        out = []
        if stage == 0:
            out.append((SCHEDULE["load"][1], lambda: self.kv_box.append(self.make())))
        if stage == self.stages - 1:
            out.append((SCHEDULE["prep"][1] - 0.5, lambda: self.kv_box[0].transpose_k()))
        return out

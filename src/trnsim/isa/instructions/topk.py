"""topk: the K largest values of each 16-partition "snake" and their positions (GpSimd, NKI 0.6).

NKI docs (nki.isa.topk): a group of 16 partitions holds one snake of n bf16 elements, element s at
partition s % 16 of free column s // 16. The instruction finds the K largest (K = val_dst's free size) and
writes them in ascending order with their 0-based snake positions (idx_dst, uint32). The outputs are
snakes too: nki-library's gpsimd_topk (experimental/topk) de-snakes them, reading output position pos at
partition pos % 16, column pos // 16 of its group, and notes that only positions [0, K) are written and
that NKI's simulator writes a plain ascending snake (the hardware's order differs; kernels must not rely
on it). trnsim writes that ascending snake and leaves the other elements of val_dst/idx_dst as they were.
Equal values keep the lower position first.
"""

from __future__ import annotations

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.instructions.iota import gpsimd_reachable
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

GROUP = 16
MIN_N, MAX_N, MAX_K = 8, 65536, 32768  # NKI docs: 8 <= n < 65536, 1 <= K < 32768


def snakes(src: np.ndarray, n: int) -> np.ndarray:
    """[groups, n]: each 16-partition group's snake, read column by column."""
    flat = src.reshape(src.shape[0], -1)
    return np.stack([flat[g : g + GROUP].T.reshape(-1)[:n] for g in range(0, flat.shape[0], GROUP)])


def written(partitions: int, k: int) -> np.ndarray:
    """[partitions, K] bool: the elements an output snake of K positions occupies in each group."""
    p, c = np.meshgrid(np.arange(partitions) % GROUP, np.arange(k), indexing="ij")
    return c * GROUP + p < k


def semantics(src: np.ndarray, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, positions), each [P, K]: group g's K largest in ascending order at output snake positions
    0..K-1 (partition 16g + pos % 16, column pos // 16); zeros elsewhere (not written)."""
    s = snakes(src, n)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k][:, ::-1]  # largest K, lowest position first on ties
    vals = np.take_along_axis(s, order, axis=1)
    out_v = np.zeros((src.shape[0], k), vals.dtype)
    out_i = np.zeros((src.shape[0], k), np.uint32)
    pos = np.arange(k)
    for g in range(s.shape[0]):
        out_v[g * GROUP + pos % GROUP, pos // GROUP] = vals[g]
        out_i[g * GROUP + pos % GROUP, pos // GROUP] = order[g]
    return out_v, out_i


def check(call: Call) -> None:
    val, idx, src = call.dst, call.outputs["idx_dst"], call.inputs["src"]
    assert val is not None
    loc = call.location
    gpsimd_reachable("topk")(call)
    if src.partitions % GROUP:
        raise TileShapeError(f"topk src partitions must be a multiple of {GROUP}, got {src}", loc, rule="shape")
    for t, want, what in (
        (src, dtypes.bfloat16, "src"),
        (val, dtypes.bfloat16, "val_dst"),
        (idx, np.uint32, "idx_dst"),
    ):
        if t.dtype != want:
            raise DtypeError(f"topk {what} must be {np.dtype(want).name}, got {t} {t.dtype.name}", loc, rule="dtype")
    n, k = int(call.param("n")), val.free
    if not MIN_N <= n < MAX_N:
        raise UsageError(f"topk n must be in [{MIN_N}, {MAX_N}), got {n}", loc, rule="topk")
    if src.free * GROUP < n:
        raise ShapeMismatchError(
            f"topk src holds {src.free * GROUP} snake elements per 16 partitions ({src}), fewer than n={n}",
            loc,
            rule="shape",
        )
    if not 1 <= k < MAX_K or k > n:
        raise UsageError(f"topk K (val_dst's free size) must be 1..min(n, {MAX_K - 1}), got {k}", loc, rule="topk")
    for t, what in ((val, "val_dst"), (idx, "idx_dst")):
        if t.partitions != src.partitions or t.free != k:
            raise ShapeMismatchError(f"topk {what} must be [{src.partitions}, {k}], got {t}", loc, rule="shape")


def cost_args(call: Call) -> CostArgs:
    val = call.dst
    assert val is not None
    return CostArgs(n=int(call.param("n")), p=val.partitions, top_k=val.free)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """4*n + K GpSimd cycles per partition (NKI 0.6 docs, nki.isa.topk)."""
    return core.gpsimd.topk_cycles_per_element * a.n + a.top_k


RECORD = InstructionRecord(
    opcode=Opcode.TOPK,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.topk (0.6), trainium.md §3.6 topk",
)

"""Rotary position embedding (RoPE), Hugging Face Llama convention.

`rope(x, cos, sin)`: x [B, H, S, D], cos and sin [S, D] as Llama's rotary embedding computes them
(cos = cat(cos(freqs), cos(freqs)), same for sin) -> x * cos + rotate_half(x) * sin in x's dtype, where
rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]). D must be even; fp32, bf16 or fp16.

RoPE is elementwise per token, so any token -> partition mapping works as long as cos and sin follow it.
Each partition takes r consecutive tokens (token p * r + j at [p, j]), so every DMA row is r * D
contiguous elements (the DMA's saturating row size, 4 KiB, where the sequence allows) and x streams near
the full DMA rate; cos and sin are loaded once per block of tokens, with -sin on the first half, and
reused for every batch and head.
Per tile, four elementwise instructions on VectorE: x * cos, the two halves of rotate_half(x) * sin, and
the sum; x * cos goes to the otherwise idle GpSimd for a share of the tiles that balances the two engines
(none on NC-v2, where GpSimd and VectorE share an SBUF port).
"""

from __future__ import annotations

from typing import Any

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.kernels._common import cdiv, pmax, require, require_dtype, saturating_dma_row_bytes
from trnsim.kernels._engine_load import instruction_ns
from trnsim.kernels._pipeline import run_pipelined
from trnsim.kernels._ports import share_port

ROPE_DTYPES = (dtypes.float32, dtypes.bfloat16, dtypes.float16)
STAGES = {"load": 0, "compute": 2, "store": 4}  # pipeline stages of a tile (see run_pipelined)


class _Tables:
    """cos and [-sin | sin] for tokens [t0, t0 + p * r), token t0 + p * r + j at [p, j, :]."""

    def __init__(self, cos: Any, sin: Any, t0: int, n: int, r: int, dtype: Any) -> None:
        d = cos.shape[1]
        self.cos = nl.ndarray((pmax(), r, d), dtype, buffer=nl.sbuf)
        self.sin = nl.ndarray((pmax(), r, d), dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=self.cos[:n], src=cos[t0 : t0 + n * r, :])
        nisa.dma_copy(dst=self.sin[:n], src=sin[t0 : t0 + n * r, :])
        half = d // 2
        # rotate_half puts -x2 first: fold the sign into sin once, instead of into every tile of x.
        nisa.tensor_scalar(dst=self.sin[:n, :, :half], data=self.sin[:n, :, :half], op0=nl.multiply, operand0=-1.0)


class _Tile:
    """x[b, h, tokens of a block] as a pipeline unit: load, rotate, store."""

    stages = STAGES["store"] + 1

    def __init__(
        self, io: tuple[Any, Any], tables: _Tables, b: int, h: int, span: tuple[int, int, int], gpsimd: bool
    ) -> None:
        self.io, self.tables, self.b, self.h, self.gpsimd = io, tables, b, h, gpsimd
        self.t0, self.n, self.r = span
        self.x: Any = None
        self.y: Any = None

    def ops(self, stage: int) -> list[tuple[float, Any]]:
        return [(0.0, getattr(self, op)) for op, st in STAGES.items() if st == stage]

    def _rows(self, t: Any) -> Any:
        return t[self.b, self.h, self.t0 : self.t0 + self.n * self.r, :]

    def load(self) -> None:
        x, _ = self.io
        self.x = nl.ndarray((pmax(), self.r, x.shape[3]), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=self.x[: self.n], src=self._rows(x))

    def compute(self) -> None:
        x, n, tab = self.x, self.n, self.tables
        d = x.shape[2]
        half = d // 2
        xc = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        engine = nisa.gpsimd_engine if self.gpsimd else nisa.vector_engine
        nisa.tensor_tensor(dst=xc[:n], data1=x[:n], data2=tab.cos[:n], op=nl.multiply, engine=engine)
        rot = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=rot[:n, :, :half], data1=x[:n, :, half:], data2=tab.sin[:n, :, :half], op=nl.multiply)
        nisa.tensor_tensor(dst=rot[:n, :, half:], data1=x[:n, :, :half], data2=tab.sin[:n, :, half:], op=nl.multiply)
        self.y = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=self.y[:n], data1=xc[:n], data2=rot[:n], op=nl.add)

    def store(self) -> None:
        _, out = self.io
        nisa.dma_copy(dst=self._rows(out), src=self.y[: self.n])
        self.x = self.y = None


def _gpsimd_share(n: int, dtype: Any) -> float:
    """Share of the tiles whose x * cos runs on GpSimd, so that it and VectorE finish together.

    Each engine's time per tile is the ISA's cost of the tensor_tensor instructions it issues (with the
    operands' dtype, at the target's clocks).
    """
    if share_port("vector", "gpsimd", "sbuf"):  # NC-v2: they would take turns on the SBUF port
        return 0.0
    low = dtypes.resolve(dtype) in dtypes.LOW_PRECISION_FLOATS

    def tensor_tensor_ns(engine: Engine, elems: int, op: str) -> float:
        return instruction_ns(Opcode.TENSOR_TENSOR, engine, elems, n_inputs=2, alu_op=op, all_bf16=low)

    per_op = tensor_tensor_ns(Engine.VECTOR, n, "multiply")  # x * cos
    # the two halves of rotate_half(x) * sin (n / 2 each) and the sum
    vector_rest = 2 * tensor_tensor_ns(Engine.VECTOR, n // 2, "multiply") + tensor_tensor_ns(Engine.VECTOR, n, "add")
    gpsimd = tensor_tensor_ns(Engine.GPSIMD, n, "multiply")
    # VectorE: rest + (1 - f) * per_op == GpSimd: f * gpsimd
    return min(1.0, max(0.0, (vector_rest + per_op) / (per_op + gpsimd)))


def _blocks(s: int, r_max: int) -> list[tuple[int, int, int]]:
    """(first token, partitions, tokens per partition) covering tokens [0, s)."""
    p, out, t0 = pmax(), [], 0
    while s - t0 >= p:
        r = min(r_max, (s - t0) // p)
        out.append((t0, p, r))
        t0 += p * r
    if s > t0:
        out.append((t0, s - t0, 1))
    return out


@nki.jit
def rope(x, cos, sin):
    """x * cos + rotate_half(x) * sin for x [B, H, S, D] and cos, sin [S, D]."""
    name = "rope"
    require(len(x.shape) == 4, f"{name}: x must be [B, H, S, D], got {list(x.shape)}")
    batch, heads, s, d = x.shape
    for t, what in ((cos, "cos"), (sin, "sin")):
        require(tuple(t.shape) == (s, d), f"{name}: {what} must be [S, D] = {[s, d]}, got {list(t.shape)}")
        require_dtype(what, t, ROPE_DTYPES, name)
    require_dtype("x", x, ROPE_DTYPES, name)
    require(d % 2 == 0, f"{name}: head dim {d} must be even (rotate_half splits it in two)")
    dtype = x.dtype
    out = nl.ndarray(x.shape, dtype, buffer=nl.shared_hbm)
    r_max = max(1, cdiv(saturating_dma_row_bytes(), d * dtypes.resolve(dtype).itemsize))

    share = _gpsimd_share(r_max * d, dtype)

    def tiles() -> Any:
        i = 0
        for t0, n, r in _blocks(s, r_max):
            tables = _Tables(cos, sin, t0, n, r, dtype)
            for b in range(batch):
                for h in range(heads):
                    yield _Tile((x, out), tables, b, h, (t0, n, r), int((i + 1) * share) > int(i * share))
                    i += 1

    run_pipelined(tiles())
    return out

"""Emptying PSUM: transient PSUM tiles in two rotating banks, and PSUM -> SBUF copies spread over
VectorE and ScalarE by their expected cost on the target.

A transposed block lands in PSUM and is copied out at once. If the next transpose reused the same
PSUM bytes, TensorE would have to wait for that copy to finish reading them (a write-after-read
hazard the hardware's semaphores enforce). So transient tiles take the next free columns of a few
banks set aside for them, in turn, like a ring: a small transpose batch (a decode step's) leaves
several earlier ones in place, and their copies overlap the transposes that follow. The banks are
allocated once and viewed as whatever dtype a transpose needs.

Both engines can empty PSUM, at different speeds: on trn1 ScalarE (1.4 GHz) copies faster than
VectorE (1.12 GHz), and the two share one PSUM port, so alternating them only averages the two;
on trn2 VectorE copies 16-bit data at twice its base rate and both may read PSUM at once. So each
copy goes to the engine that would finish it first, by a running estimate of each engine's queued
work (the documented per-instruction costs, from the target preset). Epilogues charge the work they
issue directly (activations, adds) so the estimate stays honest.

The choice is made apart from the copy (`pick`, then `copy`), so the copy itself can be part of a loop body
stamped from a template (nki/loop_template.py): the engine is one of the body's keys, and the running estimate
never moves inside a body. The costs are memoised per (engine, size, dtype class, source): each is a pure
function of the target core, which one Evacuator (made inside one trace) never changes.
"""

from __future__ import annotations

from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.isa.cost import CostArgs, compute_cycles, engine_clock_ghz
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.kernels._common import core

_SIXTEEN_BIT = (dtypes.bfloat16, dtypes.float16)


class Evacuator:
    def __init__(self, transient_banks: int = 2) -> None:
        c = core()
        self.bank_bytes = int(c.psum.bank_bytes)
        bank = (c.psum.partitions, self.bank_bytes // 4)
        self._banks = [nl.ndarray(bank, nl.float32, buffer=nl.psum) for _ in range(transient_banks)]
        self._views: dict[tuple[int, Any], Any] = {}
        self._tiles: dict[tuple[int, Any, int, int, int], Any] = {}  # transient tiles, by bank, dtype and box
        self._bank = 0
        self._pos = 0  # next free byte in the current bank
        self.busy_ns = {"vector": 0.0, "scalar": 0.0}
        self._costs: dict[tuple[str, int, bool, bool, bool], float] = {}
        self.shared_psum_port = any({"vector", "scalar"} <= set(g) for g in c.psum_exclusive_engines)
        # NC-v2's ScalarE has no tensor_copy: it copies with activation(copy)
        self.scalar_tensor_copy = c.nc_version >= 3

    def transient(self, shape: tuple[int, int], dtype: Any) -> Any:
        """A PSUM tile for a result that is copied out right away (a transpose): the next free columns."""
        itemsize = dtypes.resolve(dtype).itemsize
        nbytes = shape[1] * itemsize
        if self._pos + nbytes > self.bank_bytes:  # a tile never spans two banks
            self._bank = (self._bank + 1) % len(self._banks)
            self._pos = 0
        view = self._views.get((self._bank, dtype))
        if view is None:
            bank = self._banks[self._bank]
            view = self._views[(self._bank, dtype)] = bank if bank.dtype == dtype else bank.view(dtype)
        col = self._pos // itemsize
        self._pos += nbytes
        key = (self._bank, dtype, shape[0], col, shape[1])
        tile = self._tiles.get(key)
        if tile is None:  # made once: the banks' columns come round again
            tile = self._tiles[key] = view[: shape[0], col : col + shape[1]]
        return tile

    def cost_ns(self, engine: str, n: int, sixteen_bit: bool, from_psum: bool, copy: bool = True) -> float:
        """Expected busy time of a one-input instruction over n elements per partition (the ISA's cost)."""
        key = (engine, n, sixteen_bit, from_psum, copy)
        got = self._costs.get(key)
        if got is None:
            got = self._costs[key] = self._cost_ns(engine, n, sixteen_bit, from_psum, copy)
        return got

    def _cost_ns(self, engine: str, n: int, sixteen_bit: bool, from_psum: bool, copy: bool) -> float:
        c = core()
        eng = Engine.VECTOR if engine == "vector" else Engine.SCALAR
        if copy:  # the instruction copy() issues on that engine
            op = Opcode.TENSOR_COPY if eng is Engine.VECTOR or self.scalar_tensor_copy else Opcode.ACTIVATION
        else:
            op = Opcode.TENSOR_SCALAR if eng is Engine.VECTOR else Opcode.ACTIVATION
        args = CostArgs(
            n=n, p=int(c.sbuf.partitions), all_bf16=sixteen_bit, sbuf_only=not from_psum, psum_input=from_psum
        )
        return compute_cycles(op, eng, c, args) / engine_clock_ghz(c, eng)

    def pick(self, n: int, dst_dtype: Any, src_dtype: Any, from_psum: bool) -> str:
        """The engine ("vector" or "scalar") a copy of n elements per partition goes to, charged to it: the one
        expected to finish it first. Call it in the order the copies are issued."""
        sixteen = dst_dtype in _SIXTEEN_BIT and src_dtype in _SIXTEEN_BIT
        vector = self.cost_ns("vector", n, sixteen, from_psum)
        scalar = self.cost_ns("scalar", n, sixteen, from_psum)
        busy = self.busy_ns
        if from_psum and self.shared_psum_port:  # they take turns at the port: the faster one always wins
            engine = "vector" if vector <= scalar else "scalar"
        else:
            engine = "vector" if busy["vector"] + vector <= busy["scalar"] + scalar else "scalar"
        busy[engine] += vector if engine == "vector" else scalar
        return engine

    def copy(self, engine: str, dst: Any, src: Any) -> None:
        """dst = src (with a cast) on `engine`, as pick() chose: issues one instruction and changes no state."""
        if engine == "vector":
            nisa.tensor_copy(dst=dst, src=src, engine=nisa.vector_engine)
        elif self.scalar_tensor_copy:
            nisa.tensor_copy(dst=dst, src=src, engine=nisa.scalar_engine)
        else:
            nisa.activation(dst=dst, op=nl.copy, data=src)

    def __call__(self, dst: Any, src: Any) -> None:
        """dst = src (with a cast), on whichever of VectorE / ScalarE is expected to finish it first."""
        self.copy(self.pick(dst.free_size(), dst.dtype, src.dtype, src.buffer == nl.psum), dst, src)

    def charge(self, engine: str, n: int, inputs: int = 1) -> None:
        """Account for an instruction the caller issues itself (n elements per partition, fp32 path)."""
        self.busy_ns[engine] += inputs * self.cost_ns(engine, n, sixteen_bit=False, from_psum=False, copy=False)

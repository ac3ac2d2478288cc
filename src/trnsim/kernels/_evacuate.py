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
        self._bank = 0
        self._pos = 0  # next free byte in the current bank
        self.busy_ns = {"vector": 0.0, "scalar": 0.0}
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
        return view[: shape[0], col : col + shape[1]]

    def cost_ns(self, engine: str, n: int, sixteen_bit: bool, from_psum: bool, copy: bool = True) -> float:
        """Expected busy time of a one-input instruction over n elements per partition (the ISA's cost)."""
        c = core()
        eng = Engine.VECTOR if engine == "vector" else Engine.SCALAR
        if copy:  # the instruction __call__ issues for a copy on that engine
            op = Opcode.TENSOR_COPY if eng is Engine.VECTOR or self.scalar_tensor_copy else Opcode.ACTIVATION
        else:
            op = Opcode.TENSOR_SCALAR if eng is Engine.VECTOR else Opcode.ACTIVATION
        args = CostArgs(
            n=n, p=int(c.sbuf.partitions), all_bf16=sixteen_bit, sbuf_only=not from_psum, psum_input=from_psum
        )
        return compute_cycles(op, eng, c, args) / engine_clock_ghz(c, eng)

    def __call__(self, dst: Any, src: Any) -> None:
        """dst = src (with a cast), on whichever of VectorE / ScalarE is expected to finish it first."""
        n = dst.free_size()
        sixteen = dst.dtype in _SIXTEEN_BIT and src.dtype in _SIXTEEN_BIT
        from_psum = src.buffer == nl.psum
        cost = {e: self.cost_ns(e, n, sixteen, from_psum) for e in self.busy_ns}
        if from_psum and self.shared_psum_port:  # they take turns at the port: the faster one always wins
            engine = min(cost, key=lambda e: cost[e])
        else:
            engine = min(cost, key=lambda e: self.busy_ns[e] + cost[e])
        self.busy_ns[engine] += cost[engine]
        if engine == "vector":
            nisa.tensor_copy(dst=dst, src=src, engine=nisa.vector_engine)
        elif self.scalar_tensor_copy:
            nisa.tensor_copy(dst=dst, src=src, engine=nisa.scalar_engine)
        else:
            nisa.activation(dst=dst, op=nl.copy, data=src)

    def charge(self, engine: str, n: int, inputs: int = 1) -> None:
        """Account for an instruction the caller issues itself (n elements per partition, fp32 path)."""
        self.busy_ns[engine] += inputs * self.cost_ns(engine, n, sixteen_bit=False, from_psum=False, copy=False)

"""Splitting work between ScalarE, VectorE and GpSimd so no one engine bounds a memory-bound kernel.

Some steps can run on more than one engine: a per-row scale is `activation(copy, scale=s)` on ScalarE
or `tensor_scalar(multiply, s)` on VectorE; a tensor_tensor runs on VectorE or GpSimd. `EngineLoad`
keeps a running estimate of each engine's busy time from the ISA's instruction costs (isa/cost.py, the
same records the simulator charges, with the operands' dtypes, buffers and strides) and gives each such
step to the engine that will be free first.
"""

from __future__ import annotations

from typing import Any

from trnsim.isa.cost import CostArgs, compute_cycles, engine_clock_ghz
from trnsim.isa.cost_rules import operand_facts
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import PSUM
from trnsim.kernels._common import core
from trnsim.nki.operands import describe


def instruction_ns(op: Opcode, engine: Engine, n: int, **facts: Any) -> float:
    """ns one `op` over n elements per partition keeps `engine` busy on the target, by the ISA's cost
    (for plans made before any tile exists: `facts` are CostArgs fields such as all_bf16, n_inputs, alu_op)."""
    c = core()
    cycles = compute_cycles(op, engine, c, CostArgs(n=n, p=c.sbuf.partitions, **facts))
    return cycles / engine_clock_ghz(c, engine)


class EngineLoad:
    """Estimated busy ns per engine for the work a kernel has handed out so far."""

    def __init__(self) -> None:
        c = core()
        self._spec = c
        self._ghz = {name: engine_clock_ghz(c, Engine[name.upper()]) for name in ("vector", "scalar", "gpsimd")}
        self.busy = dict.fromkeys(self._ghz, 0.0)

    def _ns(self, engine: str, cycles: float) -> float:
        """Cycles (the ISA's, MIN_II floors included) to ns at the engine's clock."""
        return cycles / self._ghz[engine]

    def add(self, engine: str, cycles: float) -> None:
        self.busy[engine] += self._ns(engine, cycles)

    def pick(self, **cycles: float) -> str:
        """Charge one instruction (keyword = engine, value = its cycles there) to an engine; returns its name."""
        options = [{engine: c} for engine, c in cycles.items()]
        return next(iter(options[self.choose(*options)]))

    def choose(self, *options: dict[str, float]) -> int:
        """Pick one of several ways to do a step (each: engine -> cycles), charge it, return its index.

        The way that leaves its busiest engine least busy wins (ties: the shorter chain of instructions),
        so the engines fill evenly and none of them outruns the DMA queues.
        """

        def finish(o: dict[str, float]) -> float:
            return max(self.busy[e] + self._ns(e, c) for e, c in o.items())

        def chain(o: dict[str, float]) -> float:
            return sum(self._ns(e, c) for e, c in o.items())

        best = min(range(len(options)), key=lambda i: (finish(options[i]), chain(options[i])))
        for engine, c in options[best].items():
            self.add(engine, c)
        return best

    def gpsimd_helps(self) -> bool:
        """GpSimd adds throughput only where it does not share VectorE's SBUF port (NC-v3 on)."""
        return not any({"vector", "gpsimd"} <= set(group) for group in self._spec.sbuf_exclusive_engines)

    # -- cycle estimates: the ISA's cost of the instruction each step issues ------------------------------
    def _cost(self, op: Opcode, engine: Engine, n: int, tiles: tuple[Any, ...], **facts: Any) -> float:
        operands = [describe(t, "tile") for t in tiles]
        described = operand_facts(self._spec, operands) if tiles else {}
        if facts.get("n_inputs", 1) > 1:  # a two-input op reads PSUM at its own rate
            described["psum_input"] = any(t.buffer == PSUM for t in operands)
        return compute_cycles(op, engine, self._spec, CostArgs(n=n, p=self._spec.sbuf.partitions, **described, **facts))

    def scalar_cycles(self, n: int) -> float:
        """One ScalarE activation over n elements per partition (scale and bias are free)."""
        return self.activation_cycles(n)

    def activation_cycles(self, n: int, reduce: bool = False) -> float:
        """One ScalarE activation, with `reduce` a free-axis reduction into reduce_res (its accumulator read)."""
        return self._cost(Opcode.ACTIVATION, Engine.SCALAR, n, (), reduce=reduce)

    def fused_cycles(self, n: int, *tiles: Any, ops: str = "multiply,multiply") -> float:
        """One VectorE scalar_tensor_tensor, (x op0 scalar) op1 tile, `ops` = "op0,op1"."""
        return self._cost(Opcode.SCALAR_TENSOR_TENSOR, Engine.VECTOR, n, tiles, n_inputs=2, alu_op=ops)

    def vector_scalar_reduce_cycles(self, n: int, *tiles: Any, ops: str = "multiply") -> float:
        """One VectorE tensor_scalar_reduce: a tensor_scalar pass with a free-axis reduction of its result."""
        return self._cost(Opcode.TENSOR_SCALAR_REDUCE, Engine.VECTOR, n, tiles, alu_op=ops)

    def vector_scalar_cycles(self, n: int, *tiles: Any) -> float:
        """A VectorE tensor_scalar (or tensor_copy) over n elements per partition of `tiles`."""
        return self._cost(Opcode.TENSOR_SCALAR, Engine.VECTOR, n, tiles, alu_op="multiply")

    def vector_tensor_cycles(self, n: int, *tiles: Any, op: str = "add") -> float:
        """A VectorE tensor_tensor `op` over `tiles` (dst and inputs; one in PSUM counts as a PSUM input)."""
        return self._cost(Opcode.TENSOR_TENSOR, Engine.VECTOR, n, tiles, n_inputs=2, alu_op=op)

    def vector_reduce_cycles(self, n: int, *tiles: Any) -> float:
        """A VectorE add/max tensor_reduce over n elements per partition."""
        return self._cost(Opcode.TENSOR_REDUCE, Engine.VECTOR, n, tiles, alu_op="add")

    def bn_stats_cycles(self, n: int, *tiles: Any) -> float:
        """A VectorE bn_stats over n elements per partition."""
        return self._cost(Opcode.BN_STATS, Engine.VECTOR, n, tiles)

    def gpsimd_tensor_cycles(self, n: int, *tiles: Any) -> float:
        """A GpSimd tensor_tensor (two inputs) over `tiles`."""
        return self._cost(Opcode.TENSOR_TENSOR, Engine.GPSIMD, n, tiles, n_inputs=2)

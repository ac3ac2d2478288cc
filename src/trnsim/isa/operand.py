"""The isa-level description of an instruction's operands: shapes, dtypes, buffers, strides; no values.

The kernel language (nki/) describes each tile it passes to an instruction this way, so the records in
isa/instructions/ can check and cost a call without knowing what a kernel tensor is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np

from trnsim.hw.spec import CoreSpec
from trnsim.isa.opcodes import Engine

HBM, SBUF, PSUM = "hbm", "sbuf", "psum"


@dataclass(slots=True)
class Operand:
    """One tile an instruction reads or writes."""

    name: str  # the argument it was passed as ("dst", "data", ...), for messages
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    buffer: str  # HBM, SBUF or PSUM
    innermost_stride_bytes: int = 0
    contiguous_run_bytes: int = 0  # filled in for DMA operands only
    source: object = None  # what the kernel passed (shown in messages)

    @property
    def partitions(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def free(self) -> int:
        """Elements per partition."""
        return prod(self.shape[1:]) if len(self.shape) > 1 else 1

    @property
    def size(self) -> int:
        return prod(self.shape)

    def __str__(self) -> str:
        return repr(self.source) if self.source is not None else f"{self.name}{list(self.shape)}"


@dataclass(slots=True)
class Call:
    """One instruction as a kernel asked for it: the core, the engine, its operands and its other arguments."""

    core: CoreSpec
    engine: Engine
    dst: Operand | None
    inputs: Mapping[str, Operand]  # tiles read, by argument name
    outputs: Mapping[str, Operand] = field(default_factory=dict)  # tiles written besides dst (reduce_res)
    params: Mapping[str, Any] = field(default_factory=dict)  # everything else: ALU op names, flags, ...
    partitions: int = 0  # partitions the instruction processes (after the mask)
    elements: int = 0  # elements per partition it processes (after the mask)
    location: str = ""  # "file:line" in the kernel, for errors

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def operands(self, *names: str) -> list[Operand]:
        """The named operands ("dst" is the destination), skipping names not passed."""
        out: list[Operand] = []
        for n in names:
            t = self.dst if n == "dst" else self.inputs.get(n) or self.outputs.get(n)
            if t is not None:
                out.append(t)
        return out

    def all_operands(self) -> list[Operand]:
        return [*([self.dst] if self.dst is not None else []), *self.inputs.values(), *self.outputs.values()]

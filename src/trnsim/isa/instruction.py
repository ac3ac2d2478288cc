"""One instruction in a core's stream: what it reads and writes, and what it costs.

Regions are (allocation id, d0 start, d0 stop, d1 start, d1 stop, rest start, rest stop) boxes in the
allocation's 3-D view [dim 0, dim 1, the remaining dims flattened] (elements), so dependency tracking
needs no values: the same stream gives the same timeline in functional and timing-only modes.
"""

from __future__ import annotations

from dataclasses import dataclass

from trnsim.isa.opcodes import Engine, Opcode

Region = tuple[int, int, int, int, int, int, int]


@dataclass(slots=True)
class Instruction:
    opcode: Opcode
    engine: Engine
    core: int
    reads: tuple[Region, ...]
    writes: tuple[Region, ...]
    cycles: float = 0.0  # engine cycles occupied (compute engines)
    dma_bytes: int = 0  # bytes moved (DMA)
    dma_rows: int = 1  # contiguous runs ("descriptors") the transfer is made of (DMA)
    dma_row_bytes: int = 0  # bytes per contiguous run (DMA)
    hbm_bytes: int = 0  # bytes read from or written to HBM
    flops: int = 0  # TensorE floating-point operations
    accumulate: bool = False  # adds into its destination (PSUM accumulation), which it also reads
    touches_psum: bool = False  # reads or writes PSUM (engines that share a PSUM port serialise)
    touches_sbuf: bool = True  # reads or writes SBUF (engines that share an SBUF port serialise)
    location: str = ""  # "file:line" in the kernel that issued it
    label: str = ""  # short human name, e.g. "nc_matmul" or "activation(exp)"

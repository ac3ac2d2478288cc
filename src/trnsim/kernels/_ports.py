"""Which engines contend for a memory port on the target (NC-v2: VectorE/GpSimd share SBUF, VectorE/ScalarE
share PSUM), so kernels place work where it really runs in parallel."""

from __future__ import annotations

from trnsim.kernels._common import core


def share_port(a: str, b: str, memory: str) -> bool:
    """Whether engines a and b cannot access `memory` ("sbuf" or "psum") at the same time on the target."""
    c = core()
    groups = c.sbuf_exclusive_engines if memory == "sbuf" else c.psum_exclusive_engines
    return any(a in group and b in group for group in groups)

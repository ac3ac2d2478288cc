"""Write an NKI kernel (current API), check it against numpy, profile it on trn2 and write a Perfetto trace.

Run: python examples/01_kernel_profile.py [OUT_DIR]   (writes OUT_DIR/scaled_add.trace.json, default ./out; open it
in https://ui.perfetto.dev)
"""

import sys
from pathlib import Path

import numpy as np
from rich.console import Console

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl


@nki.jit
def scaled_add(a, b):
    """out = (a + b) * 0.5, one 128-row tile at a time; the tile loop lets DMA and compute overlap."""
    rows, cols = a.shape
    out = nl.ndarray((rows, cols), a.dtype, buffer=nl.shared_hbm)
    for r in nl.affine_range(rows // 128):
        block = slice(r * 128, (r + 1) * 128)
        x = nl.load(a[block, :])
        y = nl.load(b[block, :])
        s = nl.ndarray((128, cols), a.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=s, data1=x, data2=y, op=nl.add)
        z = nl.ndarray((128, cols), a.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=z, data=s, op0=nl.multiply, operand0=0.5)
        nl.store(out[block, :], z)
    return out


def main(out_dir: Path) -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((512, 1024)).astype(np.float32)
    b = rng.standard_normal((512, 1024)).astype(np.float32)

    # nki.simulate: values only, like the NKI simulator.
    out = nki.simulate(scaled_add)(a, b)
    print(f"max |error| vs numpy: {np.max(np.abs(out - (a + b) * 0.5)):.2e}")

    # nki.profile: values and the simulated timeline on a trn2 NeuronCore.
    prof = nki.profile(scaled_add, target="trn2")(a, b)
    Console().print(prof.summary())
    print(f"latency {prof.latency_us:.2f} us, bottleneck: {prof.bottleneck()} ({prof.bound()})")
    for engine, busy in prof.engine_busy_us.items():
        print(f"  {engine:7s} busy {busy:8.2f} us")

    # Timing mode: the same instruction stream on shapes only (no values), for inputs too big to compute.
    big = nki.TensorSpec((8192, 8192), "bfloat16")
    timing = nki.profile(scaled_add, target="trn2", mode="timing")(big, big)
    print(f"timing mode, 8192x8192 bf16: {timing.latency_us:,.1f} us, HBM {timing.hbm_gbps:,.0f} GB/s")

    trace = prof.to_perfetto(out_dir / "scaled_add.trace.json")
    print(f"trace: {trace} (open in https://ui.perfetto.dev)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))

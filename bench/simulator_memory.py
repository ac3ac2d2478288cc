"""Peak memory of simulating a kernel of about a million instructions (issue 12: < 2 GiB).

Run: .venv/bin/python bench/simulator_memory.py [--batch 4] [--seq 8192] [--target trn2]

Traces and schedules a causal flash attention [batch, 32 heads, seq, 128] bf16 in timing mode on one core
(full simulation, no loop extension) and prints its instruction count, the process's peak resident set size
(getrusage ru_maxrss, which includes Python, numpy, torch and trnsim's imports) before and after, and the
bytes per instruction of the difference. [4, 32, 8192, 128] is about 1.2M instructions.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

from trnsim import kernels
from trnsim.compiler.kernel_runner import cost_of
from trnsim.hw import load_preset
from trnsim.nki.kernel import TensorSpec, trace


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=8192)
    ap.add_argument("--target", default="trn2")
    opts = ap.parse_args()
    spec = load_preset(opts.target)
    args = (TensorSpec((opts.batch, 32, opts.seq, 128), "bfloat16"),) * 3
    before = peak_rss_bytes()
    start = time.process_time()
    traced = trace(kernels.flash_attention, args, {"causal": True}, target=spec, mode="timing", cores=1)
    cost = cost_of(traced.profile())
    cpu = time.process_time() - start
    after = peak_rss_bytes()
    n = cost.instructions
    print(f"{platform.machine()} {platform.python_version()}; flash attention {[list(a.shape) for a in args]} causal")
    print(f"{n:,} instructions, {cost.latency_us:,.1f} us simulated, {cpu:.1f} CPU s ({n / cpu:,.0f} instr/cpu-s)")
    print(
        f"peak RSS {before / 2**30:.2f} GiB before, {after / 2**30:.2f} GiB after "
        f"({(after - before) / n:,.0f} bytes per instruction); target < 2 GiB"
    )


if __name__ == "__main__":
    main()

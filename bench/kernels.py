"""The kernel library against the roofline: runs each area's benchmark and prints their tables.

Run: .venv/bin/python bench/kernels.py
Each table row is a timing-mode run on one core: simulated time, roofline time =
max(FLOPs / TensorE peak, bytes / core DMA bandwidth), % of roofline, and the bottleneck engine or queue
from the profile. The areas: matmul and linear (kernels_matmul.py), memory-bound kernels
(kernels_memory.py), attention (kernels_attention.py), convolution and pooling (kernels_conv.py).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

AREAS = ["kernels_matmul.py", "kernels_memory.py", "kernels_attention.py", "kernels_conv.py"]


def main() -> None:
    here = Path(__file__).parent
    for script in AREAS:
        path = here / script
        if not path.exists():
            print(f"## {script}: missing\n")
            continue
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(path), *sys.argv[1:]], capture_output=True, text=True)
        print(f"## {script} ({time.perf_counter() - t0:.0f} s)\n")
        print(res.stdout)
        if res.returncode:
            print(f"(failed with exit code {res.returncode})\n{res.stderr[-2000:]}")


if __name__ == "__main__":
    main()

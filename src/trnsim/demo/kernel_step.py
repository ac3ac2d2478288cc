"""Demo step 1: a library kernel (causal flash attention, bf16) profiled on the simulated chip.

The outputs are checked against eager PyTorch's scaled_dot_product_attention on the same random inputs, and the
profile's instruction stream becomes a Perfetto trace and an engine-timeline plot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
import torch

import trnsim.kernels
import trnsim.nki as nki
from trnsim.report.plots.timeline import plot_timeline
from trnsim.runtime.profile import Profile

# One sequence, 4 query heads over 2 KV heads (GQA), 512 tokens, head dim 128: big enough to pipeline the
# engines, small enough to compute values in a few seconds.
SHAPE_Q = (1, 4, 512, 128)
SHAPE_KV = (1, 2, 512, 128)


@dataclass(frozen=True)
class KernelStep:
    profile: Profile
    max_abs_error: float
    trace: Path
    timeline: list[Path]


def run_kernel_step(out_dir: Path, target: str, rng: np.random.Generator) -> KernelStep:
    bf16 = ml_dtypes.bfloat16
    q = rng.standard_normal(SHAPE_Q).astype(bf16)
    k = rng.standard_normal(SHAPE_KV).astype(bf16)
    v = rng.standard_normal(SHAPE_KV).astype(bf16)
    prof = nki.profile(trnsim.kernels.flash_attention, target=target)(q, k, v, causal=True)
    ref = _sdpa_reference(q, k, v)
    err = float(np.max(np.abs(np.asarray(prof.outputs, dtype=np.float32) - ref)))
    trace = prof.to_perfetto(out_dir / "flash_attention.trace.json")
    timeline = list(plot_timeline(prof, out_dir / "flash_attention_timeline"))
    return KernelStep(prof, err, trace, timeline)


def _sdpa_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    tq, tk, tv = (torch.from_numpy(a.astype(np.float32)) for a in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True, enable_gqa=True)
    return out.numpy()

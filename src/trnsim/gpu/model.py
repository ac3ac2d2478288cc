"""The GPU reference model: a roofline with efficiency curves fitted on measured H100 data.

Every op is one kernel. Its *work* is the larger of compute time and memory time (a smooth max, since
neither fully hides the other near the ridge point); a kernel costs `launch_s + work` inside a stream of
kernels, and `max(floor_s, launch_s + work)` when timed alone with CUDA events (`isolated=True`, the way
the data was measured). Peaks and bandwidth come from the GPU preset, the curves from the fitted file.

- GEMM: tiles over SMs with wave quantisation and split-K (curves.py), at a per-tile efficiency; operands
  streamed at the GEMM streaming efficiency; M or N = 1 may run as a matrix-vector kernel (CUDA cores,
  bandwidth-bound). GEMMs pay `gemm.overhead_s` beyond a streaming kernel's launch. The tensor-core curves
  are fitted on bf16 rows and serve fp16, fp8 and tf32 at their own peaks; fp32 (TF32 off, as measured) has
  its own CUDA-core curves.
- Streaming kernels (copy, elementwise, norms, softmax): bytes at the fitted bandwidth efficiency.
- Attention: flash-attention style, FLOPs at the preset's attention efficiency vs Q/K/V/O bytes.
- All-reduce: NCCL ring over NVLink, 2(n-1)/n * bytes at the bus bandwidth, plus a fixed latency.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from trnsim.gpu.curves import Array, causal_pairs, gemm_bytes, gemm_flops, smooth_max, tiled_gemm_compute_s
from trnsim.gpu.errors import GpuError
from trnsim.gpu.precision import Precision, precision_of
from trnsim.gpu.presets import curves_of, get_gpu_spec
from trnsim.gpu.spec import FittedCurves, GpuSpec, TileClass


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise GpuError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class GpuModel:
    """Op latencies on one GPU (and NVLink collectives within its instance)."""

    def __init__(self, spec: GpuSpec, curves: FittedCurves | None = None) -> None:
        self.spec = spec
        self.curves = curves if curves is not None else curves_of(spec)

    @classmethod
    def from_preset(cls, name: str | Path | GpuSpec) -> GpuModel:
        """A built-in preset ("h100", "h200", "b200") or the path of your own GPU file."""
        return cls(get_gpu_spec(name))

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"GpuModel({self.spec.name!r})"

    # ---- peaks -----------------------------------------------------------------------------------------

    @property
    def hbm_bytes_per_s(self) -> float:
        return self.spec.memory.hbm_tb_per_s * 1e12

    def peak_flops(self, dtype: Any = "bfloat16") -> float:
        return precision_of(dtype).peak_flops(self.spec.compute)

    def _tile_class(self, p: Precision) -> TileClass:
        return self.curves.gemm.tensor if p.tensor_cores else self.curves.gemm.simt

    def _kernel_time(self, work: Array, extra_s: float, isolated: bool) -> Array:
        t = self.curves.memory.launch_s + extra_s + work
        return np.maximum(t, self.curves.memory.floor_s) if isolated else t

    # ---- streaming kernels -----------------------------------------------------------------------------

    def memory_times_s(self, bytes_moved: Any, *, isolated: bool = True) -> Array:
        """Vectorised `memory_time_s`."""
        b = np.asarray(bytes_moved, dtype=np.float64)
        if np.any(b < 0):
            raise GpuError("bytes_moved must be >= 0")
        work = b / (self.hbm_bytes_per_s * self.curves.memory.bandwidth_efficiency)
        return self._kernel_time(work, 0.0, isolated)

    def memory_time_s(self, bytes_moved: float, *, isolated: bool = True) -> float:
        """A streaming kernel (copy, elementwise, norm, softmax) moving bytes_moved (read + written) bytes."""
        return float(self.memory_times_s(bytes_moved, isolated=isolated))

    def bandwidth_efficiency(self, bytes_moved: float) -> float:
        """Achieved / peak HBM bandwidth of one isolated streaming kernel: the curve vs transfer size."""
        return bytes_moved / (self.memory_time_s(bytes_moved) * self.hbm_bytes_per_s)

    # ---- GEMM ------------------------------------------------------------------------------------------

    def gemm_work_s(self, m: Any, n: Any, k: Any, dtype: Any = "bfloat16", batch: Any = 1) -> Array:
        """Vectorised GEMM work (compute vs memory, no launch): the part the curves describe."""
        p = precision_of(dtype)
        tc = self._tile_class(p)
        g = self.curves.gemm
        bw = self.hbm_bytes_per_s
        flops = gemm_flops(m, n, k, batch)
        nbytes = gemm_bytes(m, n, k, batch, p.bytes)
        compute = tiled_gemm_compute_s(
            m,
            n,
            k,
            batch,
            tiles=tc.tiles,
            tile_efficiency=tc.tile_efficiency,
            k_overhead=tc.k_overhead,
            peak_flops=p.peak_flops(self.spec.compute),
            sm_count=self.spec.compute.sm_count,
            max_split_k=g.max_split_k,
            partial_bytes_per_s=bw * self.curves.memory.bandwidth_efficiency,
        )
        tiled = smooth_max(compute, nbytes / (bw * tc.stream_efficiency), g.combine_exponent)
        # Matrix-vector kernels run on CUDA cores at the fp32 rate (best CUDA-core tile efficiency), streaming
        # the matrix; the library is taken to use one when it beats the tiled kernel.
        simt = self.curves.gemm.simt
        gemv = smooth_max(
            flops / (self.spec.compute.fp32_tflops * 1e12 * max(simt.tile_efficiency)),
            nbytes / (bw * tc.gemv_stream_efficiency),
            g.combine_exponent,
        )
        is_vector = (np.asarray(m) == 1) | (np.asarray(n) == 1)
        return np.where(is_vector, np.minimum(tiled, gemv), tiled)

    def gemm_times_s(
        self, m: Any, n: Any, k: Any, dtype: Any = "bfloat16", batch: Any = 1, *, isolated: bool = True
    ) -> Array:
        """Vectorised `gemm_time_s` (for fits and sweeps); inputs broadcast together."""
        for name, v in (("m", m), ("n", n), ("k", k), ("batch", batch)):
            if np.any(np.asarray(v) < 1):
                raise GpuError(f"{name} must be >= 1")
        return self._kernel_time(self.gemm_work_s(m, n, k, dtype, batch), self.curves.gemm.overhead_s, isolated)

    def gemm_time_s(
        self, m: int, n: int, k: int, dtype: Any = "bfloat16", batch: int = 1, *, isolated: bool = True
    ) -> float:
        """(m x k) @ (k x n), `batch` times in one kernel, in seconds."""
        m, n, k, batch = (_positive_int(a, v) for a, v in (("m", m), ("n", n), ("k", k), ("batch", batch)))
        return float(self.gemm_times_s(m, n, k, dtype, batch, isolated=isolated))

    # ---- attention -------------------------------------------------------------------------------------

    def attention_time_s(
        self,
        batch: int,
        heads: int,
        kv_heads: int,
        q_len: int,
        kv_len: int,
        head_dim: int,
        causal: bool = True,
        dtype: Any = "bfloat16",
        *,
        isolated: bool = True,
    ) -> float:
        """Flash-attention forward: softmax(Q K^T) V without materialising the scores."""
        batch, heads, kv_heads, q_len, kv_len, head_dim = (
            _positive_int(a, v)
            for a, v in (
                ("batch", batch),
                ("heads", heads),
                ("kv_heads", kv_heads),
                ("q_len", q_len),
                ("kv_len", kv_len),
                ("head_dim", head_dim),
            )
        )
        if heads % kv_heads:
            raise GpuError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads}) (grouped-query attention)")
        if causal and q_len > kv_len:
            raise GpuError(
                f"causal attention needs q_len <= kv_len (queries are the last positions), got {q_len} > {kv_len}"
            )
        p = precision_of(dtype)
        flops = 4.0 * batch * heads * head_dim * causal_pairs(q_len, kv_len, causal)
        # Query rows sharing a KV head run together; tensor-core tiles pad them to 64 or 128 rows.
        rows = q_len * (heads // kv_heads)
        tile = 64 if rows <= 64 else 128
        padding = math.ceil(rows / tile) * tile / rows
        compute = flops * padding / (p.peak_flops(self.spec.compute) * self.spec.kernels.attention_efficiency)
        nbytes = p.bytes * head_dim * (2.0 * batch * heads * q_len + 2.0 * batch * kv_heads * kv_len)
        memory = nbytes / (self.hbm_bytes_per_s * self.curves.memory.bandwidth_efficiency)
        work = smooth_max(compute, memory, self.curves.gemm.combine_exponent)
        return float(self._kernel_time(work, 0.0, isolated))

    # ---- collectives -----------------------------------------------------------------------------------

    def allreduce_time_s(self, nbytes: float, n_gpus: int) -> float:
        """Ring all-reduce of nbytes per GPU over NVLink inside one instance."""
        n = _positive_int("n_gpus", n_gpus)
        if nbytes < 0:
            raise GpuError(f"all-reduce bytes must be >= 0, got {nbytes}")
        limit = self.spec.instance.gpus
        if n > limit:
            raise GpuError(
                f"all-reduce over NVLink spans one {self.spec.instance.name} ({limit} GPUs); got n_gpus={n}. "
                f"Use n_gpus <= {limit}"
            )
        if n == 1:
            return 0.0
        ic = self.spec.interconnect
        per_direction = ic.nvlink_gb_per_s * 1e9 / 2
        return ic.allreduce_latency_s + 2 * (n - 1) / n * nbytes / (per_direction * ic.allreduce_bus_efficiency)

"""GPU specs and fitted efficiency curves as validated data (pydantic).

A GPU preset (presets/*.toml) holds datasheet numbers, each with its source; a fitted-curves file
(fitted/*.toml) holds the efficiency parameters `python -m trnsim.gpu.fit` derived from measured data, with
the fit date and the data files named. Units are in field names. Unknown keys are rejected (typos in a
user's own file should fail loudly, not be ignored).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuCompute(_Spec):
    sm_count: PositiveInt = Field(description="streaming multiprocessors (the unit of wave quantisation)")
    dense_bf16_tflops: PositiveFloat = Field(description="dense (not sparse) BF16 tensor-core peak")
    dense_fp16_tflops: PositiveFloat
    dense_fp8_tflops: PositiveFloat
    dense_tf32_tflops: PositiveFloat
    dense_fp4_tflops: PositiveFloat | None = Field(
        default=None, description="dense FP4 tensor-core peak (Blackwell and later; absent: no FP4 tensor cores)"
    )
    fp32_tflops: PositiveFloat = Field(description="FP32 non-tensor (SIMT) peak: fp32 GEMMs with TF32 disabled")


class GpuMemory(_Spec):
    hbm_gib: PositiveFloat = Field(description="HBM capacity in GiB (NVIDIA's 'GB' of HBM is 2^30 bytes)")
    hbm_tb_per_s: PositiveFloat = Field(description="HBM bandwidth, 10^12 bytes/s")


class GpuInterconnect(_Spec):
    nvlink_gb_per_s: PositiveFloat = Field(description="NVLink bandwidth per GPU, both directions together")
    allreduce_bus_efficiency: float = Field(gt=0, le=1, description="NCCL ring bus bandwidth / line rate")
    allreduce_latency_s: NonNegativeFloat = Field(description="fixed cost of one all-reduce")


class GpuKernels(_Spec):
    attention_efficiency: float = Field(gt=0, le=1, description="flash-attention FLOP rate / tensor peak")
    serving_kernel_overhead_s: NonNegativeFloat | None = Field(
        default=None,
        description="per-kernel fixed time when a serving engine replays the step as a CUDA graph "
        "(None: the fitted launch_s of eager launches)",
    )


class GpuPower(_Spec):
    tdp_w: PositiveFloat


class GpuInstance(_Spec):
    name: str
    gpus: PositiveInt = Field(description="GPUs in one instance, all on one NVLink/NVSwitch fabric")


class MemoryCurve(_Spec):
    """Streaming kernels (copies, elementwise, norms): time = max(floor_s, launch_s + bytes / (bw * efficiency))."""

    bandwidth_efficiency: float = Field(gt=0, le=1, description="large-transfer asymptote, fraction of HBM peak")
    launch_s: NonNegativeFloat = Field(description="fixed time of one kernel: launch, ramp-up and tail")
    floor_s: NonNegativeFloat = Field(description="shortest time one CUDA-event-timed launch ever shows")


class TileClass(_Spec):
    """GEMM kernels of one kind (tensor-core or SIMT): candidate output tiles and how well each runs."""

    tiles: list[tuple[PositiveInt, PositiveInt]] = Field(description="candidate (rows, cols) output tiles")
    tile_efficiency: list[float] = Field(description="per tile: FLOP rate of one busy SM / its peak share")
    k_overhead: NonNegativeFloat = Field(description="per-tile fixed cost in K elements (prologue, epilogue)")
    stream_efficiency: float = Field(gt=0, le=1, description="operand streaming of tiled GEMMs, fraction of HBM peak")
    gemv_stream_efficiency: float = Field(gt=0, le=1, description="matrix-vector kernels (M or N = 1)")

    @model_validator(mode="after")
    def _one_efficiency_per_tile(self) -> TileClass:
        if not self.tiles:
            raise ValueError("tiles must list at least one (rows, cols) tile")
        if len(self.tile_efficiency) != len(self.tiles):
            raise ValueError(f"tile_efficiency has {len(self.tile_efficiency)} values for {len(self.tiles)} tiles")
        if any(not 0 < e <= 1 for e in self.tile_efficiency):
            raise ValueError("every tile_efficiency must lie in (0, 1]")
        return self


class GemmCurve(_Spec):
    overhead_s: NonNegativeFloat = Field(description="GEMM fixed time beyond a streaming kernel's launch_s")
    combine_exponent: float = Field(ge=1, description="p of the smooth max (t_compute^p + t_memory^p)^(1/p)")
    max_split_k: PositiveInt = Field(description="largest split-K factor considered when tiles leave SMs idle")
    tensor: TileClass = Field(description="bf16/fp16/fp8/tf32 tensor-core kernels")
    simt: TileClass = Field(description="fp32 kernels without TF32 (CUDA cores)")


class FitRecord(_Spec):
    date: str
    method: str
    device: str
    data: list[str] = Field(description="data files fitted on, each 'name sha256:<hex>'")
    median_rel_error: dict[str, float] = Field(default_factory=dict, description="per dataset, at the fit")


class FittedCurves(_Spec):
    fit: FitRecord
    memory: MemoryCurve
    gemm: GemmCurve


class GpuSpec(_Spec):
    name: str
    description: str = ""
    efficiency_fit: str | None = Field(default=None, description="name of a built-in fitted-curves file")
    efficiency: FittedCurves | None = Field(default=None, description="fitted curves inline (own file)")
    compute: GpuCompute
    memory: GpuMemory
    interconnect: GpuInterconnect
    kernels: GpuKernels
    power: GpuPower
    instance: GpuInstance

    @model_validator(mode="after")
    def _one_source_of_curves(self) -> GpuSpec:
        if (self.efficiency_fit is None) == (self.efficiency is None):
            raise ValueError(
                "give exactly one of efficiency_fit (a built-in fit such as 'h100') or an [efficiency] table"
            )
        return self

"""Hardware specs as validated data (pydantic).

A preset file (TOML, under hw/presets/) fills these models; every number in it carries its source as
a comment. Code never hard-codes a hardware number: it reads it from here. Units are in field names.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator


class _Spec(BaseModel):
    # Unknown keys are typos in a user's spec file: reject them rather than ignore them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineSpec(_Spec):
    """One compute engine's sequencer: its clock and its fixed instruction overheads."""

    clock_ghz: PositiveFloat
    min_ii_cycles: PositiveInt = Field(description="minimum initiation interval of any instruction")
    pipeline_latency_cycles: int = Field(
        ge=0, description="cycles after an instruction's issue slot before a dependent may start"
    )


class TensorEngineSpec(EngineSpec):
    pe_rows: PositiveInt = Field(description="systolic array rows = max contraction (partition) size")
    pe_cols: PositiveInt = Field(description="systolic array columns = max stationary free size")
    moving_fmax: PositiveInt = Field(description="max moving free size of one nc_matmul")
    fp32_cost_factor: PositiveInt = Field(description="fp32/tf32 matmuls take this many times longer")
    fp8_double_row: bool = Field(description="fp8 double-row mode (2x fp8 throughput) is available")
    psum_output_dtypes: list[str] = Field(description="dtypes nc_matmul may write into PSUM")
    mx_speedup: float = Field(
        default=0.0, ge=0, description="nc_matmul_mx (MXFP8/MXFP4) throughput over bf16; 0 = no MX matmul"
    )
    transpose_mode_fp32_speedup: float = Field(
        default=0.0,
        ge=0,
        description="nc_matmul(is_transpose=True) on fp32 over a plain fp32 matmul; 0 = no transpose mode (NC-v2)",
    )


class VectorEngineSpec(EngineSpec):
    bf16_copy_speedup: PositiveFloat = Field(
        description="perf mode for bf16/fp16 tensor_copy/tensor_scalar SBUF->SBUF with unit stride"
    )
    bf16_speedup: PositiveFloat = Field(description="perf mode for other all-bf16 instructions")
    transpose_max: PositiveInt = Field(description="largest [n, n] block VectorE nc_transpose handles")
    bn_stats_fmax: PositiveInt = Field(description="elements per partition one bn_stats takes")
    exponential_speedup: float = Field(
        default=0.0, ge=0, description="nisa.exponential's rate over ScalarE's activation(exp); 0 = no exponential"
    )
    mx_quantize_elems_per_cycle: float = Field(
        default=0.0, ge=0, description="quantize_mx elements per partition per cycle; 0 = no quantize_mx"
    )


class ScalarEngineSpec(EngineSpec):
    bf16_speedup: PositiveFloat = Field(description="perf mode for bf16 tensor_scalar/tensor_copy")


class GpSimdEngineSpec(EngineSpec):
    start_cycles: PositiveInt = Field(description="fixed start-up of a GpSimd instruction (GPSIMD_START)")
    # nisa.local_gather: 150 + (indices * elems)/C, C = ((setup + t*elems)/(t*elems)) / min(4/dtype_bytes, elems)
    local_gather_setup_cycles: float = Field(
        default=28.0, ge=0, description="local_gather's per-index setup term of C (the 28 of the legacy docstring)"
    )
    local_gather_t: float = Field(
        default=4.0, gt=0, description="local_gather's software constant t of C (legacy docstring: 'currently 4')"
    )
    topk_cycles_per_element: float = Field(
        default=4.0, gt=0, description="nisa.topk: cycles per snake element (4*n + K per partition, NKI 0.6 docs)"
    )


class SyncEngineSpec(EngineSpec):
    pass


class SbufSpec(_Spec):
    partitions: PositiveInt
    partition_bytes: PositiveInt
    full_rate_max_stride_bytes: PositiveInt = Field(
        description="innermost access stride (bytes) at or above which an engine port runs at half rate"
    )
    strided_slowdown: PositiveFloat


class PsumSpec(_Spec):
    partitions: PositiveInt
    banks: PositiveInt
    bank_bytes: PositiveInt = Field(description="bytes per partition in one bank (512 fp32)")
    max_tile_banks: PositiveInt = Field(description="banks one tile (matmul output) may span")

    @property
    def partition_bytes(self) -> int:
        return self.banks * self.bank_bytes


class DmaSpec(_Spec):
    queues: PositiveInt = Field(description="DMA queues (engines) per core")
    queue_bytes_per_ns: PositiveFloat = Field(description="bandwidth of one DMA queue, bytes/ns = GB/s")
    fixed_latency_ns: float = Field(ge=0, description="descriptor + semaphore latency of one transfer")
    descriptor_overhead_bytes: float = Field(
        ge=0,
        description="per-descriptor cost in byte-times: a run of b contiguous bytes moves at b/(b+this)",
    )
    efficient_row_bytes: PositiveInt = Field(
        description="contiguous bytes per partition a transfer needs to approach the queue's peak (shortest run)"
    )
    saturating_row_bytes: PositiveInt = Field(
        description="contiguous bytes per partition at which a transfer saturates the queue (planners' preferred run)"
    )
    transfer_overhead_ns: float = Field(
        default=0.0,
        ge=0,
        description=(
            "per-transfer descriptor/semaphore processing that occupies a queue: one transfer holds its queue for "
            "max(this, data time), so small transfers are bound by the transfer rate, not bandwidth (0: not modelled)"
        ),
    )
    transpose_sbuf_fraction: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="share of DMA throughput an SBUF->SBUF dma_transpose achieves (0: no DMA transpose, before NC-v3)",
    )
    transpose_hbm_fraction: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="share of DMA throughput an HBM->SBUF dma_transpose achieves (0: no DMA transpose, before NC-v3)",
    )


class CoreSpec(_Spec):
    nc_version: int = Field(ge=2, le=4, description="NeuronCore generation (NKI nc_version gen2..gen4)")
    tensor: TensorEngineSpec
    vector: VectorEngineSpec
    scalar: ScalarEngineSpec
    gpsimd: GpSimdEngineSpec
    sync: SyncEngineSpec
    sbuf: SbufSpec
    psum: PsumSpec
    dma: DmaSpec
    sbuf_exclusive_engines: list[list[str]] = Field(
        default_factory=list, description="groups of engines that cannot access SBUF at the same time"
    )
    psum_exclusive_engines: list[list[str]] = Field(
        default_factory=list, description="groups of engines that cannot access PSUM at the same time"
    )

    @model_validator(mode="after")
    def _partitions_agree(self) -> CoreSpec:
        if self.sbuf.partitions != self.psum.partitions:
            raise ValueError("sbuf.partitions and psum.partitions must be equal")
        if self.tensor.pe_rows != self.sbuf.partitions:
            raise ValueError("tensor.pe_rows must equal sbuf.partitions (contraction runs over partitions)")
        engines = {"tensor", "vector", "scalar", "gpsimd", "sync"}
        for group in (*self.sbuf_exclusive_engines, *self.psum_exclusive_engines):
            unknown = set(group) - engines
            if unknown:
                raise ValueError(f"unknown engine(s) {sorted(unknown)} in an exclusive group; known: {sorted(engines)}")
        return self


class ChipSpec(_Spec):
    physical_cores: PositiveInt
    default_lnc: PositiveInt = Field(description="physical cores per logical core by default (LNC)")
    hbm_bytes: PositiveInt
    hbm_bytes_per_ns: PositiveFloat = Field(description="HBM bandwidth of the chip, bytes/ns = GB/s")
    dense_bf16_tflops: PositiveFloat = Field(description="published chip peak, used to check the preset")

    @model_validator(mode="after")
    def _lnc_divides(self) -> ChipSpec:
        if self.physical_cores % self.default_lnc:
            raise ValueError("default_lnc must divide physical_cores")
        return self


class Topology(StrEnum):
    single = "single"
    ring = "ring"
    torus_2d = "torus_2d"
    torus_2d_ring = "torus_2d_ring"  # 2D torus inside a node, a ring across nodes (Trn2 UltraServer)
    all_to_all = "all_to_all"


class InstanceSpec(_Spec):
    name: str
    chips: PositiveInt
    topology: Topology
    topology_dims: list[PositiveInt] = Field(default_factory=list, description="e.g. [4, 4] for a 2D torus")
    link_bytes_per_ns: float = Field(ge=0, description="chip-to-chip bandwidth per chip, bytes/ns")
    inter_node_link_bytes_per_ns: float = Field(
        default=0.0, ge=0, description="per-chip bandwidth between nodes (torus_2d_ring only), bytes/ns"
    )
    hop_latency_ns: float = Field(ge=0, description="latency of one chip-to-chip hop")

    @model_validator(mode="after")
    def _dims_match_chips(self) -> InstanceSpec:
        if self.topology_dims:
            prod = 1
            for d in self.topology_dims:
                prod *= d
            if prod != self.chips:
                raise ValueError(f"topology_dims {self.topology_dims} multiply to {prod}, not chips={self.chips}")
        return self


class HardwareSpec(_Spec):
    name: str
    description: str = ""
    core: CoreSpec
    chip: ChipSpec
    instances: list[InstanceSpec] = Field(default_factory=list)

    def instance(self, name: str) -> InstanceSpec:
        for inst in self.instances:
            if inst.name == name:
                return inst
        known = ", ".join(i.name for i in self.instances) or "none"
        from trnsim.errors import SpecError

        raise SpecError(f"{self.name} has no instance {name!r}; known: {known}")

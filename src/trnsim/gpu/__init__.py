"""GPU reference model: H100/H200/B200 as a roofline with efficiency curves fitted on measured H100 data.

    from trnsim.gpu import GpuModel, list_gpus, gpu_step_time_s
    h100 = GpuModel.from_preset("h100")
    h100.gemm_time_s(4096, 4096, 4096, "bfloat16")          # seconds, one isolated cuBLAS-like launch
    h100.memory_time_s(2 * 2**30)                            # a 1 GiB copy (bytes read + written)
    h100.attention_time_s(1, 32, 8, 2048, 2048, 128, causal=True)
    h100.allreduce_time_s(16 * 2**20, n_gpus=8)
    gpu_step_time_s(trnsim.models.model_facts("llama-3.1-8b"), h100, n_gpus=1, batch=8, new_tokens=1, context=1024)

Presets (datasheet numbers with sources) are in presets/*.toml; the fitted curves in fitted/h100.toml
(refit with `python -m trnsim.gpu.fit`). A user's own GPU file: `GpuModel.from_preset("my_gpu.toml")`.
"""

from trnsim.gpu.errors import GpuError
from trnsim.gpu.model import GpuModel
from trnsim.gpu.presets import get_gpu_spec, gpu_sources, list_gpus, load_gpu_file, load_gpu_preset
from trnsim.gpu.spec import FittedCurves, GpuSpec
from trnsim.gpu.step_model import OpTime, gpu_step_ops, gpu_step_time_s

__all__ = [
    "FittedCurves",
    "GpuError",
    "GpuModel",
    "GpuSpec",
    "OpTime",
    "get_gpu_spec",
    "gpu_sources",
    "gpu_step_ops",
    "gpu_step_time_s",
    "list_gpus",
    "load_gpu_file",
    "load_gpu_preset",
]

"""FP4 in the GPU model: B200's documented FP4 peak prices compute-bound GEMMs, GPUs without FP4 refuse it."""

from __future__ import annotations

import pytest

from trnsim.gpu.errors import GpuError
from trnsim.gpu.model import GpuModel
from trnsim.gpu.precision import precision_of
from trnsim.gpu.presets import get_gpu_spec


def test_b200_fp4_gemm_runs_at_the_fp4_peak() -> None:
    spec = get_gpu_spec("b200")
    model = GpuModel(spec)
    n = 16384  # compute-bound at every precision: the time follows the peak
    fp8, fp4 = model.gemm_time_s(n, n, n, "fp8"), model.gemm_time_s(n, n, n, "fp4")
    assert spec.compute.dense_fp4_tflops is not None
    assert fp8 / fp4 == pytest.approx(spec.compute.dense_fp4_tflops / spec.compute.dense_fp8_tflops, rel=0.05)
    assert 2 * n**3 / fp4 <= spec.compute.dense_fp4_tflops * 1e12  # never above the peak
    assert precision_of("nvfp4").bytes == 0.5


@pytest.mark.parametrize("gpu", ["h100", "h200"])
def test_fp4_on_a_gpu_without_fp4_tensor_cores_is_a_clear_error(gpu: str) -> None:
    with pytest.raises(GpuError, match="no float4 tensor cores"):
        GpuModel(get_gpu_spec(gpu)).gemm_time_s(1024, 1024, 1024, "fp4")

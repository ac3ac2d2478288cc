"""An estimate's MFU is measured against the peak of the format its weight matmuls ran in: fp8 double-row
(NeuronCore-v3+) at twice the bf16 rate, the bf16 peak otherwise; the summary names the peak."""

from __future__ import annotations

import warnings

import pytest
import torch
from rich.console import Console
from transformers import LlamaConfig

import trnsim
from trnsim.hw.presets import get_spec
from trnsim.models import build_model


def _estimate(target: str, dtype: str) -> trnsim.GraphProfile:
    config = LlamaConfig(
        hidden_size=256,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        intermediate_size=512,
        vocab_size=512,
        num_hidden_layers=1,
    )
    ids = torch.zeros(1, 128, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trnsim.estimate(build_model(config, device="meta"), (ids,), target=target, dtype=dtype)


@pytest.mark.parametrize(("target", "dtype", "name", "rate"), [("trn2", "fp8", "FP8", 2), ("trn2", "bf16", "bf16", 1)])
def test_mfu_is_against_the_peak_of_the_format_used(target: str, dtype: str, name: str, rate: int) -> None:
    spec = get_spec(target)
    profile = _estimate(target, dtype)
    # one PE: a multiply-add per cycle on bf16, two K rows per pass in fp8 double-row
    peak_flops_per_ns = 128 * 128 * 2 * spec.core.tensor.clock_ghz * rate * spec.chip.default_lnc
    assert profile.mfu == pytest.approx(profile.flops / (profile.device_time_us * 1000) / peak_flops_per_ns)
    console = Console(width=200, record=True)
    console.print(profile.summary())
    assert f"of {name} peak" in console.export_text()


def test_fp8_without_double_row_stays_against_the_bf16_peak() -> None:
    profile = _estimate("trn1", "fp8")
    assert profile.mfu_peak.dtype == "bf16" and profile.mfu_peak.speedup == 1.0

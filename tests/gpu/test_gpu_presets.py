"""GPU presets: every number sourced, consistent with the published ratios; own files load; bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomlkit

from trnsim.errors import SpecError
from trnsim.gpu import GpuModel, gpu_sources, list_gpus, load_gpu_file, load_gpu_preset
from trnsim.gpu.measured import BANDWIDTH_FILE, DATA_DIR, GEMM_FILE, file_digest
from trnsim.gpu.presets import PRESET_DIR, load_fitted

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "gpu"


def test_the_three_presets() -> None:
    assert list_gpus() == ["b200", "h100", "h200"]
    assert {load_gpu_preset(n).instance.name for n in list_gpus()} == {
        "p5.48xlarge",
        "p5e.48xlarge",
        "p6-b200.48xlarge",
    }
    assert all(load_gpu_preset(n).instance.gpus == 8 for n in list_gpus())


@pytest.mark.parametrize("name", ["h100", "h200", "b200"])
def test_every_number_has_a_source(name: str) -> None:
    sources = gpu_sources(name)
    missing = [k for k, v in sources.items() if k not in ("name", "description") and not v]
    assert not missing, f"{name}: numbers without a source comment: {missing}"
    assert len(sources) >= 17


@pytest.mark.parametrize("name", ["h100", "h200", "b200"])
def test_published_ratios_hold(name: str) -> None:
    """Dense FP8 is twice BF16, TF32 half of BF16, FP16 equals BF16 on these parts; SIMT FP32 is far below."""
    c = load_gpu_preset(name).compute
    assert c.dense_fp8_tflops == pytest.approx(2 * c.dense_bf16_tflops, rel=0.01)
    assert c.dense_tf32_tflops == pytest.approx(c.dense_bf16_tflops / 2, rel=0.02)
    assert c.dense_fp16_tflops == c.dense_bf16_tflops
    assert c.fp32_tflops < c.dense_tf32_tflops / 5


def test_h100_matches_the_measured_device() -> None:
    meta = json.loads((DATA_DIR / GEMM_FILE).read_text())["meta"]
    spec = load_gpu_preset("h100")
    assert spec.compute.sm_count == meta["sms"]
    # NVIDIA's "80GB" is 80 GiB; the driver keeps a little of it.
    assert 0.97 * spec.memory.hbm_gib <= meta["mem_gib"] <= spec.memory.hbm_gib
    # The measured large-copy bandwidth stays under the datasheet peak.
    rows = json.loads((DATA_DIR / BANDWIDTH_FILE).read_text())["rows"]
    assert max(r["gbps"] for r in rows) < spec.memory.hbm_tb_per_s * 1e3


def test_h200_and_b200_reuse_the_h100_fit() -> None:
    assert load_gpu_preset("h200").efficiency_fit == "h100"
    assert load_gpu_preset("b200").efficiency_fit == "h100"
    assert GpuModel.from_preset("b200").curves == GpuModel.from_preset("h100").curves


def test_fitted_file_names_its_data_and_the_copies_match() -> None:
    fit = load_fitted("h100").fit
    recorded = dict(entry.split(" sha256:") for entry in fit.data)
    assert set(recorded) == {GEMM_FILE, BANDWIDTH_FILE}
    for name, digest in recorded.items():
        assert file_digest(DATA_DIR / name) == digest
    assert fit.date.count("-") == 2


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the project's shared/ folder is not beside this checkout")
def test_packaged_data_equals_the_shared_data() -> None:
    for name in (GEMM_FILE, BANDWIDTH_FILE):
        assert file_digest(DATA_DIR / name) == file_digest(SHARED_DATA / name)


def _write(tmp_path: Path, data: dict, name: str = "mygpu.toml") -> Path:
    path = tmp_path / name
    path.write_text(tomlkit.dumps(data))
    return path


def test_user_gpu_file_loads_and_changes_the_model(tmp_path: Path, h100_data: dict) -> None:
    data = h100_data
    data["name"] = "h100-faster-hbm"
    data["memory"]["hbm_tb_per_s"] = 6.7
    model = GpuModel.from_preset(_write(tmp_path, data))
    h100 = GpuModel.from_preset("h100")
    big = 8 * 2**30
    assert model.name == "h100-faster-hbm"
    # A bandwidth-bound op: twice the bandwidth roughly halves the work beyond the launch.
    launch = h100.curves.memory.launch_s
    assert (model.memory_time_s(big) - launch) == pytest.approx((h100.memory_time_s(big) - launch) / 2, rel=1e-9)
    json_path = tmp_path / "mygpu.json"
    json_path.write_text(json.dumps(data))
    assert load_gpu_file(json_path).memory.hbm_tb_per_s == 6.7


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (lambda d: d["compute"].update(sm_cout=132), "compute.sm_cout", "Extra inputs are not permitted"),
        (lambda d: d["memory"].update(hbm_tb_per_s=-1.0), "memory.hbm_tb_per_s", "greater than 0"),
        (lambda d: d["compute"].pop("dense_fp8_tflops"), "compute.dense_fp8_tflops", "Field required"),
        (lambda d: d["interconnect"].update(allreduce_bus_efficiency=1.5), "allreduce_bus_efficiency", "less than"),
        (lambda d: d["instance"].update(gpus="eight"), "instance.gpus", "valid integer"),
        (lambda d: d.pop("efficiency_fit"), "(top level)", "exactly one of efficiency_fit"),
    ],
)
def test_bad_user_file_names_the_field(tmp_path: Path, h100_data: dict, edit, field: str, words: str) -> None:
    data = h100_data
    edit(data)
    with pytest.raises(SpecError) as info:
        load_gpu_file(_write(tmp_path, data))
    message = str(info.value)
    assert "mygpu.toml" in message and field in message and words in message


def test_bad_inline_curves_name_the_field(tmp_path: Path, h100_data: dict) -> None:
    data = h100_data
    data.pop("efficiency_fit")
    curves = tomlkit.parse((PRESET_DIR.parent / "fitted" / "h100.toml").read_text()).unwrap()
    curves["gemm"]["tensor"]["tile_efficiency"] = [0.7, 0.7]
    data["efficiency"] = curves
    with pytest.raises(SpecError, match=r"efficiency\.gemm\.tensor.*tile_efficiency has 2 values for 3 tiles"):
        load_gpu_file(_write(tmp_path, data))


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[compute]\nsm_count = = 3\n')
    with pytest.raises(SpecError, match=r"broken\.toml is not valid toml.*line 3"):
        load_gpu_file(path)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(SpecError, match="unknown GPU preset 'a100'; known: b200, h100, h200"):
        GpuModel.from_preset("a100")
    with pytest.raises(SpecError, match="unknown efficiency_fit 'zz'"):
        load_fitted("zz")

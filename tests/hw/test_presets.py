"""Hardware presets: every number sourced, consistent with published peaks; bad spec files rejected clearly."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from trnsim.errors import SpecError
from trnsim.hw import get_spec, list_presets, load_preset, load_spec, preset_sources
from trnsim.hw.presets import PRESET_DIR
from trnsim.nki.target import get_target_spec, set_target


def test_presets_are_the_four_targets() -> None:
    assert list_presets() == ["inf2", "trn1", "trn2", "trn3"]


@pytest.mark.parametrize("name", ["inf2", "trn1", "trn2", "trn3"])
def test_every_number_has_a_source(name: str) -> None:
    sources = preset_sources(name)
    numeric = {k: v for k, v in sources.items() if k not in ("name", "description")}
    missing = [k for k, v in numeric.items() if not v]
    assert not missing, f"{name}: numbers without a source comment: {missing}"


@pytest.mark.parametrize("name", ["inf2", "trn1", "trn2", "trn3"])
def test_tensor_engine_peak_matches_published_chip_peak(name: str) -> None:
    """cores x 128 x 128 x 2 FLOP x clock should land near the chip's published dense bf16 TFLOPS."""
    s = load_preset(name)
    t = s.core.tensor
    derived = s.chip.physical_cores * t.pe_rows * t.pe_cols * 2 * t.clock_ghz / 1000
    assert derived == pytest.approx(s.chip.dense_bf16_tflops, rel=0.1)


@pytest.mark.parametrize("name", ["inf2", "trn1", "trn2", "trn3"])
def test_dma_queues_fit_within_hbm(name: str) -> None:
    s = load_preset(name)
    per_core = s.core.dma.queues * s.core.dma.queue_bytes_per_ns
    assert per_core < s.chip.hbm_bytes_per_ns  # one core alone is queue-bound, not HBM-bound


def test_target_aliases_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_preset("gen3").name == "trn2"
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "trn1")
    assert get_target_spec().name == "trn1"
    set_target("trn3")
    try:
        assert get_target_spec().name == "trn3"
        assert get_target_spec("inf2").name == "inf2"
    finally:
        set_target(None)


def _preset_data(name: str) -> dict:
    return tomllib.loads((PRESET_DIR / f"{name}.toml").read_text())


def test_user_spec_file_round_trip(tmp_path: Path) -> None:
    data = _preset_data("trn2")
    data["name"] = "trn2-big-sbuf"
    data["core"]["sbuf"]["partition_bytes"] *= 2
    path = tmp_path / "mychip.json"
    path.write_text(json.dumps(data))
    spec = get_spec(path)
    assert spec.name == "trn2-big-sbuf"
    assert spec.core.sbuf.partition_bytes == 2 * load_preset("trn2").core.sbuf.partition_bytes


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d["core"]["tensor"].pop("clock_ghz"), "core.tensor.clock_ghz", "Field required"),
        (lambda d: d["core"]["tensor"].update(clock_ghz="fast"), "core.tensor.clock_ghz", "valid number"),
        (lambda d: d["core"]["tensor"].update(clock_ghz=-1), "core.tensor.clock_ghz", "greater than 0"),
        (lambda d: d["core"]["dma"].update(queus=16), "core.dma.queus", "Extra inputs"),
        (lambda d: d["instances"][0].update(topology_dims=[4, 3]), "instances.0", "multiply to 12"),
        (lambda d: d["chip"].update(default_lnc=3), "chip", "must divide"),
    ],
)
def test_malformed_spec_names_field_and_reason(tmp_path: Path, mutate, field: str, reason: str) -> None:
    data = _preset_data("trn2")
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert field in str(err.value) and reason in str(err.value)


def test_unreadable_and_unknown_specs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unknown hardware preset 'trn9'"):
        load_preset("trn9")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("name = \n")
    with pytest.raises(SpecError, match="not valid"):
        load_spec(bad)

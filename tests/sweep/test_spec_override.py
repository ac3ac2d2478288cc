"""Overriding hardware-spec fields by dotted path: the new value is read back, the rest is unchanged."""

from __future__ import annotations

import pytest

from trnsim.errors import SpecError
from trnsim.hw import load_preset
from trnsim.sweep import SweepError, override_spec, spec_field_paths

TRN2 = load_preset("trn2")


def test_overrides_take_effect_and_leave_the_rest(rng) -> None:
    hbm = float(rng.uniform(1000, 9000))
    clock = float(rng.uniform(1.0, 4.0))
    sbuf = int(rng.integers(64, 512)) * 1024
    link = float(rng.uniform(100, 4000))
    new = override_spec(
        TRN2,
        {
            "chip.hbm_bytes_per_ns": hbm,
            "core.tensor.clock_ghz": clock,
            "core.sbuf.partition_bytes": sbuf,
            "instances[trn2-ultraserver].link_bytes_per_ns": link,
        },
    )
    assert new.chip.hbm_bytes_per_ns == hbm
    assert new.core.tensor.clock_ghz == clock
    assert new.core.sbuf.partition_bytes == sbuf
    assert new.instance("trn2-ultraserver").link_bytes_per_ns == link
    assert new.instance("trn2.48xlarge").link_bytes_per_ns == TRN2.instance("trn2.48xlarge").link_bytes_per_ns
    # every other field is as in the preset
    old_data, new_data = TRN2.model_dump(), new.model_dump()
    assert new_data["core"]["vector"] == old_data["core"]["vector"]
    assert new_data["chip"]["hbm_bytes"] == old_data["chip"]["hbm_bytes"]
    assert new.name != TRN2.name  # a modified spec never passes for the preset
    assert TRN2.chip.hbm_bytes_per_ns == 2900.0  # the cached preset itself is untouched


def test_field_paths_cover_nested_and_instance_fields() -> None:
    paths = spec_field_paths(TRN2)
    assert {"chip.hbm_bytes_per_ns", "core.tensor.clock_ghz", "core.dma.queue_bytes_per_ns"} <= set(paths)
    assert "instances[trn2.48xlarge].hop_latency_ns" in paths
    for path in paths:
        assert not path.endswith(".")


def test_unknown_field_suggests_close_matches() -> None:
    with pytest.raises(SweepError, match=r"did you mean: .*core\.sbuf\.partition_bytes"):
        override_spec(TRN2, {"core.sbuf.partition_byte": 1})
    with pytest.raises(SweepError, match="trnsim hw show"):
        override_spec(TRN2, {"chip.nonsense": 1})


def test_invalid_values_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"chip\.hbm_bytes_per_ns: Input should be greater than 0"):
        override_spec(TRN2, {"chip.hbm_bytes_per_ns": -1.0})
    with pytest.raises(SpecError, match="default_lnc must divide physical_cores"):  # a cross-field rule
        override_spec(TRN2, {"chip.default_lnc": 3})

"""The price and power data files: complete, consistent with the hardware presets, overridable, and their
errors name the key and line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trnsim.cost import CostError, load_power, load_prices
from trnsim.cost.power_table import POWER_FILE
from trnsim.cost.prices import PRICES_FILE
from trnsim.hw import load_preset

REQUIRED = {"trn1.32xlarge", "trn2.48xlarge", "inf2.48xlarge", "p4d.24xlarge", "p5.48xlarge", "p5e.48xlarge"}


def test_builtin_tables_cover_every_instance() -> None:
    prices, power = load_prices(), load_power()
    assert set(prices.instances) >= REQUIRED
    for name, entry in prices.instances.items():
        assert power.chip_w(entry.accelerator) > 0
        assert power.overhead_w(name) > 0
        assert entry.source
        if entry.basis == "assumption":
            assert entry.note.startswith("assumption:"), name
    assert {"trn1", "trn2", "trn3", "inf2", "a100", "h100", "h200", "b200"} <= set(power.chips)
    assert set(power.cooling) == {"air", "liquid"}
    assert power.cooling["liquid"].pue.value < power.cooling["air"].pue.value


def test_every_power_number_has_a_source_or_an_assumption() -> None:
    raw = tomllib.loads(POWER_FILE.read_text())

    def leaves(node: object) -> list[dict[str, object]]:
        if isinstance(node, dict) and "value" in node:
            return [node]
        return [leaf for v in (node.values() if isinstance(node, dict) else []) for leaf in leaves(v)]

    found = leaves(raw)
    assert len(found) >= 20
    assert all(isinstance(leaf["source"], str) and len(leaf["source"]) > 10 for leaf in found)


@pytest.mark.parametrize("instance", ["trn1.32xlarge", "trn2.48xlarge", "inf2.48xlarge"])
def test_neuron_instances_agree_with_the_hardware_presets(instance: str) -> None:
    entry = load_prices().instance(instance)
    spec = load_preset(entry.accelerator)
    assert spec.chip.hbm_bytes == entry.hbm_gib_per_accelerator * 2**30
    preset_instances = {i.name: i.chips for i in spec.instances}
    if instance in preset_instances:
        assert preset_instances[instance] == entry.accelerators


def test_unknown_instance_lists_the_known_ones() -> None:
    with pytest.raises(CostError, match=r"no price for instance 'p9\.xlarge'; known: .*trn2\.48xlarge"):
        load_prices().instance("p9.xlarge")


def test_user_price_overrides_become_basis_user(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[instances."trn2.48xlarge"]\nusd_per_hour = 31.5\n\n'
        '[instances."trn2u.48xlarge"]\naccelerator = "trn2"\naccelerators = 16\nhbm_gib_per_accelerator = 96\n'
        'usd_per_hour = 33.0\nregion = "us-east-2"\n'
    )
    prices = load_prices(path)
    ours = prices.instance("trn2.48xlarge")
    assert ours.usd_per_hour == 31.5 and ours.basis == "user" and ours.source == str(path) and ours.note == ""
    assert ours.accelerators == 16  # fields the user did not give stay ours
    added = prices.instance("trn2u.48xlarge")
    assert added.basis == "user" and added.region == "us-east-2"
    assert load_prices().instance("trn2.48xlarge").usd_per_hour != 31.5  # the built-in table is untouched


def test_user_file_errors_name_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[instances."p5.48xlarge"]\nusd_per_hour = -3\n')
    with pytest.raises(CostError, match=rf"instances\.p5\.48xlarge\.usd_per_hour: .*greater than 0 \({path}:2\)"):
        load_prices(path)
    path.write_text('[instances."p5.48xlarge"]\nusd_per_hr = 3\n')
    with pytest.raises(CostError, match=r"usd_per_hr: Extra inputs are not permitted"):
        load_prices(path)
    path.write_text('[instances."p5.48xlarge"]\nusd_per_hour = = 3\n')
    with pytest.raises(CostError, match=r"not valid TOML: .*line 2"):
        load_prices(path)
    with pytest.raises(CostError, match="cannot read prices file"):
        load_prices(tmp_path / "missing.toml")


def test_power_override_needs_its_own_source(tmp_path: Path) -> None:
    path = tmp_path / "power.toml"
    path.write_text("[chips]\ntrn2 = { value = 450.0 }\n")
    with pytest.raises(CostError, match=r"chips\.trn2\.source: Field required"):
        load_power(path)
    path.write_text(
        '[chips]\ntrn2 = { value = 450.0, source = "our meter, 2026-10" }\n[cooling.air]\n'
        'pue = { value = 1.3, source = "our site" }\n'
    )
    power = load_power(path)
    assert power.chip_w("trn2") == 450.0 and power.cooling["air"].pue.value == 1.3
    assert power.cooling["air"].rack_kw.value == load_power().cooling["air"].rack_kw.value
    path.write_text('[cooling.air]\npue = { value = 0.9, source = "x" }\n')
    with pytest.raises(CostError, match=r"cooling\.air\.pue\.value: .*greater than or equal to 1"):
        load_power(path)


def test_data_files_are_where_the_package_expects() -> None:
    assert PRICES_FILE.name == "prices.toml" and PRICES_FILE.is_file()
    assert POWER_FILE.name == "power.toml" and POWER_FILE.is_file()

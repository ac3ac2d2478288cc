"""Instance prices and accelerator facts (prices.toml), validated; users override them with their own TOML."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from trnsim.cost.errors import CostError
from trnsim.cost.toml_files import read_toml, validate

PRICES_FILE = Path(__file__).parent / "prices.toml"

Basis = Literal["published", "third-party", "assumption", "user"]


class _Strict(BaseModel):
    # Unknown keys are typos in a user's file: reject them rather than ignore them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstancePrice(_Strict):
    """One instance type: what it holds and what an hour of it costs (USD), with where that number came from."""

    accelerator: str = Field(min_length=1, description="chip kind: trn1, trn2, inf2, a100, h100, h200, ...")
    accelerators: PositiveInt = Field(description="accelerator chips per instance")
    hbm_gib_per_accelerator: PositiveFloat
    hardware_source: str = ""
    usd_per_hour: PositiveFloat
    purchase: str = "on-demand"
    region: str = Field(min_length=1)
    as_of: dt.date
    basis: Basis
    source: str = Field(min_length=1)
    note: str = ""

    @model_validator(mode="after")
    def _assumptions_explain_themselves(self) -> InstancePrice:
        if self.basis == "assumption" and not self.note:
            raise ValueError('basis "assumption" needs a note giving the reasoning')
        return self


class PriceTable(_Strict):
    instances: dict[str, InstancePrice]

    def instance(self, name: str) -> InstancePrice:
        try:
            return self.instances[name]
        except KeyError:
            known = ", ".join(sorted(self.instances))
            raise CostError(
                f"no price for instance {name!r}; known: {known}. Add it in a prices file "
                f'([instances."{name}"] with accelerator, accelerators, hbm_gib_per_accelerator, usd_per_hour, '
                "region) and pass it with --prices"
            ) from None


def _apply_user_file(base: dict[str, Any], user: dict[str, Any], path: Path) -> dict[str, Any]:
    """Fields a user gives replace ours. A price given without its own basis counts as basis "user", sourced
    to the user's file and dated today, so our source and note never vouch for the user's number."""
    merged = {k: v for k, v in user.items() if k != "instances"}
    instances = dict(base.get("instances", {}))
    user_instances = user.get("instances", {})
    if not isinstance(user_instances, dict):
        raise CostError(f"prices file {path}: [instances] must be a table of instance tables")
    for name, fields in user_instances.items():
        if not isinstance(fields, dict):
            raise CostError(f'prices file {path}: instances."{name}" must be a table')
        entry = dict(instances.get(name, {}))
        if "basis" not in fields and ("usd_per_hour" in fields or not entry):
            entry |= {"basis": "user", "source": str(path), "note": "", "as_of": dt.date.today()}
        instances[name] = entry | fields
    merged["instances"] = instances
    return merged


@cache
def _builtin() -> tuple[dict[str, Any], str]:
    return read_toml(PRICES_FILE, "prices")


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The built-in price table, with a user's TOML file (same layout as prices.toml) laid over it."""
    data, text = _builtin()
    texts = {str(PRICES_FILE): text}
    origin = f"prices ({PRICES_FILE})"
    if path is not None:
        user_path = Path(path)
        user, user_text = read_toml(user_path, "prices")
        data = _apply_user_file(data, user, user_path)
        texts[str(user_path)] = user_text
        origin = f"prices ({PRICES_FILE} overridden by {user_path})"
    table: PriceTable = validate(PriceTable, data, origin, texts)
    return table

"""Options of torch.compile(model, backend="trnsim", options={...}) and trnsim.compile / trnsim.estimate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trnsim.errors import CompileError
from trnsim.hw.spec import HardwareSpec


class CompileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A HardwareSpec object (e.g. a preset with one field changed) is used as is; the kernel cache keys every
    # invocation by the spec's full JSON, so a modified spec never reuses another spec's entries.
    target: str | HardwareSpec = Field("trn2", description="hardware preset name, spec file, or HardwareSpec")
    mode: Literal["functional", "timing"] = "functional"
    strict: bool = Field(False, description="an op with no lowering is an error instead of a host fallback")
    tp: int = Field(1, ge=1, description="tensor-parallel degree (logical cores the model is sharded over)")
    instance: str | None = Field(
        None, description="instance preset whose topology carries the tp collectives (default: smallest that fits)"
    )
    label: str = ""


def parse_options(options: dict[str, Any] | None, **overrides: Any) -> CompileOptions:
    data = dict(options or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return CompileOptions(**data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        allowed = ", ".join(CompileOptions.model_fields)
        raise CompileError(f"invalid trnsim options: {problems} (allowed options: {allowed})") from None

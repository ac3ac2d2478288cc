"""Executable: a model compiled ahead of time by `trnsim.compile`; call it like the model."""

from __future__ import annotations

from typing import Any

from trnsim.compiler.capture import Captured
from trnsim.compiler.executor import GraphRunner
from trnsim.runtime.graph_profile import GraphProfile
from trnsim.runtime.last_profile import set_last_profile


class Executable:
    def __init__(self, captured: Captured, runner: GraphRunner) -> None:
        self.captured = captured
        self.runner = runner
        self.profile: GraphProfile | None = None

    @property
    def graph(self) -> Any:
        return self.captured.gm.graph

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flat = self.captured.flat_inputs(args, kwargs)
        out, profile = self.runner.run(*flat)
        self.profile = profile
        set_last_profile(profile)
        return self.captured.unflatten(out)

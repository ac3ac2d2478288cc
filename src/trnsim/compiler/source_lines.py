"""Where in the user's model an FX node came from (for error messages and the per-op profile)."""

from __future__ import annotations

import re

import torch.fx

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')
_INTERNAL = ("/torch/", "/trnsim/", "<eval_with_key>", "/transformers/utils/")


def source_of(node: torch.fx.Node) -> str:
    """'file.py:42 (code)' of the innermost user frame that produced `node`, or '' when unknown."""
    trace = node.meta.get("stack_trace") or ""
    frames = _FRAME.findall(trace)
    for path, line, _fn, code in reversed(frames):
        if not any(part in path for part in _INTERNAL):
            return f"{path}:{line} ({code.strip()})"
    if frames:
        path, line, _fn, code = frames[-1]
        return f"{path}:{line} ({code.strip()})"
    return ""

"""Metadata-assert pass: torch.export leaves `_assert_tensor_metadata` checks (dtype/device of a value) in the
graph. Shapes and dtypes are static after capture, so the checks can never fail on the simulated chip; they
are removed so that the fusion passes see each value's real users (an assert counts as a user and would
otherwise stop, e.g., a cast from joining the RMSNorm or elementwise chain before it)."""

from __future__ import annotations

import torch
import torch.fx

ASSERT = torch.ops.aten._assert_tensor_metadata.default


def drop_metadata_asserts(gm: torch.fx.GraphModule) -> int:
    dropped = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is ASSERT and not node.users:
            gm.graph.erase_node(node)
            dropped += 1
    return dropped

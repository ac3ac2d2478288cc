"""Graph passes run on the captured ATen graph before execution, one pass per file."""

from __future__ import annotations

import torch.fx

from trnsim.compiler.passes.attention_masks import simplify_attention_masks
from trnsim.compiler.passes.constant_fold import constant_fold
from trnsim.compiler.passes.elementwise_chains import fuse_elementwise_chains, fuse_gelu_tanh, fuse_rope
from trnsim.compiler.passes.gqa_repeat import fold_gqa_repeat
from trnsim.compiler.passes.matmul_epilogue import fuse_matmul_epilogues
from trnsim.compiler.passes.metadata_asserts import drop_metadata_asserts
from trnsim.compiler.passes.norm_patterns import fuse_rmsnorm


def run_passes(gm: torch.fx.GraphModule) -> None:
    drop_metadata_asserts(gm)
    constant_fold(gm)
    simplify_attention_masks(gm)
    fold_gqa_repeat(gm)
    fuse_rmsnorm(gm)
    # Patterns first (they are DAGs the chain pass would cut apart), then epilogues (an activation or a
    # residual add is cheapest inside the linear), then whatever elementwise chains remain.
    fuse_rope(gm)
    fuse_gelu_tanh(gm)
    fuse_matmul_epilogues(gm)
    fuse_elementwise_chains(gm)
    gm.graph.eliminate_dead_code()
    gm.recompile()

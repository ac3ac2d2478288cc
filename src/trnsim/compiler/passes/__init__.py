"""Graph passes run on the captured ATen graph before execution, one pass per file."""

from __future__ import annotations

import torch.fx

from trnsim.compiler.passes.attention_masks import simplify_attention_masks
from trnsim.compiler.passes.constant_fold import constant_fold
from trnsim.compiler.passes.gqa_repeat import fold_gqa_repeat
from trnsim.compiler.passes.norm_patterns import fuse_rmsnorm


def run_passes(gm: torch.fx.GraphModule) -> None:
    constant_fold(gm)
    simplify_attention_masks(gm)
    fold_gqa_repeat(gm)
    fuse_rmsnorm(gm)
    gm.graph.eliminate_dead_code()
    gm.recompile()

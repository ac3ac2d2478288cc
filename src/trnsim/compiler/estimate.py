"""trnsim.estimate: time a model on the simulated chip from shapes alone (meta / fake tensors, no weights).

Inference: torch.export capture of one rank's model (layer stacks folded), timing-mode execution through
the same lowering as compiled models, collectives for tp > 1. Training (training=True): forward and
backward graphs from AOTAutograd, plus an AdamW update of the rank's parameters.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
from torch.utils._pytree import tree_map

from trnsim.compiler.capture import capture
from trnsim.compiler.executor import GraphRunner, to_meta
from trnsim.compiler.layer_folding import folded, node_multipliers
from trnsim.compiler.move_cost import move_cost
from trnsim.compiler.options import parse_options
from trnsim.compiler.passes import run_passes
from trnsim.compiler.tensor_parallel import TPPlan, local_model
from trnsim.errors import CompileError
from trnsim.hw.presets import get_spec
from trnsim.runtime.graph_profile import GraphProfile, OpRecord
from trnsim.sim.collectives import place

# AdamW with fp32 moments and bf16 weights/grads reads w, g, m, v and writes w, m, v per parameter.
ADAMW_BYTES_PER_PARAM = 2 + 2 + 4 + 4 + 2 + 4 + 4


def estimate(
    model: torch.nn.Module,
    example_inputs: tuple[Any, ...] | list[Any],
    example_kwargs: dict[str, Any] | None = None,
    *,
    target: str = "trn2",
    tp: int = 1,
    instance: str | None = None,
    training: bool = False,
    fold_layers: bool = True,
    label: str = "",
) -> GraphProfile:
    """Device time, per-op breakdown, MFU and HBM traffic of one forward (or training step) of `model`.

    Works on models on the meta device (no weights). `tp` shards Hugging Face decoder models over tp logical
    cores; collectives are costed on `instance` (default: the smallest preset instance with enough chips).
    """
    opts = parse_options(None, target=target, tp=tp, mode="timing")
    spec = get_spec(opts.target)
    placement = place(spec, opts.tp, instance)
    start = time.perf_counter()
    rank_model, config = local_model(model, opts.tp)
    hidden = getattr(config, "hidden_size", 0) if config is not None else 0
    vocab = getattr(getattr(rank_model, "config", None), "vocab_size", 0) or 0
    plan = TPPlan(spec, placement, hidden, vocab)
    args = tree_map(to_meta, tuple(example_inputs))
    kwargs = tree_map(to_meta, dict(example_kwargs or {}))
    name = label or type(model).__name__
    fold: contextlib.AbstractContextManager[dict[str, int]] = (
        folded(rank_model) if fold_layers and not training else contextlib.nullcontext({})
    )
    with fold as stacks:
        if training:
            profile = _training(rank_model, args, kwargs, spec, plan, name)
        else:
            captured = capture(rank_model, args, kwargs)
            run_passes(captured.gm)
            multipliers = node_multipliers(captured.gm, stacks or {})
            runner = GraphRunner(captured.gm, spec, functional=False, label=name, tp=opts.tp, tp_plan=plan)
            _, profile = runner.run(*captured.flat_inputs(args, kwargs))
            for r in profile.records:
                r.count *= multipliers.get(r.node, 1)
    profile.tp = opts.tp
    profile.label = name
    profile.compile_seconds = time.perf_counter() - start
    return profile


def _training(model: torch.nn.Module, args: Any, kwargs: Any, spec: Any, plan: TPPlan, name: str) -> GraphProfile:
    from trnsim.compiler.backend import trnsim_backend
    from trnsim.runtime.last_profile import recording

    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    options = {"target": spec.name, "mode": "timing"}
    compiled = torch.compile(model, backend=lambda gm, ex: trnsim_backend(gm, ex, options))
    with recording() as profiles:
        out = compiled(*args, **kwargs)
        loss = _first_tensor(out)
        if loss is None:
            raise CompileError(f"{name} returned no tensor to differentiate for a training step")
        loss.float().sum().backward()
    if not profiles:
        raise CompileError(f"no graph of {name} reached the trnsim backend")
    total = GraphProfile(target=spec.name, mode="timing", spec=spec, tp=plan.tp, label=f"{name} training step")
    for prof in profiles:
        total.records.extend(prof.records)
        total.cache_hits += prof.cache_hits
        total.cache_misses += prof.cache_misses
    n_params = sum(p.numel() for p in model.parameters())
    us, busy = move_cost(spec, n_params * ADAMW_BYTES_PER_PARAM // 2, 2048)
    total.records.append(
        OpRecord(
            node="optimizer",
            op="adamw_update",
            kind="move",
            kernel="adamw_update",
            device_us=us,
            hbm_bytes=n_params * ADAMW_BYTES_PER_PARAM,
            engine_busy_us=busy,
        )
    )
    return total


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        for v in out:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None

"""trnsim.estimate: time a model on the simulated chip from shapes alone (meta / fake tensors, no weights).

Inference: torch.export capture of one rank's model (layer stacks folded), timing-mode execution through
the same lowering as compiled models, collectives for tp > 1. Training (training=True): forward and
backward graphs from AOTAutograd, plus an AdamW update of the rank's parameters.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any

import torch
from torch.utils._pytree import tree_map

from trnsim.compiler.capture import capture
from trnsim.compiler.executor import GraphRunner, to_meta
from trnsim.compiler.gpu_estimate import gpu_estimate, is_gpu_target
from trnsim.compiler.kernel_runner import extrapolation
from trnsim.compiler.layer_folding import folded, node_multipliers
from trnsim.compiler.logical_core import spread_over_logical_core
from trnsim.compiler.move_cost import move_cost
from trnsim.compiler.options import parse_options
from trnsim.compiler.passes import run_passes
from trnsim.compiler.tensor_parallel import TPPlan, local_model, tp_roles
from trnsim.errors import CompileError, TrnsimWarning
from trnsim.gc_control import older_objects_frozen
from trnsim.gpu.spec import GpuSpec
from trnsim.hw.presets import get_spec
from trnsim.hw.spec import HardwareSpec
from trnsim.models.build import no_init_fills
from trnsim.runtime.graph_profile import GraphProfile, OpRecord
from trnsim.sim.collectives import place

# AdamW with fp32 moments and bf16 weights/grads reads w, g, m, v and writes w, m, v per parameter.
ADAMW_BYTES_PER_PARAM = 2 + 2 + 4 + 4 + 2 + 4 + 4
ADAMW_MOMENT_BYTES_PER_PARAM = 4 + 4  # the fp32 m and v AdamW keeps resident next to each parameter


@older_objects_frozen()  # full collections inside walk only the estimate's own objects (trnsim.gc_control)
def estimate(
    model: torch.nn.Module,
    example_inputs: tuple[Any, ...] | list[Any],
    example_kwargs: dict[str, Any] | None = None,
    *,
    target: str | HardwareSpec | GpuSpec = "trn2",
    tp: int = 1,
    instance: str | None = None,
    training: bool = False,
    fold_layers: bool = True,
    label: str = "",
    decode: bool = False,
    context: int | None = None,
    dtype: str = "bf16",
    extrapolate: bool | None = None,
) -> GraphProfile:
    """Device time, per-op breakdown, MFU and HBM traffic of one forward (or training step) of `model`.

    Works on models on the meta device (no weights). `tp` shards Hugging Face decoder models over tp logical
    cores; collectives are costed on `instance` (default: the smallest preset instance with enough chips).
    target: a hardware preset name, a spec file, a (possibly modified) HardwareSpec, or a GPU preset name
    ("h100", "h200", "b200") / GpuSpec, which prices the same captured graph on the GPU model.
    decode=True: one decode step instead, the input ids [B, 1] (one new token per sequence) over a KV cache of
    `context` tokens each (trnsim.compiler.decode_estimate).
    dtype: "bf16", or "fp8" (or "fp4" on GPUs with FP4) for the weight matmuls (trnsim.compiler.dtype_estimate).
    extrapolate: extend long kernel loops from short probes (within ~1% of full simulation, several times
    faster at model scale; compiler/loop_extrapolation.py); None: as an enclosing kernel_runner.extrapolation()
    block says, else TRNSIM_EXTRAPOLATE (default off).
    """
    if str(dtype).lower() not in ("bf16", "bfloat16"):
        from trnsim.compiler.dtype_estimate import estimate_in_dtype

        def run() -> GraphProfile:
            return estimate(
                model,
                example_inputs,
                example_kwargs,
                target=target,
                tp=tp,
                instance=instance,
                training=training,
                fold_layers=fold_layers,
                label=label,
                decode=decode,
                context=context,
                extrapolate=extrapolate,
            )

        return estimate_in_dtype(run, dtype, model, gpu=is_gpu_target(target), training=training, target=target)
    if decode or context is not None:
        from trnsim.compiler.decode_estimate import decode_batch, decode_estimate

        batch = decode_batch(example_inputs, example_kwargs, decode, context, training)
        assert context is not None
        return decode_estimate(
            model,
            batch,
            context,
            target=target,
            tp=tp,
            instance=instance,
            fold_layers=fold_layers,
            label=label,
            extrapolate=extrapolate,
        )
    if is_gpu_target(target):
        if training:
            raise CompileError("training estimates run on Trainium-class targets only; use target='trn2' etc.")
        assert not isinstance(target, HardwareSpec)
        return gpu_estimate(
            model, example_inputs, example_kwargs, target=target, tp=tp, fold_layers=fold_layers, label=label
        )
    assert not isinstance(target, GpuSpec)
    opts = parse_options(None, target=target, tp=tp, mode="timing")
    spec = get_spec(opts.target)
    placement = place(spec, opts.tp, instance)
    start = time.perf_counter()
    with no_init_fills():  # local_model builds ranks on the meta device only: nothing to fill
        rank_model, config = local_model(model, opts.tp)
    hidden = getattr(config, "hidden_size", 0) if config is not None else 0
    vocab = getattr(getattr(rank_model, "config", None), "vocab_size", 0) or 0
    top_k = int(getattr(config, "num_experts_per_tok", None) or 1) if config is not None else 1
    # collectives follow the weights
    plan = TPPlan(spec, placement, hidden, vocab, tp_roles(rank_model, opts.tp), moe_top_k=top_k)
    args = tree_map(to_meta, tuple(example_inputs))
    kwargs = tree_map(to_meta, dict(example_kwargs or {}))
    name = label or type(model).__name__
    fold: contextlib.AbstractContextManager[dict[str, int]] = (
        folded(rank_model) if fold_layers and not training else contextlib.nullcontext({})
    )
    with fold as stacks, extrapolation(extrapolate):
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
    if not training:
        # with folded layer stacks the graph held one layer's weights; the rank holds all of them
        profile.weight_bytes = _resident_bytes(rank_model)
        if not profile.fits_hbm:
            warnings.warn(
                f"trnsim: {name} needs {profile.peak_hbm_bytes / 2**30:.3g} GiB of HBM per rank (weights "
                f"{profile.weight_bytes / 2**30:.3g} GiB, activations "
                f"{profile.activation_arena_bytes / 2**30:.3g} GiB), "
                f"more than the {profile.hbm_capacity_bytes / 2**30:.3g} GiB a rank of {spec.name} has: raise tp "
                "or shorten the sequence",
                TrnsimWarning,
                stacklevel=2,
            )
    spread_over_logical_core(profile, spec)
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
    options = {"target": spec, "mode": "timing"}  # the spec object itself: a modified preset stays modified
    compiled = torch.compile(model, backend=lambda gm, ex: trnsim_backend(gm, ex, options))
    config = getattr(model, "config", None)
    use_cache = getattr(config, "use_cache", None)
    try:
        if use_cache:  # a training step keeps no KV cache (Hugging Face builds one outside the traced graph)
            config.use_cache = False  # type: ignore[union-attr]
        with recording() as profiles:
            out = compiled(*args, **kwargs)
            loss = _first_tensor(out)
            if loss is None:
                raise CompileError(f"{name} returned no tensor to differentiate for a training step")
            loss.float().sum().backward()
    except torch._dynamo.exc.TorchDynamoException as err:
        raise CompileError(
            f"the training step of {name} could not be captured: {type(err).__name__}: {str(err).splitlines()[0]}"
        ) from err
    finally:
        if use_cache:
            config.use_cache = use_cache  # type: ignore[union-attr]
    if not profiles:
        raise CompileError(f"no graph of {name} reached the trnsim backend")
    total = GraphProfile(target=spec.name, mode="timing", spec=spec, tp=plan.tp, label=f"{name} training step")
    for prof in profiles:
        total.records.extend(prof.records)
        total.cache_hits += prof.cache_hits
        total.cache_misses += prof.cache_misses
    n_params = sum(p.numel() for p in model.parameters())
    # HBM: the graphs run one after another (the forward's saved activations are the backward's inputs, so
    # each graph's own plan holds them); resident are the weights plus AdamW's two fp32 moments per parameter
    total.weight_bytes = max(p.weight_bytes for p in profiles) + n_params * ADAMW_MOMENT_BYTES_PER_PARAM
    total.activation_peak_bytes = max(p.activation_peak_bytes for p in profiles)
    total.activation_arena_bytes = max(p.activation_arena_bytes for p in profiles)
    total.reused_buffers = sum(p.reused_buffers for p in profiles)
    if not total.fits_hbm:
        warnings.warn(
            f"trnsim: a training step of {name} needs {total.peak_hbm_bytes / 2**30:.3g} GiB of HBM per rank "
            f"(weights and optimizer state {total.weight_bytes / 2**30:.3g} GiB, activations "
            f"{total.activation_arena_bytes / 2**30:.3g} GiB), more than the {total.hbm_capacity_bytes / 2**30:.3g} "
            f"GiB a rank of {spec.name} has: raise tp, shorten the sequence or use a smaller batch",
            TrnsimWarning,
            stacklevel=3,
        )
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


def _resident_bytes(model: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers one rank keeps in HBM (meta tensors carry sizes, not data)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)

"""trnsim.estimate(..., target="h100"): the same captured graph priced op by op on the GPU reference model.

The rank model is captured exactly as for Trainium (torch.export, layer stacks folded, trnsim's graph passes)
and then walked on meta tensors. Every node that computes is one GPU kernel, as in an eager forward pass:
- matrix products (linear, addmm, mm, bmm, the experts' grouped_mm): `GpuModel.gemm_time_s` (M x N x K, batched
  for bmm, one group per expert for grouped_mm);
- scaled_dot_product_attention: `GpuModel.attention_time_s` (flash attention, grouped-query heads);
- every other computing op (norms, elementwise, copies, embedding gathers): `GpuModel.memory_time_s` of the
  bytes it reads and writes;
- views (ops whose result aliases an input, per the ATen schema) and constants are free.
Each kernel pays the fitted per-kernel launch time (`launch_s` in gpu/fitted/*.toml, with its fit record),
since kernels run back to back in a stream (`isolated=False`), or `kernel_overhead_s` in its place (serving
estimates pass the preset's `kernels.serving_kernel_overhead_s`, a CUDA-graph replay). With tp > 1 the
row-parallel projections end in an NVLink all-reduce and the logits in an all-gather, by the same rule the
Trainium estimate uses.
"""

from __future__ import annotations

import contextlib
import operator
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch.utils._pytree import tree_flatten, tree_map

from trnsim.compiler.capture import capture
from trnsim.compiler.dtype_estimate import gpu_gemm_format
from trnsim.compiler.executor import to_meta
from trnsim.compiler.layer_folding import folded, node_multipliers
from trnsim.compiler.lowering.table import op_name
from trnsim.compiler.passes import run_passes
from trnsim.compiler.tensor_parallel import local_model
from trnsim.errors import CompileError
from trnsim.gpu.model import GpuModel
from trnsim.gpu.presets import get_gpu_spec, list_gpus
from trnsim.gpu.spec import GpuSpec
from trnsim.hw.spec import HardwareSpec
from trnsim.runtime.graph_profile import GraphProfile, OpRecord

# Matrix products; the matmul-epilogue pass's fused linear (w [N, K], activation/residual in the epilogue, as
# cuBLAS/CUTLASS epilogues run them) counts as the GEMM it contains.
_LINEAR_LAYOUT = {"aten.linear.default", "matmul_epilogue.linear_epilogue"}
# A mixture-of-experts layer's experts: x [rows, K] sorted by expert times w [experts, K, N] (grouped GEMM).
_GROUPED = {"aten._grouped_mm.default", "transformers.grouped_mm_fallback.default"}
_GEMMS = _LINEAR_LAYOUT | _GROUPED | {"aten.addmm.default", "aten.mm.default", "aten.bmm.default"}
_SDPA = "aten.scaled_dot_product_attention.default"
# Ops that only make a tensor from constants (no input read); cheap fills, priced by their output bytes.
_NO_INPUT_READS = {"aten.arange.start_step", "aten.arange.default", "aten.arange.start", "aten.full.default"}


def is_gpu_target(target: Any) -> bool:
    """Whether `target` names the GPU model (a GPU preset name or a GpuSpec), not a Trainium-class spec."""
    if isinstance(target, GpuSpec):
        return True
    return isinstance(target, str) and target.lower() in list_gpus()


class GpuGraphProfile(GraphProfile):
    """A GraphProfile of a GPU estimate: MFU is measured against the GPU's dense peak for `dtype`."""

    gpu: GpuSpec
    peak_flops_per_s: float

    @property
    def peak_tflops(self) -> float:
        return self.peak_flops_per_s / 1e12

    @property
    def hbm_capacity_bytes(self) -> int:
        """HBM of one GPU (a tensor-parallel rank is one GPU)."""
        return int(self.gpu.memory.hbm_gib * 2**30)


def _is_view(target: Any) -> bool:
    schema = getattr(target, "_schema", None)
    return schema is not None and any(r.alias_info is not None for r in schema.returns)


def _tensor_bytes(values: Any) -> int:
    flat, _ = tree_flatten(values)
    return sum(t.numel() * t.element_size() for t in flat if isinstance(t, torch.Tensor))


def _shapes(values: Any) -> str:
    flat, _ = tree_flatten(values)
    return ", ".join(
        f"{list(t.shape)}:{str(t.dtype).removeprefix('torch.')}" for t in flat if isinstance(t, torch.Tensor)
    )


class _GpuPricer:
    """Walks the captured graph on meta tensors and prices each node on `gpu`."""

    def __init__(self, gpu: GpuModel, tp: int, hidden: int, vocab_local: int, relaunch_s: float = 0.0) -> None:
        self.gpu = gpu
        self.relaunch_s = relaunch_s  # added to every kernel: a serving overhead in place of the fitted launch_s
        self.tp = tp
        self.hidden = hidden
        self.vocab_local = vocab_local
        self.records: list[OpRecord] = []

    def run(self, gm: torch.fx.GraphModule, flat_inputs: list[Any]) -> None:
        env: dict[torch.fx.Node, Any] = {}
        inputs = iter(flat_inputs)
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                env[node] = to_meta(next(inputs))
            elif node.op == "get_attr":
                obj: Any = gm
                for part in str(node.target).split("."):
                    obj = getattr(obj, part)
                env[node] = to_meta(obj)
            elif node.op == "call_function":
                args = torch.fx.node.map_arg(node.args, lambda n: env[n])
                kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
                args, kwargs = tree_map(to_meta, (args, kwargs))
                out = node.target(*args, **kwargs)
                env[node] = out
                if node.target is not operator.getitem:
                    self._price(node, args, kwargs, out)
            elif (node.op == "call_module" and node.target == "_guards_fn") or node.op == "output":
                continue
            else:
                raise CompileError(f"unsupported graph node kind {node.op!r} ({node.name}) in a GPU estimate")

    def _add(self, node: torch.fx.Node, op: str, kind: str, kernel: str, seconds: float, **fields: Any) -> None:
        self.records.append(
            OpRecord(node=node.name, op=op, kind=kind, kernel=kernel, device_us=seconds * 1e6, **fields)
        )

    def _price(self, node: torch.fx.Node, args: Any, kwargs: Any, out: Any) -> None:
        op = op_name(node.target)
        shapes = _shapes(args)
        if _is_view(node.target):
            self._add(node, op, "view", "", 0.0, shapes=shapes)
            return
        if op in _GEMMS:
            self._gemm(node, op, args, out, shapes)
            return
        if op == _SDPA:
            self._attention(node, op, args, kwargs, shapes)
            return
        if not isinstance(out, torch.Tensor) and not _tensor_bytes(out):
            self._add(node, op, "const", "", 0.0, shapes=shapes)
            return
        read = 0 if op in _NO_INPUT_READS else _tensor_bytes((args, kwargs))
        nbytes = read + _tensor_bytes(out)
        seconds = self.gpu.memory_time_s(nbytes, isolated=False) + self.relaunch_s
        self._add(node, op, "kernel", "gpu_stream", seconds, hbm_bytes=nbytes, shapes=shapes)

    def _gemm(self, node: torch.fx.Node, op: str, args: Any, out: torch.Tensor, shapes: str) -> None:
        if op == "aten.addmm.default":
            x, w = args[1], args[2]
            k, n, batch = int(w.shape[0]), int(w.shape[1]), 1
        elif op in _LINEAR_LAYOUT:
            x, w = args[0], args[1]
            k, n, batch = int(w.shape[1]), int(w.shape[0]), 1
        elif op == "aten.mm.default":
            x, w = args[0], args[1]
            k, n, batch = int(w.shape[0]), int(w.shape[1]), 1
        elif op in _GROUPED:  # x [rows, K], w [G, K, N]: rows spread evenly over the experts (as the lowering's)
            x, w = args[0], args[1]
            k, n, batch = int(w.shape[1]), int(w.shape[2]), int(w.shape[0])
        else:  # bmm [b, m, k] @ [b, k, n]
            x, w = args[0], args[1]
            k, n, batch = int(w.shape[1]), int(w.shape[2]), int(w.shape[0])
        m = max(1, -(-x.numel() // (k * batch)))
        dtype, elt = gpu_gemm_format(op, x)  # fp8 estimates: the weight GEMMs in fp8 (compiler/dtype_estimate.py)
        seconds = self.gpu.gemm_time_s(m, n, k, dtype, batch, isolated=False) + self.relaunch_s
        self._add(
            node,
            op,
            "kernel",
            "gpu_gemm",
            seconds,
            flops=2 * m * n * k * batch,
            hbm_bytes=int(elt * batch * (m * k + k * n + m * n)),
            shapes=shapes,
        )
        self._collective(node, op, k, n, out)

    def _collective(self, node: torch.fx.Node, op: str, k: int, n: int, out: torch.Tensor) -> None:
        """Megatron tp: row-parallel linears (out = hidden, in != hidden) all-reduce; the logits all-gather."""
        if self.tp == 1:
            return
        nbytes = out.numel() * out.element_size()
        if n == self.hidden and k != self.hidden:
            kind, seconds = "all_reduce", self.gpu.allreduce_time_s(nbytes, self.tp)
        elif n == self.vocab_local and self.vocab_local != self.hidden:
            # A ring all-gather moves (p-1)/p of the gathered bytes, half of what an all-reduce of them moves.
            kind, seconds = "all_gather", self.gpu.allreduce_time_s(nbytes * self.tp / 2, self.tp)
        else:
            return
        self._add(node, op, "collective", kind, seconds, shapes=_shapes(out))

    def _attention(self, node: torch.fx.Node, op: str, args: Any, kwargs: Any, shapes: str) -> None:
        q, k = args[0], args[1]
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        is_causal = bool(args[5] if len(args) > 5 else kwargs.get("is_causal", False))
        b, h, s_q, d = (int(v) for v in q.shape)
        hkv, s_kv = int(k.shape[1]), int(k.shape[2])
        # An explicit mask is taken as causal when it is square (the masks decoders build); else full attention.
        causal = (is_causal or (mask is not None and s_q == s_kv)) and s_q <= s_kv
        seconds = self.gpu.attention_time_s(b, h, hkv, s_q, s_kv, d, causal, q.dtype, isolated=False)
        seconds += self.relaunch_s
        pairs = s_q * s_kv if not causal else s_q * (s_kv - s_q) + s_q * (s_q + 1) // 2
        elt = q.element_size()
        self._add(
            node,
            op,
            "kernel",
            "gpu_flash_attention",
            seconds,
            flops=4 * b * h * d * pairs,
            hbm_bytes=elt * d * (2 * b * h * s_q + 2 * b * hkv * s_kv),
            shapes=shapes,
        )


@dataclass
class RankGraph:
    """One rank's captured graph, ready to be priced on any GPU (capture is the slow part; pricing is not)."""

    gm: torch.fx.GraphModule
    flat_inputs: list[Any]
    multipliers: dict[str, int]
    tp: int
    hidden: int
    vocab_local: int
    dtype: torch.dtype
    label: str
    capture_seconds: float


def capture_rank_graph(
    model: torch.nn.Module,
    example_inputs: tuple[Any, ...] | list[Any],
    example_kwargs: dict[str, Any] | None = None,
    *,
    tp: int = 1,
    fold_layers: bool = True,
    label: str = "",
) -> RankGraph:
    """Capture one tensor-parallel rank of `model` (layer stacks folded, trnsim's graph passes applied)."""
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise CompileError(f"tp must be a positive integer, got {tp!r}")
    start = time.perf_counter()
    rank_model, config = local_model(model, tp)
    hidden = getattr(config, "hidden_size", 0) if config is not None else 0
    vocab = getattr(getattr(rank_model, "config", None), "vocab_size", 0) or 0
    args = tree_map(to_meta, tuple(example_inputs))
    kwargs = tree_map(to_meta, dict(example_kwargs or {}))
    dtype = next((p.dtype for p in rank_model.parameters()), torch.bfloat16)
    fold: contextlib.AbstractContextManager[dict[str, int]] = (
        folded(rank_model) if fold_layers else contextlib.nullcontext({})
    )
    with fold as stacks:
        captured = capture(rank_model, args, kwargs)
        run_passes(captured.gm)
        multipliers = node_multipliers(captured.gm, stacks or {})
    name = label or type(model).__name__
    flat = captured.flat_inputs(args, kwargs)
    return RankGraph(captured.gm, flat, multipliers, tp, hidden, vocab, dtype, name, time.perf_counter() - start)


def price_rank_graph(
    graph: RankGraph, target: str | GpuSpec = "h100", kernel_overhead_s: float | None = None
) -> GraphProfile:
    """The captured rank graph priced op by op on the GPU `target` (see gpu_estimate)."""
    start = time.perf_counter()
    gpu = GpuModel(get_gpu_spec(target))
    if graph.tp > gpu.spec.instance.gpus:
        raise CompileError(
            f"tp={graph.tp} GPUs exceeds one {gpu.spec.instance.name} ({gpu.spec.instance.gpus} {gpu.name} GPUs on "
            f"one NVLink domain); use tp <= {gpu.spec.instance.gpus}"
        )
    if kernel_overhead_s is not None and not kernel_overhead_s >= 0:
        raise CompileError(f"kernel_overhead_s must be >= 0 seconds, got {kernel_overhead_s!r}")
    relaunch = 0.0 if kernel_overhead_s is None else kernel_overhead_s - gpu.curves.memory.launch_s
    pricer = _GpuPricer(gpu, graph.tp, graph.hidden, graph.vocab_local, relaunch)
    pricer.run(graph.gm, graph.flat_inputs)
    for r in pricer.records:
        r.count *= graph.multipliers.get(r.node, 1)
    profile = GpuGraphProfile(target=gpu.name, mode="timing", spec=_NO_TRN_SPEC, tp=graph.tp, label=graph.label)
    profile.gpu = gpu.spec
    profile.peak_flops_per_s = gpu.peak_flops(graph.dtype)
    profile.records = pricer.records
    profile.compile_seconds = graph.capture_seconds + time.perf_counter() - start
    return profile


def gpu_estimate(
    model: torch.nn.Module,
    example_inputs: tuple[Any, ...] | list[Any],
    example_kwargs: dict[str, Any] | None = None,
    *,
    target: str | GpuSpec = "h100",
    tp: int = 1,
    fold_layers: bool = True,
    label: str = "",
    kernel_overhead_s: float | None = None,
) -> GraphProfile:
    """Device time, per-op breakdown, FLOPs, HBM bytes and MFU of one forward of `model` on one GPU of `target`
    (each of `tp` GPUs when tensor-parallel over NVLink inside one instance).

    kernel_overhead_s replaces the fitted per-kernel launch_s (eager launches) for every kernel, e.g. the
    preset's `kernels.serving_kernel_overhead_s` for a step replayed as a CUDA graph."""
    spec = get_gpu_spec(target)
    if isinstance(tp, int) and tp > spec.instance.gpus:  # fail before the (slow) capture
        raise CompileError(
            f"tp={tp} GPUs exceeds one {spec.instance.name} ({spec.instance.gpus} {spec.name} GPUs on one "
            f"NVLink domain); use tp <= {spec.instance.gpus}"
        )
    graph = capture_rank_graph(model, example_inputs, example_kwargs, tp=tp, fold_layers=fold_layers, label=label)
    return price_rank_graph(graph, spec, kernel_overhead_s)


# A GPU profile has no Trainium-class HardwareSpec; GraphProfile's field is typed for one, and nothing a GPU
# profile reports reads it (its peak comes from the GPU spec).
_NO_TRN_SPEC: HardwareSpec = None  # type: ignore[assignment]

"""The parts of one serving step, each priced by the compiler's estimate (Trainium) or the GPU model.

See trnsim.serve.estimate_step_cost for the decomposition step(B, N, C) = overhead + dense(N) + lm_head(B) -
lm_head(1) + layers x [decode(B, C) + prefill(N - B, C)]; this module computes each part once per argument.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import math
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trnsim.errors import TrnsimError, TrnsimWarning
from trnsim.gpu.model import GpuModel
from trnsim.gpu.presets import get_gpu_spec
from trnsim.gpu.spec import GpuSpec
from trnsim.hw.spec import HardwareSpec
from trnsim.serve.errors import ServeError
from trnsim.serve.step_grid_store import StepLatencyStore
from trnsim.serve.weight_layout import relaid_seconds

OVERHEAD_FILE = Path(__file__).with_name("step_overhead.toml")
SDPA = "aten.scaled_dot_product_attention.default"
DTYPES = {"bfloat16": 2, "float16": 2, "float32": 4}  # served dtypes and their bytes per element
# Decode attention is simulated for up to this many sequences and extended linearly beyond (see estimate_step_cost).
DECODE_SIM_BATCH = 8
# The flash-attention shape whose simulated time per (query, key) pair prices prefill attention.
FLASH_REF_Q, FLASH_REF_KV = 512, 1024
# "pytorch": linears priced on nn.Linear's [out, in] weights; "stack": each at its better layout, as the Neuron
# serving stacks lay weights out at load time (serve/weight_layout.py). Trainium targets only.
WEIGHT_LAYOUTS = ("pytorch", "stack")
# Linear kernels of up to this many tokens are re-priced in the stack layout. Beyond one partition tile each
# weight tile serves 128+ tokens and the GEMM is compute-bound, so the layout's DMA cost is hidden (and
# simulating the big GEMMs twice would only slow the grid).
RELAYOUT_MAX_TOKENS = 128
# The layout StepComponents uses when not given one: set by `weight_layout_for(...)` around a grid build
# (serving_setup does so for a Neuron serving stack), so the builder's signature stays as it is.
_LAYOUT: contextvars.ContextVar[str] = contextvars.ContextVar("serving_weight_layout", default="pytorch")


@contextlib.contextmanager
def weight_layout_for(layout: str) -> Iterator[None]:
    """Step components built inside this block price linears in `layout` (one of WEIGHT_LAYOUTS)."""
    if layout not in WEIGHT_LAYOUTS:
        raise ServeError(f"weight_layout {layout!r} is not one of {', '.join(WEIGHT_LAYOUTS)}")
    token = _LAYOUT.set(layout)
    try:
        yield
    finally:
        _LAYOUT.reset(token)


_VERSION = "3"  # bump when the decomposition changes, so cached tables are recomputed
# Captured rank graphs of GPU estimates, by (config digest, tp, dtype, new tokens): H100 and H200 share them.
_RANK_GRAPHS: dict[tuple[str, int, str, int], Any] = {}
_RANK_GRAPH_CACHE_SIZE = 32


# The trnsim packages on the path from a model to its step table, by target family; the model config and the spec's
# values are hashed into the key apart. Trainium: the kernels' costs (isa, sim, nki, kernels), capture, passes and
# lowering (compiler), the model definitions (models), profile records (runtime) and the hardware code (hw); not
# gpu/. GPUs: the same and gpu/ (the GPU path may not need the simulator's packages, but that is not checked, and
# a stale table costs more than a rebuild). The rest of the project (scheduler, CLI, sweep, docs) only reads tables.
PRICING_PACKAGES = {
    "trainium": ("isa", "sim", "nki", "kernels", "compiler", "models", "runtime", "hw"),
    "gpu": ("isa", "sim", "nki", "kernels", "compiler", "models", "runtime", "hw", "gpu"),
}
# serve/'s own files that turn estimates into step latencies
PRICING_FILES = ("step_components.py", "step_components_ep.py", "estimate_step_cost.py", "weight_layout.py")


@functools.cache
def pricing_fingerprint(family: str) -> str:
    """Hash of everything but the config and spec that a step table of `family` depends on: the source of
    PRICING_PACKAGES and PRICING_FILES and the versions of torch and transformers (they shape the captured graph)."""
    import torch
    import transformers

    from trnsim.compiler.kernel_cache import source_fingerprint

    h = hashlib.sha256(source_fingerprint(PRICING_PACKAGES[family]).encode())
    for name in PRICING_FILES:
        path = Path(__file__).with_name(name)
        if path.exists():
            h.update(name.encode() + path.read_bytes())
    h.update(f"torch={torch.__version__} transformers={transformers.__version__}".encode())
    return h.hexdigest()[:16]


def step_overhead_s(family: str, name: str) -> float:
    """Per-step host overhead for a target (`family` "trainium" or "gpu", `name` its preset), from the data file."""
    data = tomllib.loads(OVERHEAD_FILE.read_text())
    entry = data.get(name) or data[family]
    return float(entry["step_overhead_us"]) * 1e-6


def _bottom_right_pairs(q: float, kv: float) -> float:
    """(query, key) pairs when q queries are the last positions of kv keys under a causal mask."""
    return q * (kv - q) + q * (q + 1) / 2


def prefill_pairs(prefill_tokens: int, context: float) -> float:
    """Attention pairs of `prefill_tokens` chunk tokens split into sequences of at most `context` tokens."""
    if prefill_tokens <= 0:
        return 0.0
    kv = max(1.0, float(context))
    k = math.ceil(prefill_tokens / kv)
    return k * _bottom_right_pairs(prefill_tokens / k, kv)


@dataclass
class _Shape:
    """The per-rank shapes the attention parts need."""

    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    vocab: int


class StepComponents:
    """The parts of a step (see trnsim.serve.estimate_step_cost), each computed once per distinct argument."""

    def __init__(
        self,
        model: str,
        target: str | HardwareSpec | GpuSpec,
        tp: int,
        instance: str | None,
        dtype: str,
        weight_format: str = "bf16",
        weight_layout: str | None = None,
    ) -> None:
        import torch

        from trnsim.compiler.gpu_estimate import is_gpu_target
        from trnsim.compiler.tensor_parallel import shard_config
        from trnsim.models import build_model
        from trnsim.models.config import resolve_config

        if dtype not in DTYPES:
            raise ServeError(f"dtype {dtype!r} is not supported for step estimates; use one of {', '.join(DTYPES)}")
        if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
            raise ServeError(f"tp must be a positive integer, got {tp!r}")
        weight_layout = weight_layout or _LAYOUT.get()
        if weight_layout not in WEIGHT_LAYOUTS:
            raise ServeError(f"weight_layout {weight_layout!r} is not one of {', '.join(WEIGHT_LAYOUTS)}")
        self.weight_layout = weight_layout
        self.model_name = model
        self.tp = tp
        self.instance = instance
        self.dtype = dtype
        self.estimate_calls = 0
        config = resolve_config(model)
        self.config = config
        self.gpu: GpuModel | None = None
        self.spec: HardwareSpec | None = None
        if is_gpu_target(target):
            assert not isinstance(target, HardwareSpec)  # a GPU preset name or a GpuSpec (e.g. a MIG slice)
            self.gpu = GpuModel(get_gpu_spec(target))
            self.target_name = self.gpu.name
            self.family = "gpu"
            if tp > self.gpu.spec.instance.gpus:
                raise ServeError(
                    f"tp={tp} exceeds the {self.gpu.spec.instance.gpus} GPUs of one {self.gpu.spec.instance.name}; "
                    f"use tp <= {self.gpu.spec.instance.gpus}"
                )
        else:
            from trnsim.hw.presets import get_spec
            from trnsim.sim.collectives import place

            assert not isinstance(target, GpuSpec)  # is_gpu_target took those
            self.spec = get_spec(target)
            self.target_name = self.spec.name
            self.family = "trainium"
            self.placement = place(self.spec, tp, instance)  # tp larger than the instance: a clear SpecError
        self.overhead_s = step_overhead_s(self.family, self.target_name)
        # weight matmuls (linears, LM head) in fp8/fp4 (compiler/dtype_estimate.py); None: in `dtype`
        self.format = _check_format(weight_format, self.gpu)
        local = shard_config(config, tp) if tp > 1 else config
        heads = local.num_attention_heads
        self.shape = _Shape(
            layers=int(config.num_hidden_layers),
            heads=heads,
            kv_heads=int(getattr(local, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(local, "head_dim", None) or config.hidden_size // config.num_attention_heads),
            hidden=int(config.hidden_size),
            vocab=int(local.vocab_size),
        )
        self.net = build_model(config, device="meta", dtype=getattr(torch, dtype))
        self.dense_store: StepLatencyStore | None = None  # set by estimated_step_cost when caching on disk
        self.config_digest = hashlib.sha256(
            json.dumps(config.to_dict(), sort_keys=True, default=str).encode()
        ).hexdigest()
        self._dense: dict[int, float] = {}

    # -- identity ------------------------------------------------------------------------------------------
    def cache_key(self) -> str:
        """Names everything the table depends on: model config, target spec, tp, instance, dtype, simulator."""
        config_json = json.dumps(self.config.to_dict(), sort_keys=True, default=str)
        if self.gpu is not None:
            from trnsim.gpu.presets import curves_of

            spec_json = self.gpu.spec.model_dump_json() + curves_of(self.gpu.spec).model_dump_json()
        else:
            assert self.spec is not None
            spec_json = self.spec.model_dump_json()
        digest = hashlib.sha256((config_json + spec_json).encode()).hexdigest()[:16]
        return (
            f"estimate-step v{_VERSION} model={self.model_name} target={self.target_name} tp={self.tp} "
            f"instance={self.instance} dtype={self.dtype}{self._format_key()} "
            f"overhead_s={self.overhead_s:g} hash={digest} "
            f"sim={pricing_fingerprint(self.family)}"
        )

    def _format_key(self) -> str:
        # bf16 keys stay as they were (cached tables remain valid); another format or layout gets its own table
        layout = "" if self.weight_layout == "pytorch" else f" layout={self.weight_layout}"
        return ("" if self.format is None else f" weights={self.format.name}") + layout

    # -- the parts ---------------------------------------------------------------------------------------------
    def dense_s(self, new_tokens: int) -> float:
        """Everything but attention for `new_tokens` packed tokens (logits of the last token only)."""
        hit = self._dense.get(new_tokens)
        if hit is None and self.dense_store is not None:
            hit = self.dense_store.load(self.dense_key()).get((0, new_tokens, 0.0))
        if hit is not None:
            self._dense[new_tokens] = hit
            return hit
        import torch

        from trnsim.compiler.dtype_estimate import matmul_format
        from trnsim.compiler.estimate import estimate
        from trnsim.compiler.gpu_estimate import price_rank_graph

        ids = torch.zeros(1, new_tokens, dtype=torch.long, device="meta")
        keep = {"logits_to_keep": 1}
        if self.gpu is not None:
            graph = self._rank_graph(new_tokens)
            overhead = self.gpu.spec.kernels.serving_kernel_overhead_s
            with matmul_format(self.format):  # the weight GEMMs at the format's peak and bytes
                profile = price_rank_graph(graph, self.gpu.spec, overhead)
        else:
            assert self.spec is not None
            with warnings.catch_warnings():
                # The causal mask's integer ops fall back to the host and are left out of device time; in a
                # serving step that is what is wanted, so the per-estimate warning is only noise here.
                warnings.simplefilter("ignore", TrnsimWarning)
                fmt = {} if self.format is None else {"dtype": self.format.name}  # fp8 weight matmuls
                profile = estimate(
                    self.net,
                    (ids,),
                    keep,
                    target=self.spec,
                    tp=self.tp,
                    instance=self.instance,
                    label=self.model_name,
                    **fmt,
                )
            self.estimate_calls += 1
        records = [r for r in profile.records if r.kind != "host" and r.op != SDPA]
        if self.weight_layout == "stack" and self.gpu is None:
            seconds = relaid_seconds(records, self._k_major_us)
        else:
            seconds = 1e-6 * sum(r.total_device_us for r in records)
        self._dense[new_tokens] = seconds
        if self.dense_store is not None:
            self.dense_store.save(self.dense_key(), [((0, new_tokens, 0.0), seconds)])
        return seconds

    def dense_key(self) -> str:
        """Store key of the dense part alone, so a grid with new batch or context points re-runs no estimate."""
        return self.cache_key() + " part=dense"

    def _rank_graph(self, new_tokens: int) -> Any:
        """The rank's captured graph for `new_tokens` packed tokens, shared by every GPU target in this process
        (capture is the slow part of a GPU estimate and does not depend on the GPU)."""
        import torch

        from trnsim.compiler.gpu_estimate import capture_rank_graph

        key = (self.config_digest, self.tp, self.dtype, new_tokens)
        graph = _RANK_GRAPHS.get(key)
        if graph is None:
            ids = torch.zeros(1, new_tokens, dtype=torch.long, device="meta")
            graph = capture_rank_graph(self.net, (ids,), {"logits_to_keep": 1}, tp=self.tp, label=self.model_name)
            self.estimate_calls += 1
            if len(_RANK_GRAPHS) >= _RANK_GRAPH_CACHE_SIZE:
                _RANK_GRAPHS.pop(next(iter(_RANK_GRAPHS)))
            _RANK_GRAPHS[key] = graph
        return graph

    def _gpu_relaunch_s(self) -> float:
        """What the serving per-kernel overhead adds to (or takes from) the GPU model's fitted launch_s."""
        assert self.gpu is not None
        graph = self.gpu.spec.kernels.serving_kernel_overhead_s
        return 0.0 if graph is None else graph - self.gpu.curves.memory.launch_s

    @functools.cache  # noqa: B019 (one StepComponents per grid build; the cache lives as long as it does)
    def lm_head_s(self, rows: int) -> float:
        """The logits linear (and its tp all-gather) for `rows` tokens."""
        s = self.shape
        if self.gpu is not None:
            gemm_dtype = self.dtype if self.format is None else self.format.gpu
            t = self.gpu.gemm_time_s(rows, s.vocab, s.hidden, gemm_dtype, isolated=False) + self._gpu_relaunch_s()
            if self.tp > 1:
                t += self.gpu.allreduce_time_s(rows * s.vocab * self.tp * _elt(self.dtype) / 2, self.tp)
            return t
        from trnsim import kernels
        from trnsim.compiler.tensor_parallel import TPPlan

        operand = None if self.format is None else self.format.trainium  # the LM head is a weight matmul
        # The compiler lowers this bias-free linear on a constant weight to the matmul kernel on the K-major w.T
        # (the weight laid out offline; compiler/lowering/matmul.py), as dense(N)'s own one-token LM head is; so
        # lm_head(B) - lm_head(1) compares like with like, and lm_head(1) is a kernel-cache hit on dense(N)'s LM
        # head (the same [B, hidden] x [hidden, vocab] operands). The linear kernel on w [vocab, hidden] only
        # where the matmul kernel does not take the operand dtype.
        x2 = self._tensor((rows, s.hidden), operand)
        try:
            us = self._kernel_us(kernels.matmul, (x2, self._tensor((s.hidden, s.vocab), operand)), {})
        except TrnsimError:
            x = self._tensor((1, rows, s.hidden), operand)
            us = self._kernel_us(kernels.linear, (x, self._tensor((s.vocab, s.hidden), operand), None), {})
        if self.tp > 1:
            assert self.spec is not None
            plan = TPPlan(self.spec, self.placement, s.hidden, s.vocab)
            need = plan.after_linear(s.hidden, s.vocab, rows * s.vocab * _elt(self.dtype))
            us += need[1] if need is not None else 0.0
        return us * 1e-6

    @functools.cache  # noqa: B019
    def decode_attention_s(self, batch: int, context: int) -> float:
        """One layer's attention of `batch` single-token queries over `context` keys each."""
        s = self.shape
        if self.gpu is not None:
            return (
                self.gpu.attention_time_s(
                    batch, s.heads, s.kv_heads, 1, context, s.head_dim, True, self.dtype, isolated=False
                )
                + self._gpu_relaunch_s()
            )
        if batch > DECODE_SIM_BATCH:
            lo, hi = DECODE_SIM_BATCH // 2, DECODE_SIM_BATCH
            t_lo, t_hi = self.decode_attention_s(lo, context), self.decode_attention_s(hi, context)
            return t_hi + (batch - hi) * (t_hi - t_lo) / (hi - lo)
        from trnsim import kernels

        q = self._tensor((batch, s.heads, s.head_dim))
        kv = self._tensor((batch, s.kv_heads, context, s.head_dim))
        return self._kernel_us(kernels.decode_attention, (q, kv, kv, [context] * batch), {}) * 1e-6

    @functools.cached_property
    def flash_s_per_pair(self) -> float:
        """Simulated flash-attention seconds per (query, key) pair of one sequence at this rank's heads."""
        from trnsim import kernels

        s = self.shape
        q = self._tensor((1, s.heads, FLASH_REF_Q, s.head_dim))
        kv = self._tensor((1, s.kv_heads, FLASH_REF_KV, s.head_dim))
        us = self._kernel_us(kernels.flash_attention, (q, kv, kv), {"causal": False})
        return us * 1e-6 / (FLASH_REF_Q * FLASH_REF_KV)

    def prefill_attention_s(self, prefill_tokens: int, context: int) -> float:
        """One layer's attention of `prefill_tokens` prompt-chunk tokens with mean KV length `context`."""
        if prefill_tokens <= 0:
            return 0.0
        s = self.shape
        if self.gpu is not None:
            kv = max(1, context)
            k = math.ceil(prefill_tokens / kv)
            q = math.ceil(prefill_tokens / k)
            return (
                self.gpu.attention_time_s(
                    k, s.heads, s.kv_heads, q, max(q, kv), s.head_dim, True, self.dtype, isolated=False
                )
                + self._gpu_relaunch_s()
            )
        return prefill_pairs(prefill_tokens, context) * self.flash_s_per_pair

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        """The step evaluated directly from its parts (what the grid stores at its points)."""
        c = max(1, round(context))
        attention = self.decode_attention_s(batch, c) + self.prefill_attention_s(new_tokens - batch, c)
        # dense(N) holds the logits of one token; a step computes them for the last token of every sequence
        logits = self.lm_head_s(batch) - self.lm_head_s(1)
        return self.overhead_s + self.dense_s(new_tokens) + logits + self.shape.layers * attention

    # -- helpers -----------------------------------------------------------------------------------------------
    @functools.cache  # noqa: B019
    def _k_major_us(self, m: int, k: int, n: int, x_dtype: str, w_dtype: str) -> float | None:
        """One x [m, k] @ w [k, n] (the weight stored transposed) on the rank, or None if not re-priced."""
        if m > RELAYOUT_MAX_TOKENS:
            return None
        from trnsim import dtypes, kernels

        try:
            x = self._tensor((m, k), dtypes.resolve(x_dtype))
            w = self._tensor((k, n), dtypes.resolve(w_dtype))
            return self._kernel_us(kernels.matmul, (x, w), {})
        except TrnsimError:
            return None  # the library matmul does not take these operands: keep the estimate's own linear

    def _tensor(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        from trnsim import dtypes
        from trnsim.nki.kernel import TensorSpec

        return TensorSpec(shape, dtype if dtype is not None else dtypes.resolve(self.dtype))

    def _kernel_us(self, kernel: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        from trnsim.compiler.kernel_runner import run_kernel

        assert self.spec is not None
        _, cost = run_kernel(kernel, args, kwargs, self.spec, functional=False)
        # a rank is a logical core whose physical cores share the kernel's work (compiler/logical_core.py)
        return float(cost.latency_us) / self.spec.chip.default_lnc


def _check_format(weight_format: str, gpu: GpuModel | None) -> Any:
    """The MatmulFormat of `weight_format` (None: bf16), or the project's error naming what the target lacks."""
    from trnsim.compiler.dtype_estimate import check_estimate_dtype
    from trnsim.gpu.precision import precision_of

    fmt = check_estimate_dtype(weight_format, gpu=gpu is not None)
    if fmt is not None and gpu is not None:
        try:
            precision_of(fmt.gpu).peak_flops(gpu.spec.compute)
        except TrnsimError as exc:  # e.g. fp4 on an H100: refused before any grid point is priced
            raise ServeError(f"dtype {weight_format!r} on {gpu.name}: {exc}") from None
    return fmt


def _elt(dtype: str) -> int:
    return DTYPES[dtype]

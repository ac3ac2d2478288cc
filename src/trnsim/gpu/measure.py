"""Measuring a model's prefill and decode step latencies on a real GPU, next to the GPU model's prediction.

The model is built from its preset with random weights (`trnsim.models.build_model`), run eagerly in
PyTorch, and timed with CUDA events around each forward call after warm-up calls; the median is reported.
Decode steps run one new token per sequence on the KV cache the prefill left, so the context grows by one
each step: the prediction is the mean over the same contexts. `device="cpu"` runs the same procedure with a
wall clock (for tests of the procedure itself; CPU times mean nothing for the GPU model).
"""

from __future__ import annotations

import dataclasses
import inspect
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trnsim.gpu.errors import GpuError
from trnsim.gpu.model import GpuModel
from trnsim.gpu.presets import list_gpus
from trnsim.gpu.step_model import ModelShape, gpu_step_time_s

NO_CUDA = (
    "no CUDA GPU is present (torch.cuda.is_available() is False), so nothing can be measured here; "
    "for the GPU model's predicted step latencies run `trnsim gpu measure --model NAME --predicted-only "
    "[--gpu h100|h200|b200]` or call trnsim.gpu.gpu_step_time_s"
)


@dataclass(frozen=True)
class StepLatency:
    """One kind of step: what was run, the measured median (None when not measured) and the prediction."""

    step: str  # "prefill" or "decode"
    batch: int
    new_tokens: int
    context: float  # mean KV-cache length the step ran on
    measured_ms: float | None
    predicted_ms: float

    @property
    def ratio(self) -> float | None:
        """measured / predicted."""
        return None if self.measured_ms is None else self.measured_ms / self.predicted_ms


@dataclass(frozen=True)
class MeasureResult:
    model: str
    gpu: str  # the preset the prediction used
    device: str  # what ran the measurement ("" when nothing was measured)
    layers: int
    iters: int
    steps: list[StepLatency]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for step, d in zip(self.steps, data["steps"], strict=True):
            d["ratio"] = step.ratio
        return data


def gpu_preset_for_device(device_name: str) -> str:
    """The preset matching a CUDA device name such as "NVIDIA H100 80GB HBM3"."""
    lowered = device_name.lower()
    for name in list_gpus():
        if name in lowered:
            return name
    raise GpuError(
        f"no GPU preset matches the device {device_name!r}; pass --gpu with one of {', '.join(list_gpus())} "
        "or a path to your own GPU file"
    )


def _with_layers(facts: ModelShape, layers: int | None) -> ModelShape:
    if layers is None:
        return facts
    if not dataclasses.is_dataclass(facts) or isinstance(facts, type):
        raise GpuError("--layers needs the model's facts as a dataclass (trnsim.models.ModelFacts)")
    return dataclasses.replace(facts, n_layers=layers)


def predicted_steps(
    facts: ModelShape, gpu: GpuModel, batch: int, prompt: int, decode_steps: int, first_decode_context: int
) -> tuple[StepLatency, StepLatency | None]:
    """The prefill (scoring every position, as a plain forward does) and the mean decode step predictions."""
    prefill = StepLatency(
        "prefill", batch, prompt, 0.0, None, 1e3 * gpu_step_time_s(facts, gpu, 1, batch, prompt, 0, logits="all")
    )
    if not facts.is_decoder:
        return prefill, None
    contexts = [first_decode_context + i for i in range(decode_steps)]
    times = [gpu_step_time_s(facts, gpu, 1, batch, 1, c, logits="all") for c in contexts]
    decode = StepLatency("decode", batch, 1, statistics.fmean(contexts), None, 1e3 * statistics.fmean(times))
    return prefill, decode


Timer = Callable[..., tuple[float, Any]]


def _timer(device: str) -> Timer:
    """A function timing one call fn(**kwargs) in ms: CUDA events on a GPU, the wall clock elsewhere."""
    import torch

    if device == "cuda":

        def cuda_time(fn: Callable[..., Any], **kwargs: Any) -> tuple[float, Any]:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn(**kwargs)
            end.record()
            torch.cuda.synchronize()
            return float(start.elapsed_time(end)), out

        return cuda_time

    def wall_time(fn: Callable[..., Any], **kwargs: Any) -> tuple[float, Any]:
        t0 = time.perf_counter()
        out = fn(**kwargs)
        return 1e3 * (time.perf_counter() - t0), out

    return wall_time


def measure_steps(
    model_name: str,
    *,
    gpu: str | None = None,
    batch: int = 1,
    prompt: int = 128,
    iters: int = 20,
    warmup: int = 3,
    layers: int | None = None,
    device: str = "cuda",
    predicted_only: bool = False,
) -> MeasureResult:
    """Measure (unless predicted_only) and predict the prefill and decode steps of a model preset."""
    import torch

    from trnsim.models import model_facts

    for name, value in (("batch", batch), ("prompt", prompt), ("iters", iters)):
        if value < 1:
            raise GpuError(f"--{name} must be >= 1, got {value}")
    if warmup < 0:
        raise GpuError(f"--warmup must be >= 0, got {warmup}")
    if layers is not None and layers < 1:
        raise GpuError(f"--layers must be >= 1, got {layers}")
    measuring = not predicted_only
    if measuring and device == "cuda" and not torch.cuda.is_available():
        raise GpuError(NO_CUDA)
    facts = _with_layers(model_facts(model_name), layers)
    if not facts.vocab_size:
        raise GpuError(f"{model_name} takes no token ids (no vocabulary); gpu measure times token models only")
    device_name = ""
    if measuring:
        device_name = torch.cuda.get_device_name() if device == "cuda" else "cpu (wall clock)"
    preset = gpu or (gpu_preset_for_device(device_name) if device == "cuda" and measuring else "h100")
    gpu_model = GpuModel.from_preset(preset)
    prefill, decode = predicted_steps(facts, gpu_model, batch, prompt, iters, prompt + warmup)
    steps = [prefill] if decode is None else [prefill, decode]
    if measuring:
        measured = _run(model_name, facts, batch, prompt, iters, warmup, layers, device)
        steps = [dataclasses.replace(s, measured_ms=measured[s.step]) for s in steps]
    return MeasureResult(model_name, gpu_model.name, device_name, facts.n_layers, iters, steps)


def _run(
    model_name: str,
    facts: ModelShape,
    batch: int,
    prompt: int,
    iters: int,
    warmup: int,
    layers: int | None,
    device: str,
) -> dict[str, float]:
    import torch

    from trnsim.models import build_model

    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        need = getattr(facts, "weight_bytes", lambda: 0)()
        if need > free:
            raise GpuError(
                f"{model_name} needs {need / 1e9:.1f} GB of weights but the GPU has {free / 1e9:.1f} GB free; "
                "pass --layers N to measure fewer layers"
            )
    model = build_model(model_name, device=device, dtype=torch.bfloat16, num_layers=layers)
    timer = _timer(device)
    ids = torch.randint(0, facts.vocab_size, (batch, prompt), device=device)
    kwargs: dict[str, Any] = {"use_cache": True} if facts.is_decoder else {}
    result: dict[str, float] = {}
    with torch.inference_mode():
        times = [timer(model, input_ids=ids, **kwargs)[0] for _ in range(warmup + iters)]
        result["prefill"] = statistics.median(times[warmup:])
        if facts.is_decoder:
            # A fresh prefill leaves a `prompt`-token cache; each decode step then adds one token to it.
            # transformers >= 5.2x names the KV cache `cache`; earlier versions `past_key_values`.
            cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
            _, out = timer(model, input_ids=ids, **kwargs)
            step_ids = torch.randint(0, facts.vocab_size, (batch, 1), device=device)
            decode_times = []
            for _ in range(warmup + iters):
                step_kwargs = {cache_arg: out[cache_arg], "use_cache": True}
                ms, out = timer(model, input_ids=step_ids, **step_kwargs)
                decode_times.append(ms)
            result["decode"] = statistics.median(decode_times[warmup:])
    return result

"""Compiler and estimate benchmarks (issue 4). Each part prints its numbers; --parts picks some of them.

(a) prefill: Llama-3-8B, batch 1 x 2048 tokens, one trn2 core, trnsim.estimate on the meta device (no
    weights; the 32 identical layers folded): MFU and the per-op breakdown. Target >= 70% MFU.
(b) decode: Llama-3-8B, batch 1, one new token at context 2048, one trn2 core. The one-token forward is
    estimated from shapes like (a), except its attention: a captured one-token model has no KV cache, so its
    (1-key) attention is replaced by the library's decode_attention kernel over a 2048-entry cache, run
    through the kernel runner, once per layer. Roofline: (bytes of every weight matrix the step reads + the
    KV cache) / one core's DMA bandwidth (16 queues x the queue rate, 368 GB/s on trn2). Target >= 80%.
(c) GPT-2 124M (random weights) functional forward at 128 tokens through torch.compile(backend="trnsim"):
    wall time of the first call (capture, lowering, simulation, cold kernel cache) and of the calls after
    it. Target <= 2 s after the first call (DESIGN.md, issue 12).
(d) Llama-3.1-405B prefill, 2048 tokens, tp=64: trnsim.estimate wall time with an empty kernel cache (cold)
    and again (warm). Targets: <= 30 s cold.

Run: .venv/bin/python bench/compiler.py [--parts prefill,decode,gpt2,405b] [--target trn2]
The kernel cache goes to a fresh temporary folder (TRNSIM_CACHE_DIR) unless the variable is set.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import tempfile
import time
import warnings
from typing import Any

import torch

PARTS = ("prefill", "decode", "gpt2", "405b")


def _fresh_cache() -> str:
    from trnsim.compiler.kernel_cache import reset_default_cache

    path = tempfile.mkdtemp(prefix="trnsim-bench-cache-")
    os.environ["TRNSIM_CACHE_DIR"] = path
    reset_default_cache(None)
    return path


def _ids(batch: int, tokens: int) -> torch.Tensor:
    return torch.zeros(batch, tokens, dtype=torch.long, device="meta")


def _cores(profile: Any) -> int:
    """Physical cores in the estimate's rank (a logical core: 2 on trn2); its kernel times are split over them."""
    return int(getattr(profile, "cores_per_rank", 1) or 1)


def _breakdown(profile: Any, top: int = 10) -> None:
    total = profile.device_time_us
    rows = sorted(profile.by_op().items(), key=lambda kv: -kv[1]["device_us"])
    print(f"  {'op':45s} {'count':>6s} {'device ms':>10s} {'share':>6s}")
    for op, v in rows[:top]:
        print(f"  {op:45s} {int(v['count']):6d} {v['device_us'] / 1000:10.2f} {v['device_us'] / total:6.1%}")
    busy = profile.engine_busy_us()  # one physical core's engines
    physical = total * _cores(profile)
    print(
        "  engine busy (% of one physical core's time): "
        + ", ".join(f"{k} {v / physical:.0%}" for k, v in busy.items() if v)
    )


def prefill(target: str) -> None:
    import trnsim
    from trnsim.models import build_model

    start = time.perf_counter()
    profile = trnsim.estimate(build_model("llama-3-8b"), (_ids(1, 2048),), target=target)
    wall = time.perf_counter() - start
    cores = _cores(profile)
    print(
        f"(a) Llama-3-8B prefill 2048 tokens, {target}: {profile.device_time_us * cores / 1000:.1f} ms on one physical "
        f"core ({profile.device_time_us / 1000:.1f} ms on the estimate's logical core of {cores}), "
        f"MFU {profile.mfu:.1%} (target >= 70%), estimate wall {wall:.1f} s"
    )
    _breakdown(profile)


def _core_dma_gbps(spec: Any) -> float:
    dma = spec.core.dma
    return min(dma.queues * dma.queue_bytes_per_ns, spec.chip.hbm_bytes_per_ns)


def decode(target: str, context: int = 2048) -> None:
    import trnsim
    from trnsim.compiler.kernel_runner import run_kernel
    from trnsim.hw.presets import get_spec
    from trnsim.kernels import decode_attention
    from trnsim.models import build_model
    from trnsim.nki import TensorSpec

    spec = get_spec(target)
    model: Any = build_model("llama-3-8b")
    cfg: Any = model.config
    layers, heads, kv_heads = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads
    d = cfg.hidden_size // heads
    profile = trnsim.estimate(model, (_ids(1, 1),), target=target)
    sdpa = "aten.scaled_dot_product_attention.default"
    cores = _cores(profile)  # times below are for one physical core: the estimate's are for a logical core
    rest_us = cores * sum(r.device_us * r.count for r in profile.records if r.op != sdpa)
    one_key_us = cores * sum(r.device_us * r.count for r in profile.records if r.op == sdpa)
    q = TensorSpec((1, heads, d), "bfloat16")
    cache = TensorSpec((1, kv_heads, context, d), "bfloat16")
    _, cost = run_kernel(decode_attention, (q, cache, cache, [context]), {}, spec, functional=False)
    attention_us = layers * cost.latency_us
    step_us = rest_us + attention_us
    embed = model.get_input_embeddings().weight
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p is not embed)
    kv_bytes = layers * 2 * kv_heads * context * d * 2
    roofline_us = (weight_bytes + kv_bytes) / _core_dma_gbps(spec) / 1000.0
    print(
        f"(b) Llama-3-8B decode, batch 1, context {context}, one physical {target} core: step {step_us / 1000:.2f} ms "
        f"(linears and the rest {rest_us / 1000:.2f} ms, decode attention {layers} x {cost.latency_us:.1f} us; "
        f"the captured 1-key attention it replaces: {one_key_us / 1000:.2f} ms)"
    )
    print(
        f"    roofline {roofline_us / 1000:.2f} ms = ({weight_bytes / 1e9:.2f} GB weights + {kv_bytes / 1e9:.3f} GB KV)"
        f" / {_core_dma_gbps(spec):.0f} GB/s -> {roofline_us / step_us:.1%} of the HBM roofline (target >= 80%)"
    )
    _breakdown(profile, top=6)


def gpt2(target: str, calls: int = 3, profile: str | None = None) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    import trnsim  # noqa: F401  (registers backend="trnsim")

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    ids = torch.randint(0, model.config.vocab_size, (1, 128))
    compiled = torch.compile(model, backend="trnsim", options={"target": target})
    times, cpu = [], []
    with torch.no_grad():
        for call in range(calls + 1):
            profiler = cProfile.Profile() if profile and call == calls else None
            start, start_cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            out = compiled(ids)
            if profiler:
                profiler.disable()
                profiler.dump_stats(str(profile))
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        err = (out.logits - model(ids).logits).abs().max().item()
    warm = ", ".join(f"{t:.2f}" for t in times[1:])
    warm_cpu = ", ".join(f"{t:.2f}" for t in cpu[1:])
    print(
        f"(c) GPT-2 124M functional forward, 128 tokens, {target}: first call {times[0]:.1f} s, then {warm} s wall "
        f"({warm_cpu} s CPU time of this process; target <= 2 s); max |logits - eager| = {err:.2e}"
    )


def llama_405b(target: str) -> None:
    import trnsim
    from trnsim.models import build_model

    model = build_model("llama-3.1-405b")
    for label in ("cold", "warm"):
        start = time.perf_counter()
        profile = trnsim.estimate(model, (_ids(1, 2048),), target=target, tp=64)
        wall = time.perf_counter() - start
        print(
            f"(d) Llama-3.1-405B prefill 2048 tokens tp=64, {label} cache: estimate {wall:.1f} s wall; "
            f"{profile.device_time_us / 1000:.0f} ms per rank, MFU {profile.mfu:.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--target", default="trn2")
    parser.add_argument("--profile", default=None, help="gpt2: write a cProfile of the last warm call to this file")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    warnings.simplefilter("ignore")
    if "TRNSIM_CACHE_DIR" not in os.environ:
        print(f"kernel cache: {_fresh_cache()} (empty)")
    runs = {"prefill": prefill, "decode": decode, "gpt2": gpt2, "405b": llama_405b}
    for part in parts:
        if part == "405b":
            _fresh_cache()  # its cold number needs an empty cache
        if part == "gpt2":
            gpt2(args.target, profile=args.profile)
        else:
            runs[part](args.target)


if __name__ == "__main__":
    main()

"""Estimate Llama-3.1-70B prefill on Trainium2 without its weights: the model is built on the meta device,
captured once, its 80 identical layers simulated once, and sharded tensor-parallel over 16 logical cores
(4 chips), with the all-reduces costed on the trn2.48xlarge 2D torus. Run: python examples/04_estimate_70b.py
"""

import torch
from rich.console import Console

import trnsim
from trnsim.models import build_model, model_facts

MODEL = "llama-3.1-70b"
BATCH, PROMPT, TP = 1, 512, 16


def main() -> None:
    facts = model_facts(MODEL)
    net = build_model(MODEL, device="meta")  # no memory for weights
    ids = torch.zeros(BATCH, PROMPT, dtype=torch.long, device="meta")
    prof = trnsim.estimate(net, (ids,), target="trn2", tp=TP, label=MODEL)

    Console().print(prof.summary(top=8))
    tokens = BATCH * PROMPT
    print(f"{MODEL}: {facts.n_params / 1e9:.1f}B parameters, {facts.n_layers} layers, tp={TP}")
    print(
        f"prefill of {tokens} tokens: {prof.device_time_us / 1e3:,.1f} ms per rank "
        f"({tokens / (prof.device_time_us / 1e6):,.0f} tokens/s), collectives {prof.collective_us / 1e3:,.1f} ms"
    )
    print(
        f"bottleneck engine: {prof.bottleneck()}; simulated in {prof.compile_seconds:.1f} s "
        f"(kernel cache: {prof.cache_hits} hits, {prof.cache_misses} misses)"
    )


if __name__ == "__main__":
    main()

"""Serve Llama-3.1-8B on one Trainium2 chip and on one H100 with the serving simulator, under an SLO.

Step latencies: trn2 uses `RooflineStepCost` built from the trn2 preset (the TensorE peak the simulator models,
HBM bandwidth): a lower bound on step time, not the compiler's estimate (`trnsim serve` uses that). H100 uses
the GPU model fitted to measured kernels, through a `StepLatencyGrid` (evaluated on a grid once, then
interpolated). The two are different kinds of number, and the output says so.
Prices and power come from cost/prices.toml and cost/power.toml.
Run: python examples/05_serving.py
"""

from trnsim.cost import load_prices, server_power
from trnsim.gpu import GpuModel, gpu_step_time_s
from trnsim.hw import load_preset
from trnsim.models import model_facts
from trnsim.serve import (
    SLO,
    ContinuousBatching,
    Poisson,
    Replica,
    RooflineStepCost,
    ServedModel,
    StepLatencyGrid,
    Uniform,
    Workload,
    geometric_axis,
    simulate,
)


def one_chip_share(instance: str) -> tuple[float, float]:
    """($/hour, watts at full load) of one accelerator chip of `instance`: the instance's figures / chips."""
    entry = load_prices().instance(instance)
    return entry.usd_per_hour / entry.accelerators, server_power(instance).peak_w / entry.accelerators


def main() -> None:
    facts = model_facts("llama-3.1-8b")
    model = ServedModel(facts.name, facts.weight_bytes(), facts.kv_bytes_per_token(), facts.n_params)

    spec = load_preset("trn2")
    trn2 = spec.chip
    # The peak the simulator runs at: PE rows x cols x 2 FLOP x TensorE clock per core, times the cores
    # (629 TFLOPS; AWS's published chip figure, 667, is kept in the preset as dense_bf16_tflops for reference).
    tensor = spec.core.tensor
    peak_flops = tensor.pe_rows * tensor.pe_cols * 2 * tensor.clock_ghz * 1e9 * trn2.physical_cores
    trn2_cost = RooflineStepCost(
        weight_bytes=facts.weight_bytes(),
        flops_per_token=2.0 * facts.active_params,
        kv_bytes_per_token=facts.kv_bytes_per_token(),
        peak_flops=peak_flops,
        hbm_bytes_per_s=trn2.hbm_bytes_per_ns * 1e9,
    )
    h100 = GpuModel.from_preset("h100")
    h100_cost = StepLatencyGrid(
        # the GPU step model takes new tokens per sequence; a mixed step is taken as evenly split
        lambda b, n, c: gpu_step_time_s(facts, h100, 1, b, max(1, n // b), int(c)),
        batches=geometric_axis(1, 256, 5),
        new_tokens=geometric_axis(1, 8192, 6),
        contexts=[0, 512, 2048, 8192],
    )
    price_trn2, watts_trn2 = one_chip_share("trn2.48xlarge")
    price_h100, watts_h100 = one_chip_share("p5.48xlarge")
    replicas = {
        "trn2 (1 chip)": Replica(trn2.hbm_bytes, trn2_cost, price_trn2, watts_trn2, name="trn2"),
        "H100 (1 GPU)": Replica(h100.spec.memory.hbm_gib * 2**30, h100_cost, price_h100, watts_h100, name="h100"),
    }

    work = Workload(400, Poisson(8.0), prompt=Uniform(200, 2000), output=Uniform(50, 400), seed=1)
    slo = SLO(ttft_ms=1000, tpot_ms=50)
    print(f"{model.name}: {work.num_requests} requests at 8 req/s, SLO TTFT <= 1 s, TPOT <= 50 ms")
    print(
        f"step latency: trn2 = roofline BOUND ({peak_flops / 1e12:.0f} TFLOPS, {trn2.hbm_bytes_per_ns / 1e3:.1f} TB/s; "
        "optimistic), H100 = fitted MODEL of measured kernels; not a like-for-like comparison\n"
    )
    print(
        f"{'replica':15s} {'TTFT p50/p99 ms':>17s} {'TPOT p50 ms':>12s} {'out tok/s':>10s} {'SLO met':>8s} "
        f"{'$/Mtok':>7s} {'J/tok':>6s}  step latency"
    )
    kinds = {"trn2 (1 chip)": "roofline bound", "H100 (1 GPU)": "fitted model"}
    for label, replica in replicas.items():
        m = simulate(model, replica, work, ContinuousBatching(), slo=slo).metrics
        print(
            f"{label:15s} {m.ttft_ms.p50:8.0f}/{m.ttft_ms.p99:<8.0f} {m.tpot_ms.p50:12.1f} {m.throughput_tok_s:10.0f} "
            f"{m.slo_attainment:8.0%} {m.usd_per_mtok:7.2f} {m.j_per_tok:6.2f}  {kinds[label]}"
        )


if __name__ == "__main__":
    main()

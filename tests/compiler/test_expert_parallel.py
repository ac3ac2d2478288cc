"""Expert parallelism in estimates: all-to-all time against the closed form from the presets, the busiest rank's
expert matmul FLOPs under a known routing, the sampled router's spread, resident weights, and bad ep values."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
import transformers

from trnsim import dtypes
from trnsim.compiler import expert_parallel as ep_mod
from trnsim.compiler.dtype_mx import grouped_dims, mx_grouped_cost
from trnsim.compiler.expert_parallel import all_to_all_us, ep_estimate
from trnsim.compiler.expert_parallel_routing import Routing, route_tokens, routing_of, sampled_routing
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.errors import CompileError
from trnsim.hw.presets import get_spec
from trnsim.kernels.mx_matmul import grouped_matmul_mx
from trnsim.models import build_model
from trnsim.nki.kernel import TensorSpec
from trnsim.sim.collectives import place, ranks_per_chip

HIDDEN, EXPERT_WIDTH, EXPERTS, TOP_K, LAYERS = 256, 128, 8, 2, 2


@pytest.mark.parametrize("ep", [8, 32, 64])
def test_all_to_all_on_a_switched_trn3_ultraserver_is_the_closed_form(rng: np.random.Generator, ep: int) -> None:
    spec = get_spec("trn3")
    inst = spec.instance("trn3-ultraserver")
    nbytes = float(rng.integers(1, 64)) * 2**20  # per rank
    r = min(ep, ranks_per_chip(spec))
    chips = math.ceil(ep / r)
    # inside a chip its r ranks swap (r-1)/r of r buffers through HBM, read and written;
    # between chips each sends (c-1)/c of its ranks' r buffers over its links, one switch hop
    intra_ns = 2 * (r - 1) * nbytes / spec.chip.hbm_bytes_per_ns
    inter_ns = (chips - 1) / chips * r * nbytes / inst.link_bytes_per_ns + inst.hop_latency_ns if chips > 1 else 0
    got = all_to_all_us(spec, place(spec, ep, "trn3-ultraserver"), nbytes)
    assert got == pytest.approx((intra_ns + inter_ns) / 1000, rel=1e-12)


def test_all_to_all_on_a_trn2_torus_relays_along_each_ring(rng: np.random.Generator) -> None:
    spec = get_spec("trn2")
    placement = place(spec, 64)  # 16 chips of 4 ranks: the 4 x 4 torus of a trn2.48xlarge
    inst = placement.instance
    assert inst is not None and list(inst.topology_dims) == [4, 4]
    nbytes, r = float(rng.integers(1, 64)) * 2**20, 4
    # ring relay per dimension: (p - 1) / 2 of the chip's r buffers per link direction, p - 1 hops
    ring_ns = 3 / 2 * r * nbytes / inst.link_bytes_per_ns + 3 * inst.hop_latency_ns
    want_ns = 2 * (r - 1) * nbytes / spec.chip.hbm_bytes_per_ns + 2 * ring_ns
    assert all_to_all_us(spec, placement, nbytes) == pytest.approx(want_ns / 1000, rel=1e-12)


def test_all_to_all_of_one_rank_is_free() -> None:
    spec = get_spec("trn2")
    assert all_to_all_us(spec, place(spec, 1), 1e6) == 0.0


def test_sampled_routing_picks_k_distinct_experts_per_token() -> None:
    chosen = route_tokens(4096, 64, 6)
    assert chosen.shape == (4096, 6)
    assert all(len(set(row)) == 6 for row in chosen.tolist())
    counts = np.bincount(chosen.reshape(-1), minlength=64)
    assert counts.sum() == 4096 * 6
    # a balanced router: each expert's count is binomial(T, k/E) around T k / E
    mean, std = 4096 * 6 / 64, math.sqrt(4096 * 6 / 64 * (1 - 6 / 64))
    assert abs(counts.mean() - mean) < 1e-9 and 0.6 * std < counts.std() < 1.4 * std


def test_imbalance_shrinks_with_more_tokens_and_grows_with_skew() -> None:
    small, large = sampled_routing(64, 256, 8, 32), sampled_routing(65536, 256, 8, 32)
    assert small.imbalance > large.imbalance > 1.0
    assert large.imbalance < 1.05  # 512 rows per expert: sampling noise only
    assert sampled_routing(65536, 256, 8, 32, skew=1.0).imbalance > 1.5 * large.imbalance


def test_ranks_hold_contiguous_expert_blocks() -> None:
    chosen = np.array([[0, 1], [0, 2], [3, 1], [7, 6]])  # a known routing of 4 tokens over 8 experts
    routing = routing_of(chosen, 8, 4)
    assert routing.counts == (2, 2, 1, 1, 0, 0, 1, 1)
    assert routing.rank_rows == (4, 2, 0, 2) and routing.busiest_rank == 0
    assert routing.rank_experts(0) == (2, 2) and routing.imbalance == pytest.approx(2.0)


@pytest.mark.parametrize(("ep", "experts", "match"), [(3, 8, "does not divide"), (16, 8, "more ranks"), (0, 8, ">= 1")])
def test_bad_ep_values_are_clear_errors(ep: int, experts: int, match: str) -> None:
    with pytest.raises(CompileError, match=match):
        sampled_routing(16, experts, 2, ep)


@pytest.fixture(scope="module")
def moe_net() -> torch.nn.Module:
    cfg = transformers.Qwen3MoeConfig(  # type: ignore[call-arg]
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        vocab_size=512,
        intermediate_size=512,
        moe_intermediate_size=EXPERT_WIDTH,
        num_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        use_cache=False,
    )
    return build_model(cfg, device="meta")


def _ep(net: torch.nn.Module, ep: int, tokens: int = 128, **kwargs: object) -> ep_mod.EPEstimate:
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ep_estimate(net, (ids,), ep=ep, **{"target": "trn2", **kwargs})  # type: ignore[arg-type]


def test_the_busiest_rank_runs_its_experts_on_the_rows_a_known_routing_sends(
    moe_net: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    ep, tokens = 4, 128
    group_tokens = ep * tokens
    # known routing: every token to experts 2 and 3 (both on rank 1) but every 4th token, which goes to 0 and 5
    chosen = np.array([[2, 3] if t % 4 else [0, 5] for t in range(group_tokens)])
    known = routing_of(chosen, EXPERTS, ep)
    monkeypatch.setattr(ep_mod, "sampled_routing", lambda *a, **k: known)
    result = _ep(moe_net, ep, tokens)
    rows = 2 * (group_tokens - group_tokens // 4)  # rank 1 holds experts 2 and 3
    assert result.busiest_rows == rows and known.busiest_rank == 1
    grouped = [r for r in result.profile.records if r.kernel == "grouped_matmul"]
    assert sum(r.count for r in grouped) == 2 * LAYERS
    for r in grouped:  # gate/up [H -> 2 W] and down [W -> H]: 2 x rows x K x N on the busiest rank
        r_rows, k, (g, _, n) = grouped_dims(r)
        assert (r_rows, g) == (rows, EXPERTS // ep)
        assert {k, n} in ({HIDDEN, 2 * EXPERT_WIDTH}, {EXPERT_WIDTH, HIDDEN})
        assert r.flops == 2 * rows * k * n
    # dispatch and combine carry the larger of what a rank sends (its tokens x k) and the busiest receives
    spec = get_spec("trn2")
    nbytes = max(tokens * TOP_K, rows) * HIDDEN * 2
    a2a = [r for r in result.profile.records if r.kernel == "all_to_all"]
    assert [r.count for r in a2a] == [LAYERS, LAYERS]
    assert all(r.device_us == pytest.approx(all_to_all_us(spec, place(spec, ep), nbytes)) for r in a2a)


def test_a_rank_keeps_only_its_experts(moe_net: torch.nn.Module) -> None:
    one, four = _ep(moe_net, 1), _ep(moe_net, 4)
    expert_bytes = LAYERS * EXPERTS * 3 * HIDDEN * EXPERT_WIDTH * 2  # gate, up, down in bf16
    assert one.profile.weight_bytes - four.profile.weight_bytes == pytest.approx(expert_bytes * 3 / 4, abs=1)
    assert one.profile.collective_us == 0.0 and four.profile.collective_us > 0.0


def test_fewer_experts_per_rank_means_less_expert_time(moe_net: torch.nn.Module) -> None:
    def expert_us(result: ep_mod.EPEstimate) -> float:
        return sum(r.total_device_us for r in result.profile.records if r.kernel.startswith("grouped_matmul"))

    # the rank's own tokens stay fixed: the group grows with ep, each rank's expert rows stay ~tokens x k
    assert expert_us(_ep(moe_net, 8)) < expert_us(_ep(moe_net, 1))


def test_mx_experts_on_trn3_run_the_mx_kernel_at_the_busiest_ranks_rows(moe_net: torch.nn.Module) -> None:
    result = _ep(moe_net, 4, target="trn3", dtype="mxfp8")
    spec = get_spec("trn3")
    local = list(result.routing.rank_experts(result.routing.busiest_rank))
    grouped = [r for r in result.profile.records if r.kernel.startswith("grouped_matmul")]
    assert grouped and all(r.kernel == "grouped_matmul_mx" for r in grouped)
    for r in grouped:
        rows, k, (groups, _, n) = grouped_dims(r)
        assert (rows, groups) == (sum(local), len(local))
        args = (
            TensorSpec((rows, k), dtypes.bfloat16),
            TensorSpec((groups, k // 4, n), np.uint32),
            TensorSpec((groups, k // 32, n), np.uint8),
            list(itertools.accumulate(local)),
        )
        _, cost = run_kernel(grouped_matmul_mx, args, {"w_dtype": "float8_e4m3fn_x4"}, spec, functional=False)
        assert r.device_us == pytest.approx(cost.latency_us / spec.chip.default_lnc, rel=1e-12)
        assert cost.latency_us >= mx_grouped_cost(spec, local, n, k, 8).latency_us  # its roofline bounds it


def test_dense_models_and_gpus_are_refused(moe_net: torch.nn.Module) -> None:
    dense = build_model(transformers.LlamaConfig(hidden_size=64, num_attention_heads=2, num_hidden_layers=1))
    ids = torch.zeros(1, 8, dtype=torch.long, device="meta")
    with pytest.raises(CompileError, match="no routed experts"):
        ep_estimate(dense, (ids,), ep=2)
    with pytest.raises(CompileError, match="Trainium-class"):
        ep_estimate(moe_net, (ids,), ep=2, target="h100")


def test_routing_dataclass_rounds_experts_per_rank_up() -> None:
    assert Routing((1, 2, 3, 4, 5, 6), 4).experts_per_rank == 2

"""`trnsim serve --scheduler disaggregated`: pools sized and checked against the instance, the KV link from its
fabric, the same metrics keys as the other schedulers; bad pools as one line."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

import trnsim.serve.estimate_step_cost as esc
from trnsim.cli import app
from trnsim.errors import TrnsimError
from trnsim.hw.topology_instances import instance_fabric
from trnsim.serve.disaggregated_setup import check_pools, kv_link
from trnsim.serve.errors import ServeError

GPU_WORK = ["--requests", "40", "--prompt", "512-2048", "--output", "32", "--rate", "4"]


@pytest.fixture(autouse=True, scope="module")
def small_grids(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Private step-latency caches and a 2-point grid per axis (as tests/test_cli_serve.py), to stay fast."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    root = tmp_path_factory.mktemp("disaggregated_cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRNSIM_CACHE_DIR", str(root / "kernels"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        mp.setattr(esc, "GRID_RATIO", {"batches": 1 << 30, "new_tokens": 1 << 30, "contexts": 1 << 30})
        reset_default_cache(None)
        yield
        reset_default_cache(None)


def test_serve_disaggregated_json_on_gpus() -> None:
    args = ["serve", "--model", "llama-3.1-8b", "--hw", "p5.48xlarge", "--scheduler", "disaggregated"]
    result = CliRunner().invoke(app, [*args, "--prefill-tp", "1", "--decode-tp", "2", *GPU_WORK, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads(result.stdout)
    assert out["scheduler"] == "disaggregated" and out["requests"] == 40 and out["replicas"] == 2
    assert (out["prefill_tp"], out["decode_tp"]) == (1, 2)
    fabric = instance_fabric("p5.48xlarge")  # one GPU sends: one GPU's NVLink bandwidth, NCCL's fixed latency
    assert out["kv_link_gb_s"] == pytest.approx(fabric.link_bytes_per_ns)
    assert out["kv_link_latency_us"] == pytest.approx(fabric.fixed_ns / 1e3)
    assert out["kv_transfer"]["ms_mean"] > out["kv_link_latency_us"] / 1e3
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert 0 < out[key]["p50"] <= out[key]["p99"]
    assert out["pool_busy"]["prefill"] > 0 and out["pool_busy"]["decode"] > 0
    assert "long_enough" in out["steady_state"]  # the steady-state window, as for the other schedulers


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prefill-tp", "3", "--decode-tp", "4"], "not a whole number of trn2.48xlarge's chips"),
        (["--prefill-tp", "32", "--decode-tp", "64"], "exceed the 64 of one trn2.48xlarge"),
        (["--prefill-tp", "4", "--decode-tp", "4", "--tp", "4"], "not --tp"),
        (["--prefill-tp", "4", "--decode-tp", "4", "--timeline", "x.json"], "--timeline not supported"),
    ],
)
def test_bad_pools_are_one_line(extra: list[str], message: str) -> None:
    args = ["serve", "--model", "llama-3.1-8b", "--hw", "trn2.48xlarge", "--scheduler", "disaggregated", *GPU_WORK]
    result = CliRunner().invoke(app, [*args, *extra])
    assert isinstance(result.exception, TrnsimError)
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_pool_sizes_without_the_scheduler_are_refused() -> None:
    args = ["serve", "--model", "llama-3.1-8b", "--hw", "p5.48xlarge", "--tp", "1", "--prefill-tp", "1", *GPU_WORK]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ServeError) and "--scheduler disaggregated" in str(result.exception)


def test_kv_link_is_the_smaller_pools_chip_links() -> None:
    fabric = instance_fabric("trn2.48xlarge")
    link = kv_link("trn2.48xlarge", 2, 8)
    assert link.bytes_per_s == pytest.approx(2 * fabric.link_bytes_per_ns * 1e9)
    assert link.latency_s == pytest.approx(fabric.hop_latency_ns * 1e-9)
    nbytes = 3.5e8
    assert link.transfer_s(nbytes) == pytest.approx(fabric.hop_latency_ns * 1e-9 + nbytes / link.bytes_per_s)
    assert check_pools("trn2.48xlarge", 8, 56) == 4
    with pytest.raises(ServeError, match="single chip"):
        kv_link("trn1.2xlarge", 1, 1)

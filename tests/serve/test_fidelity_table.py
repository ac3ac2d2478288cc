"""The fidelity bench's table logic (bench/serving_fidelity.py) on made-up rows: parsing the data file format,
signed relative errors, and median |error| per instance kind against numpy. Never reads the published data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).parents[2] / "bench" / "serving_fidelity.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serving_fidelity_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path  # the bench drops its own folder from sys.path when it runs as a script
    return module


HEADER = (
    "source,model_published,model,instance,tp,batch,seq_len,input,output,ttft_p50_ms,tpot_p50_ms,"
    "weight_storage,stack,neuron_version,context_buckets,token_buckets"
)


def _row(bench: ModuleType, instance: str, ttft: float, tpot: float) -> object:
    return bench.PublishedRow(
        model="m", model_published="M", instance=instance, tp=8, batch=1, seq_len=4096, prompt=128, output=128,
        ttft_ms=ttft, tpot_ms=tpot, weight_storage="bf16", stack="s", context_buckets="pow2",
        token_buckets="pow2", source="made up",
    )  # fmt: skip


def test_load_rows_skips_the_provenance_header(bench: ModuleType, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text(
        f"# provenance\n# more\n{HEADER}\nsrc,M,m,trn1.32xlarge,32,8,8192,128,8064,55.16,9.95,int8,tnx,2.18,pow2,pow2\n"
    )
    (row,) = bench.load_rows(data)
    assert (row.kind, row.tp, row.batch, row.prompt, row.output) == ("trn1", 32, 8, 128, 8064)
    assert (row.ttft_ms, row.tpot_ms, row.weight_storage) == (55.16, 9.95, "int8")


def test_errors_and_medians_per_kind(bench: ModuleType) -> None:
    rng = np.random.default_rng(3)
    results = []
    expected: dict[str, list[float]] = {"trn1": [], "inf2": []}
    for kind in ("trn1", "inf2"):
        for _ in range(int(rng.integers(3, 9))):
            pub_ttft, pub_tpot = rng.uniform(10, 1000), rng.uniform(5, 40)
            got_ttft, got_tpot = pub_ttft * rng.uniform(0.5, 1.5), pub_tpot * rng.uniform(0.5, 1.5)
            results.append(bench.RowResult(_row(bench, f"{kind}.x", pub_ttft, pub_tpot), got_ttft, got_tpot))
            expected[kind] += [abs(got_ttft / pub_ttft - 1), abs(got_tpot / pub_tpot - 1)]
    results.append(bench.RowResult(_row(bench, "inf2.x", 1.0, 1.0), refused="does not fit"))
    summary = bench.summarize(results)
    for kind, errors in expected.items():
        assert summary[kind]["median_abs_error"] == pytest.approx(float(np.median(errors)))
        assert summary[kind]["ttft_median_abs_error"] == pytest.approx(float(np.median(errors[0::2])))
    assert summary["all"]["median_abs_error"] == pytest.approx(float(np.median(expected["trn1"] + expected["inf2"])))
    assert (summary["inf2"]["refused"], summary["trn1"]["refused"], summary["all"]["refused"]) == (1, 0, 1)
    table = bench.format_table(results)
    assert "not run:" in table and "does not fit" in table


def test_error_sign_says_which_side_is_faster(bench: ModuleType) -> None:
    assert bench.relative_error(80.0, 100.0) == pytest.approx(-0.2)  # trnsim faster than the hardware
    assert bench.relative_error(125.0, 100.0) == pytest.approx(0.25)
    only_refused = bench.summarize([bench.RowResult(_row(bench, "trn2.x", 1.0, 1.0), refused="no")])
    assert only_refused["trn2"]["median_abs_error"] is None


def test_cli_mode_serves_the_row_as_trnsim_serve_and_reports_a_refusal(bench: ModuleType) -> None:
    from typer.testing import CliRunner

    from trnsim.cli import app

    row = _row(bench, "trn1.32xlarge", 1.0, 1.0)
    args = bench.cli_args(row, "auto")
    for flag, value in (("--model", "m"), ("--concurrency", "1"), ("--requests", "2"), ("--prompt", "128")):
        assert args[args.index(flag) + 1] == value
    assert args[args.index("--serving-stack") + 1] == "auto" and args[args.index("--scheduler") + 1] == "static"
    assert CliRunner().invoke(app, [*args[:-1], "--help"]).exit_code == 0  # every option is one serve knows
    refused = bench.run_cli(bench.PublishedRow(**{**vars(row), "model": "no-such-model"}), "exact")
    assert refused.ttft_ms is None and refused.refused and "\n" not in refused.refused
    with pytest.raises(SystemExit):
        bench.main(["--mode", "exact,nope"])
    tuned = bench.PublishedRow(**{**vars(row), "instance": "trn2.48xlarge", "sequence_parallel": True})
    assert bench.deployment_stack(row) == "transformers-neuronx"
    assert bench.deployment_stack(bench.PublishedRow(**{**vars(tuned), "kernel_weights": ("qkv", "mlp")})) == (
        "nxd-inference:sequence-parallel,qkv,mlp"
    )

"""The op coverage table is generated from the lowering table: it lists every entry, names the kernels the
lowerings really launch, and the committed docs page equals a fresh generation."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from trnsim.cli import app
from trnsim.compiler.kernel_cache import default_cache
from trnsim.compiler.lowering.context import LowerContext
from trnsim.compiler.lowering.table import LOWERINGS
from trnsim.compiler.op_coverage import coverage, markdown
from trnsim.hw.presets import get_spec

DOCS = Path(__file__).resolve().parents[2] / "docs" / "compiler_ops.md"


def test_table_lists_every_lowering_once():
    rows = coverage()
    assert sorted(r.op for r in rows) == sorted(LOWERINGS)
    text = markdown().split("## Ops kept whole")[0]
    for op in LOWERINGS:
        assert text.count(f"| `{op}` |") == 1, op


def _meta(*shape):
    return torch.empty(*shape, device="meta")


CALLS = {
    "aten.mm.default": lambda: (_meta(64, 32), _meta(32, 48)),
    "aten.relu.default": lambda: (_meta(16, 64),),
    "aten.add.Tensor": lambda: (_meta(16, 64), _meta(16, 64)),
    "aten._softmax.default": lambda: (_meta(8, 128), -1, False),
    "aten.native_layer_norm.default": lambda: (_meta(8, 64), [64], _meta(64), _meta(64), 1e-5),
    "aten.bmm.default": lambda: (_meta(2, 16, 32), _meta(2, 32, 16)),
    "aten.clone.default": lambda: (_meta(16, 64),),
    "aten.permute.default": lambda: (_meta(16, 64), [1, 0]),
}


@pytest.mark.parametrize("op", list(CALLS))
def test_listed_kernels_are_the_ones_the_lowering_launches(op):
    row = next(r for r in coverage() if r.op == op)
    ctx = LowerContext(get_spec("trn2"), functional=False, cache=default_cache(), node="n", op=op)
    LOWERINGS[op](ctx, *CALLS[op]())
    launched = {r.kernel for r in ctx.records if r.kind == "kernel"}
    moved = [r for r in ctx.records if r.kind == "move"]
    if row.kind == "kernel":
        assert launched and launched <= set(row.kernels)
    elif row.kind == "move":
        assert moved and not launched
    else:
        assert not moved and not launched


def test_committed_docs_page_is_a_fresh_generation():
    assert DOCS.read_text(encoding="utf-8") == markdown(), (
        "docs/compiler_ops.md is stale: run `python -m trnsim.compiler.op_coverage docs/compiler_ops.md`"
    )


def test_cli_prints_the_same_markdown_and_json():
    runner = CliRunner()
    md = runner.invoke(app, ["ops", "--markdown"])
    assert md.exit_code == 0 and md.output == markdown()
    js = runner.invoke(app, ["ops", "--json"])
    assert js.exit_code == 0
    assert [r["op"] for r in json.loads(js.output)] == [r.op for r in coverage()]
    table = runner.invoke(app, ["ops"])
    assert table.exit_code == 0 and "aten.mm.default" in table.output.replace("\n", "")

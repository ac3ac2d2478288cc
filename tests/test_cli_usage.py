"""Usage errors print one line and exit 2 for every command; `trnsim` alone prints help and exits 0."""

from __future__ import annotations

import sys

import pytest

from trnsim.cli import main

BAD_INVOCATIONS = [
    (["servee"], "No such command 'servee'"),
    (["serve", "--modle", "x"], "No such option: --modle"),
    (["serve", "--model", "llama-3.1-8b", "--tp", "1"], "Missing option '--hw'"),
    (["serve", "--model", "x", "--hw", "trn2.48xlarge", "--tp", "four"], "Invalid value for '--tp'"),
    (["serve", "--model", "x", "--hw", "trn2.48xlarge", "--tp", "1", "--requests", "0"], "'--requests'"),
    (["estimate", "--model", "llama-3.1-8b", "--batch", "-3"], "Invalid value for '--batch'"),
    (["estimate"], "Missing option '--model'"),
    (["kernel"], "Missing argument"),
    (["kernel", "k.py:f", "--mode"], "requires an argument"),
    (["hw", "show"], "Missing argument"),
    (["hw", "lst"], "No such command 'lst'"),
    (["hw", "list", "--jsn"], "No such option: --jsn"),
    (["plan", "--model", "x", "--hw", "trn2.48xlarge", "--tp", "1.5"], "Invalid value for '--tp'"),
    (["compare", "--model", "x"], "Missing option '--hw'"),
    (["sweep", "--model", "x", "--samples", "0"], "'--samples'"),
    (["sweep"], "Missing option '--model'"),
    (["report"], "Missing argument"),
    (["trace", "nope"], "No such command 'nope'"),
    (["gpu", "nope"], "No such command 'nope'"),
    (["ops", "--markdwn"], "No such option: --markdwn"),
    (["demo", "--outt", "x"], "No such option: --outt"),
]


def run_cli(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    monkeypatch.setattr(sys, "argv", ["trnsim", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize(("args", "expected"), BAD_INVOCATIONS, ids=[" ".join(a) for a, _ in BAD_INVOCATIONS])
def test_usage_error_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code = run_cli(monkeypatch, args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "--help" in lines[0]  # where to read what is allowed
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("args", [[], ["hw"], ["gpu"], ["trace"], ["--help"], ["serve", "--help"]])
def test_help_alone_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code = run_cli(monkeypatch, args)
    out, err = capsys.readouterr()
    assert code == 0 and "Usage" in out and err == ""


def test_flags_show_no_value_type(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    assert run_cli(monkeypatch, ["estimate", "--help"]) == 0
    out = capsys.readouterr().out
    json_line = next(line for line in out.splitlines() if "--json" in line)
    assert "<bool>" not in json_line and "machine-readable" in json_line
    batch_line = next(line for line in out.splitlines() if "--batch" in line)
    assert "<int>" in batch_line and "x>=1" in batch_line


COMMANDS = ["kernel", "plan", "estimate", "ops", "serve", "compare", "sweep", "report", "demo", "hw show", "gpu"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_without_cutting_option_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert run_cli(monkeypatch, [*command.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out  # an option name is never cut short

"""AWS's public NKI kernels, run unmodified through trnsim: the acceptance check of issue 11.

Run (the repositories are not part of trnsim; extract them anywhere first):
    git clone https://github.com/aws-neuron/nki-samples; git clone https://github.com/aws-neuron/nki-library
    .venv/bin/python bench/nki_acceptance.py --samples nki-samples --library nki-library

Cases:
- nki-samples: every tutorial and contributed script that has a `__main__` (each checks the kernel against
  numpy, torch or jax itself), the attention tutorial's `test_attn_tutorial("accuracy", v)` for each of its
  kernel versions, and contributed/pipelined_attention.py (which checks itself at import).
- nki-library: each integration test file under test/integration, run by pytest in nki-library's own
  `--test-mode simulation` (its torch/numpy goldens); a file passes when pytest collects and passes it
  (with --library-first-case: its first runnable case). Sampled mode (--cases-per-file K --seed S
  [--case-timeout CPU_S] [--one-process] [--summary PATH]): per file the first runnable case and K-1 drawn with
  the seed from the rest, every case's outcome (pass/fail/skip/timeout + first error line and where it stopped)
  printed and written to PATH.json / PATH.md; a case past --case-timeout CPU seconds counts as `timeout` (speed).
Each case runs in its own process with `trnsim.nki.install_aliases()` and the shims in
bench/nki_acceptance_shims (torch_xla's device is the CPU, nki-library's CPU-simulator hook points at trnsim;
see its README). The kernels' own files are never changed. Prints one line per case (PASS/FAIL, seconds,
first error line) and the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from nki_acceptance_docs import docs_cases

SHIMS = Path(__file__).parent / "nki_acceptance_shims"
# Runs a script as __main__ after making `nki` / `neuronxcc.nki` resolve to trnsim.
RUN_SCRIPT = (
    "import runpy, sys; import trnsim.nki; trnsim.nki.install_aliases(); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
# Runs one kernel version of the attention tutorial through the tutorial's own accuracy check.
RUN_ATTENTION = (
    "import sys; import trnsim.nki; trnsim.nki.install_aliases(); import test_attention as t; "
    "t.test_attn_tutorial('accuracy', getattr(t, sys.argv[1]))"
)
ATTENTION_VERSIONS = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v8a", "v9", "v10", "v11"]


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    cwd: Path
    pythonpath: list[Path]


@dataclass(frozen=True)
class Outcome:
    case: Case
    passed: bool
    seconds: float
    error: str  # the first error line; for a passing pytest run, its counts ("180 passed, 4 skipped")


def sample_cases(root: Path) -> list[Case]:
    cases: list[Case] = []
    scripts = sorted((root / "src" / "nki_samples" / "tutorials").rglob("*.py")) + sorted(
        (root / "contributed").glob("*.py")
    )
    for script in scripts:
        text = script.read_text(errors="replace")
        runs_itself = "__main__" in text or script.name == "pipelined_attention.py"
        if runs_itself and script.name != "test_attention.py":
            name = f"samples/{script.relative_to(root)}"
            argv = [sys.executable, "-c", RUN_SCRIPT, str(script)]
            cases.append(Case(name, argv, script.parent, [script.parent]))
    attention = root / "src" / "nki_samples" / "tutorials" / "attention_fwd_performance"
    if (attention / "test_attention.py").exists():
        for version in ATTENTION_VERSIONS:
            argv = [sys.executable, "-c", RUN_ATTENTION, f"attn_fwd_{version}"]
            cases.append(Case(f"samples/attention_fwd_performance attn_fwd_{version}", argv, attention, [attention]))
    return cases


# The NKI release the nki-library snapshot targets: its newest commit ("NKI Lib 2026-04-13") follows Neuron 2.29.0
# (2026-04-09, NKI 0.3.0) and precedes 2.30.0 (2026-05-21); its goldens use quantize_mx's pre-0.5.0 OCP block scale.
LIBRARY_NKI_VERSION = "0.3"


@dataclass(frozen=True)
class Sampling:
    """nki-library's sampled mode: per file the first runnable case and `per_file - 1` drawn with `seed`, each
    with its own time limit, every case's outcome in a JSON-lines report (see trnsim_nki_plugin)."""

    per_file: int
    seed: int = 0
    case_timeout_s: float = 0.0
    report_dir: Path | None = None
    one_process: bool = False  # every file in one pytest process (pays pytest/torch/nkilib start-up once)


def library_cases(
    root: Path,
    first_case: bool = False,
    nki_version: str = LIBRARY_NKI_VERSION,
    sampling: Sampling | None = None,
    only: str = "",
    exclude: tuple[str, ...] = (),
) -> list[Case]:
    cases: list[Case] = []
    files = [
        f
        for f in sorted((root / "test" / "integration").rglob("test_*.py"))
        if "def test_" in f.read_text(errors="replace")  # not the shared helpers / model configs named test_*.py
        and only in f"library/{f.relative_to(root)}"
        and not any(x and x in str(f.relative_to(root)) for x in exclude)
    ]
    if sampling is not None and sampling.one_process:  # trn3-only files skip themselves on the default target
        groups = [[f for f in files if not _trn3_only(f)], [f for f in files if _trn3_only(f)]]
    else:
        groups = [[f] for f in files]
    for group in groups:
        if not group:
            continue
        test_file = group[0]
        rel = test_file.relative_to(root)
        name = str(rel) if len(group) == 1 else f"{len(group)} files" + (" (trn3)" if _trn3_only(test_file) else "")
        argv = [
            sys.executable,
            "-m",
            "pytest",
            *(str(f.relative_to(root)) for f in group),
            "--test-mode",
            "simulation",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "trnsim_nki_plugin",
            "-W",
            "ignore",
        ]
        if sampling is not None:
            argv += ["--trnsim-cases-per-file", str(sampling.per_file), "--trnsim-seed", str(sampling.seed)]
            argv.append("--continue-on-collection-errors")  # one file's import error is that file's row
            if sampling.case_timeout_s:
                argv += ["--trnsim-case-timeout", str(sampling.case_timeout_s)]
            if sampling.report_dir is not None:
                argv += ["--trnsim-report", str(sampling.report_dir / (name.replace("/", "__") + ".jsonl"))]
        else:
            argv.append("-x")  # a file fails at its first failing case
            if first_case:
                argv.append("--trnsim-first-case")
        if nki_version:
            argv += ["--trnsim-nki-version", nki_version]
        if _trn3_only(test_file):
            argv += ["--platform-target", "trn3"]  # NeuronCore-v4-only kernels (MX): run them for trn3
        cases.append(Case(f"library/{name}", argv, root, [root / "src", root]))
    return cases


def _trn3_only(test_file: Path) -> bool:
    return re.search(r"platforms\(exclude=\[[^\]]*TRN2", test_file.read_text(errors="replace")) is not None


SELF_CHECK_FAILED = "allclose pass? False"  # mxfp-matmul/mx_toplevel.py reports a mismatch this way
_ERROR_LINE = re.compile(r"^(E\s+)?[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def first_error(output: str) -> str:
    """The line that says what went wrong: pytest's first `E ...` line, else the last exception line."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    pytest_errors = [line for line in lines if line.startswith("E   ")]
    if pytest_errors:
        return pytest_errors[0][1:].strip()
    exceptions = [line for line in lines if _ERROR_LINE.match(line)]
    if exceptions:
        return exceptions[-1]
    return lines[-1] if lines else "(no output)"


def run_case(case: Case, timeout_s: float) -> Outcome:
    env = dict(os.environ)
    paths = [str(SHIMS), *(str(p) for p in case.pythonpath)]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    # The harness stands in for neuronx-cc, which spills what does not fit: trnsim's compiler-spill model
    # (nki/spill.py) is on for every case, samples and docs too, unless the environment says TRNSIM_SPILL=off.
    env.setdefault("TRNSIM_SPILL", "compiler")
    t0 = time.perf_counter()
    try:
        res = subprocess.run(case.argv, cwd=case.cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Outcome(case, False, time.perf_counter() - t0, f"timed out after {timeout_s:.0f} s")
    seconds = time.perf_counter() - t0
    output = res.stdout + "\n" + res.stderr
    passed = res.returncode == 0
    if passed and "-m" in case.argv and " passed" not in res.stdout:
        passed = False  # pytest ran nothing (everything skipped or deselected)
        return Outcome(case, False, seconds, "no test ran: " + first_error(res.stdout))
    if passed and SELF_CHECK_FAILED in res.stdout:  # a sample that prints its comparison instead of asserting
        return Outcome(case, False, seconds, f"the script's own check printed {SELF_CHECK_FAILED!r}")
    return Outcome(case, passed, seconds, pytest_counts(res.stdout) if passed else first_error(output))


_PYTEST_SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|skipped|deselected)\b.*?) in [\d.]+s")


def pytest_counts(stdout: str) -> str:
    """pytest's closing count line ("180 passed, 4 skipped"), so an all-case run says how many cases ran."""
    for line in reversed(stdout.splitlines()):
        m = _PYTEST_SUMMARY.match(line.strip())
        if m:
            return m.group(1)
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=Path, help="a checkout of aws-neuron/nki-samples")
    parser.add_argument("--library", type=Path, help="a checkout of aws-neuron/nki-library")
    parser.add_argument("--docs", type=Path, help="the NKI docs' nki/ folder (see bench/nki_acceptance_docs.py)")
    parser.add_argument("--only", default="", help="run only cases whose name contains this text")
    parser.add_argument(
        "--exclude",
        type=lambda text: tuple(text.split(",")),
        default=(),
        help="nki-library: skip test files whose path contains any of these comma-separated texts",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per case (default 300)")
    parser.add_argument(
        "--library-first-case",
        action="store_true",
        help="nki-library: run each file's first runnable test case only (all cases can take hours on 2 cores)",
    )
    parser.add_argument(
        "--library-nki-version",
        default=LIBRARY_NKI_VERSION,
        help=f"nki-library: the NKI release its tests target (default {LIBRARY_NKI_VERSION}, the snapshot's); "
        "'' for trnsim's current one",
    )
    parser.add_argument(
        "--cases-per-file",
        type=int,
        default=0,
        help="nki-library: run the first runnable case of each file and K-1 more drawn with --seed (sampled mode; "
        "every case's outcome is reported; --timeout is then per file)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --cases-per-file's draw (default 0)")
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="sampled mode: every file in one pytest process (two: the trn3-only MX files run for trn3)",
    )
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=0.0,
        help="sampled mode: CPU seconds per case (a longer one fails as `timeout`: speed)",
    )
    parser.add_argument(
        "--summary", type=Path, help="sampled mode: write every case's outcome to SUMMARY.json and SUMMARY.md"
    )
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    args = parser.parse_args(argv)
    sampling = None
    if args.cases_per_file > 0:
        report_dir = Path(tempfile.mkdtemp(prefix="nki_acceptance_"))
        sampling = Sampling(args.cases_per_file, args.seed, args.case_timeout, report_dir, args.one_process)
    if args.samples is None and args.library is None and args.docs is None:
        parser.error("give --samples, --library and/or --docs")
    groups: dict[str, list[Case]] = {}
    for label, root, collect in (
        ("nki-samples", args.samples, sample_cases),
        (
            "nki-library",
            args.library,
            lambda root: library_cases(
                root, args.library_first_case, args.library_nki_version, sampling, args.only, args.exclude
            ),
        ),
        ("nki-docs", args.docs, lambda root: [Case(*c) for c in docs_cases(root)]),
    ):
        if root is None:
            continue
        if not root.is_dir():
            parser.error(f"{label}: {root} is not a directory")
        groups[label] = [c for c in collect(root.resolve()) if args.only in c.name or label == "nki-library"]
    files: list[dict] = []
    for label, cases in groups.items():
        passed = 0
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:  # each case is its own process
            for outcome in pool.map(lambda c: run_case(c, args.timeout), cases):
                passed += outcome.passed
                status = "PASS" if outcome.passed else "FAIL"
                detail = f"  {outcome.error[:200]}" if outcome.error else ""  # a pass: pytest's counts
                print(f"{status} {outcome.seconds:6.1f}s {outcome.case.name}{detail}", flush=True)
                if sampling is not None and label == "nki-library":
                    files += sampled_files(outcome, sampling)
                    if args.summary is not None:  # after each process, so an interrupted sweep keeps its results
                        write_summary(args.summary, files, vars(args))
        print(f"{label}: {passed}/{len(cases)} pass\n", flush=True)
    if sampling is not None and files:
        for f in files:
            counts = ", ".join(f"{f[k]} {k}" for k in ("passed", "failed", "skipped", "timeout", "not_run") if f[k])
            print(f"  {f['file']}: {f['sampled']} of {f['collected']} sampled: {counts or f['file_error'][:160]}")
            for row in f["cases"]:
                if row["outcome"] not in ("passed", "skipped"):
                    print(f"    {row['outcome']:7} {row['seconds']:6.1f}s {row['id']}  {row['error'][:160]}")
        totals = _totals(files)
        print("nki-library sampled cases: " + ", ".join(f"{v} {k}" for k, v in totals.items()), flush=True)
    return 0


def _totals(files: list[dict]) -> dict:
    return {k: sum(f[k] for f in files) for k in ("passed", "failed", "skipped", "timeout", "not_run")}


def sampled_files(outcome: Outcome, sampling: Sampling) -> list[dict]:
    """Each file's sampled cases from the plugin's JSON-lines report: every case's outcome, seconds, first error
    line and where it stopped; a case that ran past --case-timeout counts as `timeout` (speed), and the cases a
    process's time limit cut are `not_run`."""
    assert sampling.report_dir is not None
    name = outcome.case.name.removeprefix("library/")
    path = sampling.report_dir / (name.replace("/", "__") + ".jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if not any("file" in r for r in records):  # nothing collected: the process's own error is the file's
        return [_file_row(name, {}, [], outcome.error if not outcome.passed else "", outcome.seconds)]
    files = []
    for head in (r for r in records if "file" in r):
        rows = [r for r in records if r.get("id", "").split("::")[0] == head["file"]]
        for row in rows:
            if row["outcome"] == "failed" and "--trnsim-case-timeout" in row["error"]:  # TrnsimCaseTimeout's message
                row["outcome"] = "timeout"
        files.append(_file_row(head["file"], head, rows, "", sum(r["seconds"] for r in rows)))
    return files


def _file_row(name: str, head: dict, rows: list[dict], error: str, seconds: float) -> dict:
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("passed", "failed", "skipped", "timeout")}
    ran = head.get("ran", 0)
    counts["not_run"] = max(0, ran - len({r["id"] for r in rows}))
    return {
        "file": name,
        "collected": head.get("collected", 0),
        "marked_skip": head.get("marked_skip", 0),
        "sampled": ran,
        **counts,
        "seconds": round(seconds, 1),
        "file_error": error,
        "cases": rows,
    }


def write_summary(stem: Path, files: list[dict], options: dict) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    totals = _totals(files)
    opts = {k: str(v) for k, v in options.items() if v not in (None, "", False, 0)}
    stem.with_suffix(".json").write_text(json.dumps({"options": opts, "totals": totals, "files": files}, indent=1))
    lines = [
        "| file | collected | sampled | pass | fail | skip | timeout | not run | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in files:
        lines.append(
            f"| {f['file']} | {f['collected']} | {f['sampled']} | {f['passed']} | {f['failed']} | {f['skipped']} "
            f"| {f['timeout']} | {f['not_run']} | {f['seconds']} |"
        )
    lines += ["", "| case | outcome | seconds | first error line | where |", "|---|---|---:|---|---|"]
    for f in files:
        if f["file_error"]:
            lines.append(f"| {f['file']} (file) | error | {f['seconds']} | {_md(f['file_error'])} | |")
        for r in f["cases"]:
            if r["outcome"] != "passed":
                where = _md(r.get("where", ""))
                lines.append(f"| {_md(r['id'])} | {r['outcome']} | {r['seconds']} | {_md(r['error'])} | {where} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:240]


if __name__ == "__main__":
    sys.exit(main())

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
  (with --library-first-case: its first runnable case).
Each case runs in its own process with `trnsim.nki.install_aliases()` and the shims in
bench/nki_acceptance_shims (torch_xla's device is the CPU, nki-library's CPU-simulator hook points at trnsim;
see its README). The kernels' own files are never changed. Prints one line per case (PASS/FAIL, seconds,
first error line) and the counts.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
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


def library_cases(root: Path, first_case: bool = False, nki_version: str = LIBRARY_NKI_VERSION) -> list[Case]:
    cases: list[Case] = []
    for test_file in sorted((root / "test" / "integration").rglob("test_*.py")):
        if "def test_" not in test_file.read_text(errors="replace"):
            continue  # shared helpers and model configs named test_*.py
        rel = test_file.relative_to(root)
        argv = [
            sys.executable,
            "-m",
            "pytest",
            str(rel),
            "--test-mode",
            "simulation",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "-p",
            "trnsim_nki_plugin",
            "-W",
            "ignore",
        ]
        if first_case:
            argv.append("--trnsim-first-case")
        if nki_version:
            argv += ["--trnsim-nki-version", nki_version]
        if re.search(r"platforms\(exclude=\[[^\]]*TRN2", test_file.read_text(errors="replace")):
            argv += ["--platform-target", "trn3"]  # NeuronCore-v4-only kernels (MX): run them for trn3
        cases.append(Case(f"library/{rel}", argv, root, [root / "src", root]))
    return cases


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
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    args = parser.parse_args(argv)
    if args.samples is None and args.library is None and args.docs is None:
        parser.error("give --samples, --library and/or --docs")
    groups: dict[str, list[Case]] = {}
    for label, root, collect in (
        ("nki-samples", args.samples, sample_cases),
        (
            "nki-library",
            args.library,
            lambda root: library_cases(root, args.library_first_case, args.library_nki_version),
        ),
        ("nki-docs", args.docs, lambda root: [Case(*c) for c in docs_cases(root)]),
    ):
        if root is None:
            continue
        if not root.is_dir():
            parser.error(f"{label}: {root} is not a directory")
        groups[label] = [c for c in collect(root.resolve()) if args.only in c.name]
    for label, cases in groups.items():
        passed = 0
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:  # each case is its own process
            for outcome in pool.map(lambda c: run_case(c, args.timeout), cases):
                passed += outcome.passed
                status = "PASS" if outcome.passed else "FAIL"
                detail = f"  {outcome.error[:200]}" if outcome.error else ""  # a pass: pytest's counts
                print(f"{status} {outcome.seconds:6.1f}s {outcome.case.name}{detail}", flush=True)
        print(f"{label}: {passed}/{len(cases)} pass\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

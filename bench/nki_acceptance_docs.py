"""The NKI documentation's own tests, run unmodified through trnsim (`bench/nki_acceptance.py --docs DIR`).

The NKI docs (aws-neuron/aws-neuron-sdk, folder nki/) carry one runnable test per instruction under nki/test
(test_nki_isa_*.py, test_nki_nl_*.py, the mask, memory-semantics, SPMD-grid and modulo-allocation tests),
each checking NKI's documented semantics against numpy, and example scripts under nki/examples. Give
`--docs` the extracted nki/ folder (or its test/ folder):
    git --git-dir=<aws-neuron-sdk>.git archive HEAD nki | tar -x -C /tmp/sdk
    .venv/bin/python bench/nki_acceptance.py --docs /tmp/sdk/nki

Cases: each nki/test file run by unittest (its TestCase classes) in its own process, after
`trnsim.nki.install_aliases()` so that `neuronxcc.nki` resolves to trnsim; each nki/examples script that
has a `__main__` run as a script the same way (one that demonstrates a broken rule passes when trnsim rejects it
with the matching error, EXPECTED_ERRORS). The docs' files are never changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The docs' tests are unittest.TestCase classes, run by unittest as the docs run them (pytest would also collect
# their kernels named test_*). A file whose tests all ran and passed exits 0; one that ran none fails.
RUN_UNITTEST = (
    "import sys, unittest; import trnsim.nki; trnsim.nki.install_aliases(); "
    "r = unittest.main(module=sys.argv[1], argv=['unittest'], exit=False).result; "
    "print(f'ran {r.testsRun} tests'); sys.exit(0 if r.wasSuccessful() and r.testsRun else 1)"
)
RUN_SCRIPT = (
    "import runpy, sys; import trnsim.nki; trnsim.nki.install_aliases(); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)

# Examples that show a rule being broken: they pass when trnsim rejects them with this error (its class name).
# layout-violation.py loads a [256, 512] tile ("Previously (128, 512)"): more partitions than SBUF has.
EXPECTED_ERRORS = {"layout-violation.py": "TileShapeError"}
RUN_EXPECTING_ERROR = (
    "import runpy, sys; import trnsim.nki; trnsim.nki.install_aliases(); want = sys.argv.pop(1); "
    "sys.argv = sys.argv[1:]\n"
    "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "except Exception as err:\n"
    "    if type(err).__name__ != want:\n        raise\n"
    "    print(f'rejected as expected: {err}'); sys.exit(0)\n"
    "sys.exit(f'expected a {want}, but the example ran')"
)


def docs_cases(root: Path) -> list[tuple[str, list[str], Path, list[Path]]]:
    """(name, argv, cwd, pythonpath) of every docs case under `root` (the docs' nki/ folder or its test/)."""
    test_dir = root / "test" if (root / "test").is_dir() else root
    cases: list[tuple[str, list[str], Path, list[Path]]] = []
    for test_file in sorted(test_dir.glob("test_*.py")):
        argv = [sys.executable, "-c", RUN_UNITTEST, test_file.stem]
        cases.append((f"docs/test/{test_file.name}", argv, test_dir, [test_dir]))
    examples = root / "examples"
    for script in sorted(examples.rglob("*.py")) if examples.is_dir() else []:
        if "__main__" not in script.read_text(errors="replace"):
            continue  # a code fragment included by the docs, not a runnable example
        want = EXPECTED_ERRORS.get(script.name)
        argv = [sys.executable, "-c", RUN_EXPECTING_ERROR, want, str(script)] if want else []
        argv = argv or [sys.executable, "-c", RUN_SCRIPT, str(script)]
        cases.append((f"docs/{script.relative_to(root)}", argv, script.parent, [script.parent]))
    return cases

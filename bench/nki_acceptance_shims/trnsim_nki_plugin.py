"""pytest plugin (-p trnsim_nki_plugin) for running nki-library's tests on trnsim.

- `import nki` resolves to trnsim before nki-library's conftest runs (on a Neuron machine `nki` is an
  installed package; here trnsim.nki.install_aliases() stands in for it).
- nki-library's `trace_only` tests trace a kernel with NKI's compiler frontend (`nki.compiler.frontend`,
  ParserFrontend.compile) and check what the kernel asserts while it is traced. The stand-in traces the
  kernel with trnsim instead (a timing-mode launch: the kernel's Python runs, shapes only), so its
  assertions and trnsim's rules are checked; there is no MLIR module to hand back.
- Collective tests (`InferenceArgs(collective_ranks=N)`) run on N ranks of trnsim's instance launcher
  (run_ranks; each rank its own inputs from a PerRankLazyInputGenerator); nki-library's simulation hook
  launches one kernel call, so the plugin wraps run_simulator_inference for them, and writes each rank's
  outputs to `output_worker_<rank>/` as a hardware run returns them, where nki-library's validator reads them
  (every rank against its own golden for a PerRankLazyGoldenGenerator, rank 0 for a single golden).
- Spilling is on (TRNSIM_SPILL=compiler unless the environment says otherwise): what neuronx-cc does when a
  kernel's live tiles overflow SBUF or PSUM, with costed spill/refill transfers and a warning per kernel line.
- nki-library's test utilities import two modules the public repository does not ship:
  `test.utils.scripts.remote_lock_scripts` (locks NeuronCores on remote Trainium hosts) and
  `test.utils.perf_analysis_private` (analyses hardware profiler traces). Stand-ins are registered under
  those names; simulation mode never takes a lock or profiles hardware.
"""

import enum
import json
import os
import random
import signal
import sys
import types
from dataclasses import dataclass

import trnsim.nki
import trnsim.nki.versions

trnsim.nki.install_aliases()
# The plugin stands in for neuronx-cc, which spills live tiles that overflow SBUF/PSUM to the next memory tier:
# turn trnsim's compiler-spill model on (nki/spill.py; TRNSIM_SPILL=off in the environment keeps it off).
os.environ.setdefault("TRNSIM_SPILL", "compiler")


class LockStatus(enum.Enum):
    ALLOCATED = 0
    DRAINED = 1
    FLOCK_TIMEOUT = 2
    ERROR = 3

    @property
    def exit_code(self) -> int:
        return self.value

    @classmethod
    def from_exit_code(cls, code: int) -> "LockStatus":
        return next((s for s in cls if s.value == code), cls.ERROR)


@dataclass
class LockResult:
    status: LockStatus
    cores: tuple = ()

    @classmethod
    def from_json(cls, text: str) -> "LockResult":
        data = json.loads(text)
        return cls(status=LockStatus[data.get("status", "ERROR")], cores=tuple(data.get("cores", ())))


_scripts = types.ModuleType("test.utils.scripts")
_scripts.__path__ = []
_lock = types.ModuleType("test.utils.scripts.remote_lock_scripts")
_lock.LockStatus = LockStatus
_lock.LockResult = LockResult
_scripts.remote_lock_scripts = _lock
sys.modules.setdefault("test.utils.scripts", _scripts)
sys.modules.setdefault("test.utils.scripts.remote_lock_scripts", _lock)


def _register_starfish_dtype() -> None:
    """qkv_cte's MX tests import `static_cast` from the Neuron compiler's internal `neuronxcc.starfish.support.dtype`
    (not public); the neuron_dtypes stand-in has the same round-to-nearest-even cast."""
    import neuron_dtypes

    names = ("neuronxcc.starfish", "neuronxcc.starfish.support", "neuronxcc.starfish.support.dtype")
    modules = [types.ModuleType(n) for n in names]
    for parent, child, name in ((sys.modules["neuronxcc"], modules[0], "starfish"), (*modules[:2], "support")):
        child.__path__ = []
        setattr(parent, name, child)
    modules[1].dtype = modules[2]
    modules[2].static_cast = neuron_dtypes.static_cast
    for name, module in zip(names, modules):
        sys.modules.setdefault(name, module)


_register_starfish_dtype()


def analyze_trace(**kwargs):
    raise RuntimeError("hardware profiler trace analysis is not available in the trnsim acceptance run")


_perf = types.ModuleType("test.utils.perf_analysis_private")
_perf.analyze_trace = analyze_trace
sys.modules.setdefault("test.utils.perf_analysis_private", _perf)


class NKIFrontend:
    """What nki-library's kernel_tracer type-annotates its frontend argument with."""

    def compile(self, kernel, inputs, target="trn2", lnc=1, **_unused):
        jitted = trnsim.nki.jit(kernel)  # a plain function or an @nki.jit kernel
        prof = trnsim.nki.profile(jitted[lnc] if lnc > 1 else jitted, target=str(target), mode="timing")
        return types.SimpleNamespace(profile=prof(**inputs), module=None)


class ParserFrontend(NKIFrontend):
    pass


_frontend = types.ModuleType("nki.compiler.frontend")
_frontend.NKIFrontend = NKIFrontend
_frontend.ParserFrontend = ParserFrontend
sys.modules.setdefault("nki.compiler.frontend", _frontend)


def _simulate_ranks(kernel_func, kernel_input, lnc, ranks):
    """nki-library's simulate_kernel for a collective test: every rank runs together (run_ranks)."""
    import inspect

    from nki_cpu_simulator import _target

    from trnsim.runtime.instance_launch import run_ranks

    kernel = trnsim.nki.jit(kernel_func)
    signature = inspect.signature(kernel.fn)
    bound = []
    for rank in range(ranks):
        inputs = kernel_input.for_rank(rank) if hasattr(kernel_input, "for_rank") else kernel_input
        bound.append(signature.bind(**{k.removesuffix(".must_alias_input"): v for k, v in inputs.items()}))
    launched = kernel[lnc] if lnc > 1 else kernel
    prof = run_ranks(launched, [b.args for b in bound], target=_target(), lnc=lnc, kwargs=bound[0].kwargs)
    _RANK_OUTPUTS[:] = [_as_list(out) for out in prof.outputs]
    result = prof.outputs[0]
    if result is None:
        return []
    return list(result) if isinstance(result, list | tuple) else [result]


_RANK_OUTPUTS: list = []  # every rank's outputs of the last collective test's run, for the per-rank dump


def _as_list(result):
    if result is None:
        return []
    return list(result) if isinstance(result, list | tuple) else [result]


def _dump_every_rank() -> None:
    """On hardware a collective test's outputs come back per rank (`output_worker_<rank>/`), and nki-library's
    validator reads them from there whenever collective_ranks > 1 (every rank's for a PerRankLazyGoldenGenerator,
    rank 0's otherwise); its simulation mode writes one flat set. The stand-in also writes each rank's outputs
    where the validator looks (same dump routine, each rank's golden dtypes)."""
    try:
        import importlib

        orchestrator = importlib.import_module("test.utils.test_orchestrator")
        dataclasses_ = importlib.import_module("test.utils.common_dataclasses")
    except ImportError:
        return  # not nki-library
    cls = orchestrator.Orchestrator
    one_set = cls._run_simulator_inference

    def run_simulator_inference(self, kernel_under_test):
        _RANK_OUTPUTS.clear()
        path = one_set(self, kernel_under_test)
        ranks = getattr(getattr(kernel_under_test, "inference_args", None), "collective_ranks", 1) or 1
        if path is None or ranks <= 1 or not _RANK_OUTPUTS:
            return path
        import os

        import numpy as np

        golden = kernel_under_test.validation_args.golden_output
        for rank, outputs in enumerate(_RANK_OUTPUTS):
            gold = dataclasses_.normalize_golden_output(golden, rank)
            tensors = {
                name: np.asarray(out, dtype=getattr(g, "dtype", None)) for (name, g), out in zip(gold.items(), outputs)
            }
            self.__dump_tensors__(os.path.join(path, f"output_worker_{rank}"), tensors, lambda n: n)
        return path

    cls._run_simulator_inference = run_simulator_inference


def _run_collectives_on_ranks() -> None:
    try:
        import importlib

        simulation = importlib.import_module("test.utils.simulation_setup")
    except ImportError:
        return  # not nki-library
    one_call = simulation.simulate_kernel
    run_inference = simulation.run_simulator_inference

    def run_simulator_inference(kernel_under_test):
        ranks = getattr(getattr(kernel_under_test, "inference_args", None), "collective_ranks", 1) or 1
        if ranks <= 1:
            return run_inference(kernel_under_test)
        simulation.simulate_kernel = lambda fn, inputs, lnc: _simulate_ranks(fn, inputs, lnc, ranks)
        try:
            return run_inference(kernel_under_test)
        finally:
            simulation.simulate_kernel = one_call

    simulation.run_simulator_inference = run_simulator_inference


def pytest_sessionstart(session):
    """Upstream bug: in --test-mode simulation nki-library never sets Orchestrator._compiled_kernel (compilation
    is skipped) but reads it after every simulated run (_rename_neff_outputs_to_python_names), so every test
    fails there after its kernel ran. A class default of None (no NEFF outputs to rename) is what that code
    expects when nothing was compiled."""
    _run_collectives_on_ranks()
    _dump_every_rank()
    orchestrator = sys.modules.get("test.utils.test_orchestrator")
    if orchestrator is not None and not hasattr(orchestrator.Orchestrator, "_compiled_kernel"):
        orchestrator.Orchestrator._compiled_kernel = None


def pytest_addoption(parser):
    parser.addoption(
        "--trnsim-first-case",
        action="store_true",
        default=False,
        help="run only the first collected, not skipped test case of each file (a quick acceptance pass)",
    )
    parser.addoption(
        "--trnsim-cases-per-file",
        type=int,
        default=0,
        help="run the first runnable case and K-1 more drawn with --trnsim-seed from the other runnable ones",
    )
    parser.addoption("--trnsim-seed", type=int, default=0, help="seed of --trnsim-cases-per-file's draw")
    parser.addoption(
        "--trnsim-case-timeout",
        type=float,
        default=0.0,
        help="CPU seconds per case (SIGPROF): a case that runs longer fails with TrnsimCaseTimeout (speed, not a bug)",
    )
    parser.addoption(
        "--trnsim-case-memory",
        type=float,
        default=0.0,
        help="GiB of resident memory per case: a case that grows past it fails with TrnsimCaseMemoryLimit "
        "(the simulator's footprint, not a bug) instead of the OOM killer ending the run",
    )
    parser.addoption(
        "--trnsim-report", default="", help="append one JSON line per case (id, outcome, seconds, first error line)"
    )
    parser.addoption(
        "--trnsim-collect-seed",
        type=int,
        default=None,
        help="seed Python's `random` and numpy's global generator before each test file is collected: "
        "nki-library's coverage_parametrize and some test classes draw their sweep cases from them unseeded, so "
        "without it every run collects other case ids",
    )
    parser.addoption(
        "--trnsim-nki-version",
        default=None,
        help="the NKI release the tests target, for trnsim.nki.versions.set_api_version (e.g. 0.3)",
    )


def pytest_configure(config):
    """The NKI release the library's kernels and goldens were written for: where a call's meaning changed since
    (quantize_mx's block scale in NKI 0.5.0), trnsim gives that release's meaning (trnsim.nki.versions)."""
    _CONFIG[:] = [config]
    collect_seed = config.getoption("--trnsim-collect-seed", default=None)
    if collect_seed is not None:
        random.seed(collect_seed)  # nki-library's sweep cases (test/utils/coverage_parametrized_tests.py)
    version = config.getoption("--trnsim-nki-version", default=None)
    if version:
        trnsim.nki.versions.set_api_version(version)


def pytest_collectstart(collector):
    """With --trnsim-collect-seed: reseed `random` and numpy's global generator before each test file is imported
    and parametrized, from the seed and the file's node id. nki-library draws sweep cases at import time and in
    pytest_generate_tests (coverage_parametrize and class bodies use `random`; test_attention_cte.py's sweep uses
    `np.random.choice`, which nothing seeds before collection), so with one seed for the whole session a file's
    case ids depended on every file collected before it and on numpy's random start: a sweep's failing case could
    not be collected again, neither alone nor in the same group. Now a file collects the same ids alone or in any
    group."""
    seed = collector.config.getoption("--trnsim-collect-seed", default=None)
    if seed is None or not isinstance(collector, pytest.Module):
        return
    import zlib

    import numpy as np

    file_seed = zlib.crc32(f"{seed}:{collector.nodeid}".encode())
    random.seed(file_seed)
    np.random.seed(file_seed)


def _skipped(item) -> bool:
    return any(m.name in ("skip", "skipif") for m in item.iter_markers())


import pytest  # noqa: E402


def sample_items(items: list, k: int, seed: int) -> list:
    """Per test file: the first runnable case and k-1 others drawn with `seed` from the rest (kept in collection
    order), so that a quick pass hits other shapes, dtypes and flags than the first case's."""
    by_file: dict[str, list] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::")[0], []).append(item)
    chosen = []
    for file_items in by_file.values():
        runnable = [i for i in file_items if not _skipped(i)]
        if len(runnable) <= k:
            chosen += runnable
            continue
        rest = sorted(random.Random(seed).sample(range(1, len(runnable)), k - 1))
        chosen += [runnable[0], *(runnable[j] for j in rest)]
    return chosen


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    everything = list(items)
    if config.getoption("--trnsim-first-case"):
        items[:] = sample_items(items, 1, 0)
    elif config.getoption("--trnsim-cases-per-file", default=0):
        k = config.getoption("--trnsim-cases-per-file")
        items[:] = sample_items(items, k, config.getoption("--trnsim-seed"))
    files: dict[str, dict] = {}
    for item in everything:
        row = files.setdefault(item.nodeid.split("::")[0], {"collected": 0, "marked_skip": 0, "ran": 0})
        row["collected"] += 1
        row["marked_skip"] += _skipped(item)
    for item in items:
        files[item.nodeid.split("::")[0]]["ran"] += 1
    for name, row in files.items():
        _write_report(config, {"file": name, **row})


class TrnsimCaseTimeout(Exception):
    """A case ran past --trnsim-case-timeout: simulator speed, not a wrong answer."""


class TrnsimCaseMemoryLimit(Exception):
    """A case's process grew past --trnsim-case-memory: the simulator's footprint, not a wrong answer."""


def _rss_bytes() -> int:
    """This process's resident set (Linux /proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _MemoryWatch:
    """Polls the process's RSS from a thread while a case runs; past `limit_gb` it signals the main thread
    (SIGUSR1), whose handler raises TrnsimCaseMemoryLimit in the case's own code, so the case fails as "past the
    memory limit" instead of the machine's OOM killer ending the whole sweep. A backstop for allocations that
    grow between two polls inside one C call: RLIMIT_AS set to the address space at the case's start + the limit (a
    failed allocation is then a MemoryError, also reported as past the limit). A test that catches the exception and
    raises another (nki-library's negative tests: "expected its kernel_assert message") still reports the limit."""

    POLL_S = 0.1

    def __init__(self, limit_gb: float):
        import threading

        self.limit = int(limit_gb * 2**30)
        self.peak = 0
        self.tripped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._rlimit = None

    def _watch(self) -> None:
        while not self._stop.wait(self.POLL_S):
            rss = _rss_bytes()
            self.peak = max(self.peak, rss)
            if rss > self.limit and not self.tripped:
                self.tripped = True
                os.kill(os.getpid(), signal.SIGUSR1)

    def expire(self, signum, frame):
        raise TrnsimCaseMemoryLimit(
            f"case went past the memory limit: {self.peak / 2**30:.1f} GiB resident > "
            f"{self.limit / 2**30:.1f} GiB (--trnsim-case-memory)"
        )

    def __enter__(self):
        import resource

        self._previous = signal.signal(signal.SIGUSR1, self.expire)
        try:
            with open("/proc/self/statm") as f:
                size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            self._rlimit = resource.getrlimit(resource.RLIMIT_AS)
            hard = self._rlimit[1]
            soft = size + self.limit
            resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
        except (OSError, ValueError):
            self._rlimit = None
        self._thread.start()
        return self

    def __exit__(self, *exc):
        import resource

        self._stop.set()
        self._thread.join()
        if self._rlimit is not None:
            resource.setrlimit(resource.RLIMIT_AS, self._rlimit)
        signal.signal(signal.SIGUSR1, self._previous)
        return False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = item.config.getoption("--trnsim-case-timeout", default=0.0)
    memory_gb = item.config.getoption("--trnsim-case-memory", default=0.0)
    if (not limit or not hasattr(signal, "SIGPROF")) and not memory_gb:
        yield
        return

    def expire(signum, frame):
        raise TrnsimCaseTimeout(f"case ran past {limit:.0f} CPU s (--trnsim-case-timeout)")

    watch = _MemoryWatch(memory_gb) if memory_gb and sys.platform == "linux" else None
    if limit and hasattr(signal, "SIGPROF"):
        previous = signal.signal(signal.SIGPROF, expire)
        signal.setitimer(signal.ITIMER_PROF, limit)  # CPU seconds of this process: the same limit at any load
    try:
        if watch is None:
            outcome = yield
        else:
            with watch:
                outcome = yield
        raised = outcome.excinfo[1] if outcome.excinfo else None
        failed = _memory_failure(raised)
        if watch is not None and raised is not None and failed is None and watch.tripped:
            failed = raised  # the limit's exception was caught and another raised without it in the chain
        if watch is not None and failed is not None and not isinstance(raised, TrnsimCaseMemoryLimit):
            error = failed
            if not isinstance(failed, TrnsimCaseMemoryLimit):
                error = TrnsimCaseMemoryLimit(
                    f"case went past the memory limit: an allocation failed ({failed}; resident peak "
                    f"{watch.peak / 2**30:.1f} GiB, address space capped at start + {memory_gb:g} GiB, "
                    "--trnsim-case-memory)"
                )
                error.__cause__ = failed
            outcome.force_exception(error.with_traceback(failed.__traceback__))  # where the memory ran out
    finally:
        if limit and hasattr(signal, "SIGPROF"):
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)


def _memory_failure(exc: BaseException | None) -> BaseException | None:
    """The memory limit's exception or a failed allocation in the chain of `exc` (its causes and contexts)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TrnsimCaseMemoryLimit | MemoryError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """pytest keeps the last failure's traceback (sys.last_traceback, for post-mortem debugging), and with it every
    array its frames held: after a big failed case that is gigabytes the next cases cannot use. Drop it."""
    yield
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    import gc

    gc.collect()
    release_freed_heap()


def release_freed_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim). A case's tiles and temporaries are
    freed when it ends, but glibc keeps freed heap memory resident: after attention_cte's
    `barometer_unit[2-2-2-10240-10240-...]` the process stayed at 2.9 GiB after gc.collect() (0.3 GiB before the
    case; 0.3 GiB again after malloc_trim), and in one pytest process (--one-process) that counted against the next
    cases' --trnsim-case-memory limit (rmsnorm_quant [20480-12288-2-0.65] went past 6 GiB in its input generator
    in the seed-3 sweep, but not when run alone). No-op where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # another C library (musl): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _write_report(config, record: dict) -> None:
    path = config.getoption("--trnsim-report", default="")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _first_line(report) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (file, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ").splitlines()[0] if longrepr[2] else ""
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _where(report) -> str:
    """Where it stopped: the crash's file:line, and the innermost frame in the user's code (outside trnsim, the
    shims and installed packages) when that is another one."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None:
        return ""
    where = f"{os.path.abspath(crash.path)}:{crash.lineno}"
    entries = getattr(getattr(report.longrepr, "reprtraceback", None), "reprentries", [])
    for entry in reversed(entries):
        loc = getattr(entry, "reprfileloc", None)
        if loc is None or any(part in loc.path for part in ("trnsim", "site-packages", "nki_acceptance_shims")):
            continue
        user = f"{os.path.abspath(loc.path)}:{loc.lineno}"
        return where if user == where else f"{user} -> {where}"
    return where


def pytest_collectreport(report):
    """A test file that fails to import (e.g. a syntax error in the kernel it imports) is one failed row."""
    if _CONFIG and report.outcome == "failed":
        name = report.nodeid.split("::")[0]
        _write_report(_CONFIG[0], {"file": name, "collected": 0, "marked_skip": 0, "ran": 0})
        lines = [line.strip() for line in str(report.longrepr).splitlines() if line.strip()]
        errors = [line[1:].strip() for line in lines if line.startswith("E ")]
        error = " / ".join(errors[-2:]) if errors else (lines[-1] if lines else "collection failed")
        record = {"id": name, "when": "collect", "outcome": "failed", "seconds": 0.0, "error": error[:300]}
        _write_report(_CONFIG[0], {**record, "where": ""})


def pytest_runtest_logreport(report):
    """One JSON line per case: its call phase, or a setup/teardown phase that failed or skipped."""
    if not _CONFIG or (report.when != "call" and report.outcome == "passed"):
        return
    record = {
        "id": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "seconds": round(report.duration, 1),
        "error": _first_line(report)[:300],
        "where": _where(report) if report.outcome == "failed" else "",
    }
    _write_report(_CONFIG[0], record)


_CONFIG: list = []

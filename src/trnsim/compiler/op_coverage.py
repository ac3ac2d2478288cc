"""The compiler's op coverage, generated from the lowering table (never written by hand).

Each LOWERINGS entry is listed with its lowering function and the library kernels that function launches,
found by reading the function's code (and the lowering helpers it calls) for `kernels.<name>` references.
`python -m trnsim.compiler.op_coverage docs/compiler_ops.md` writes the committed docs page; a test checks
that page equals a fresh generation.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from trnsim import kernels as kernel_library
from trnsim.compiler import lowering  # noqa: F401  (fills the table with the built-in lowerings)
from trnsim.compiler.decompositions import KEEP_WHOLE
from trnsim.compiler.lowering.table import LOWERINGS, op_name
from trnsim.nki.kernel import Kernel

LOWERING_PACKAGE = "trnsim.compiler.lowering."
KIND_TEXT = {
    "kernel": "library kernel",
    "move": "DMA copy",
    "view": "view (metadata only, no device time)",
}


@dataclass(frozen=True)
class OpCoverage:
    op: str  # ATen overload name, or a fusion pass's pattern name
    lowering: str  # module.function of the lowering
    kernels: tuple[str, ...]  # library kernels it can launch
    detail: str  # the activation / ALU op a generic lowering is specialised to, if any
    kind: str  # "kernel", "move" or "view"


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _lowering_helpers(fn: Any, seen: set[Any]) -> Iterator[Any]:
    """`fn` and the lowering-package functions it calls (transitively), each once."""
    if fn in seen or not isinstance(fn, types.FunctionType):
        return
    seen.add(fn)
    yield fn
    for code in _code_objects(fn.__code__):
        for name in code.co_names:
            target = fn.__globals__.get(name)
            if isinstance(target, types.FunctionType) and target.__module__.startswith(LOWERING_PACKAGE):
                yield from _lowering_helpers(target, seen)


def _library_kernels() -> dict[str, str]:
    """Attribute name in trnsim.kernels -> the kernel's name."""
    return {n: k.name for n in dir(kernel_library) if isinstance(k := getattr(kernel_library, n), Kernel)}


def _describe(fn: Any, library: dict[str, str]) -> tuple[tuple[str, ...], str, str]:
    used: set[str] = set()
    moves = False
    for helper in _lowering_helpers(fn, set()):
        for code in _code_objects(helper.__code__):
            names = set(code.co_names)
            if "kernels" in names:
                used |= {library[n] for n in names if n in library}
            moves = moves or "move" in names
    detail = ", ".join(
        c.cell_contents
        for c in (getattr(fn, "__closure__", None) or ())
        if isinstance(c.cell_contents, str) and not c.cell_contents.startswith("aten.")
    )
    kind = "kernel" if used else "move" if moves else "view"
    return tuple(sorted(used)), detail, kind


def _lowering_name(fn: Any) -> str:
    module = getattr(fn, "__module__", "") or ""
    return f"{module.removeprefix(LOWERING_PACKAGE)}.{getattr(fn, '__name__', type(fn).__name__)}"


def coverage() -> list[OpCoverage]:
    """One row per entry of the lowering table, sorted by op name."""
    library = _library_kernels()
    rows = []
    for op in sorted(LOWERINGS):
        fn = LOWERINGS[op]
        used, detail, kind = _describe(fn, library)
        rows.append(OpCoverage(op, _lowering_name(fn), used, detail, kind))
    return rows


def kept_whole() -> list[tuple[str, str, str]]:
    """The ops the capture keeps whole (not decomposed): (op, when, the lowering that runs it or 'host fallback')."""
    from trnsim.compiler.backend import KEEP_WHOLE_FOR_TRAINING

    out = []
    for when, ops in (("always", KEEP_WHOLE), ("training graphs", KEEP_WHOLE_FOR_TRAINING)):
        for op in ops:
            name = op_name(op)
            fn = LOWERINGS.get(name)
            out.append((name, when, f"`{_lowering_name(fn)}`" if fn is not None else "host fallback"))
    return out


def markdown() -> str:
    rows = coverage()
    lines = [
        "# Compiler op coverage",
        "",
        "Generated from the lowering table (`trnsim.compiler.lowering.LOWERINGS`) by "
        "`python -m trnsim.compiler.op_coverage docs/compiler_ops.md`; do not edit by hand "
        "(`trnsim ops` prints the same table).",
        "",
        f"{len(rows)} ops lower to the simulated chip. Any other ATen op runs on the host CPU with a warning and "
        "is listed as host fallback in the profile (its time is not device time); `strict=True` makes it an error. "
        "A lowering can still send a call to the host when it does not handle its arguments (a dtype, a layout).",
        "",
        "| op | lowering | library kernels | kind |",
        "|---|---|---|---|",
    ]
    for r in rows:
        kernels_text = ", ".join(f"`{k}`" for k in r.kernels) or "-"
        if r.detail and r.kernels:
            kernels_text += f" ({r.detail})"
        lines.append(f"| `{r.op}` | `{r.lowering}` | {kernels_text} | {KIND_TEXT[r.kind]} |")
    lines += [
        "",
        "## Ops kept whole when capturing",
        "",
        "PyTorch's Core-ATen decompositions would split these into smaller ops; the capture keeps them whole so "
        "that one library kernel runs each (`trnsim.compiler.decompositions.KEEP_WHOLE`), and training graphs "
        "also keep the attention ops whose backward reads the forward's saved statistics "
        "(`trnsim.compiler.backend.KEEP_WHOLE_FOR_TRAINING`).",
        "",
        "| op | kept whole in | lowering |",
        "|---|---|---|",
    ]
    lines += [f"| `{op}` | {when} | {fn} |" for op, when, fn in kept_whole()]
    return "\n".join(lines) + "\n"


def as_json() -> list[dict[str, Any]]:
    return [asdict(r) for r in coverage()]


def main(argv: list[str] | None = None) -> int:
    """`python -m trnsim.compiler.op_coverage [FILE]`: write the markdown page to FILE (stdout without one)."""
    args = sys.argv[1:] if argv is None else argv
    text = markdown()
    if args:
        with open(args[0], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

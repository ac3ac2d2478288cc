"""The project's exception classes.

Every error a user can cause is one of these, with a message that says what was wrong, where in the
user's code, and what is allowed. `KernelError`s carry the kernel's source location.
"""

from __future__ import annotations


class TrnsimError(Exception):
    """Base class for every error trnsim raises on purpose."""


class SpecError(TrnsimError):
    """A hardware spec file or preset is malformed (names the field and the reason)."""


class KernelError(TrnsimError):
    """A kernel broke a rule of the language or the hardware.

    `location` is "file:line" of the kernel code that caused it, when known.
    """

    def __init__(self, message: str, location: str | None = None, rule: str | None = None) -> None:
        self.rule = rule
        self.location = location
        self.bare_message = message
        prefix = f"{location}: " if location else ""
        tag = f"[{rule}] " if rule else ""
        super().__init__(f"{prefix}{tag}{message}")


class TileShapeError(KernelError):
    """A tile exceeds a hardware tile-size limit (partition dim, PSUM bank, matmul free sizes)."""


class DtypeError(KernelError):
    """An instruction got operand dtypes the hardware does not accept."""


class CapacityError(KernelError):
    """SBUF, PSUM or HBM allocation exceeded the memory's capacity."""


class BoundsError(KernelError):
    """An access fell outside the tensor or memory it addresses."""


class ShapeMismatchError(KernelError):
    """Operand shapes that must agree do not (store of a mismatched tile, contraction dims, ...)."""


class UsageError(KernelError):
    """The kernel language was used in a way it does not support."""


class InputWrittenError(UsageError):
    """A kernel wrote an input argument of a launch that passed its inputs read-only (trace(read_only_inputs=True)).

    The compiler's kernel runner passes them so and traces the kernel again with copies when this is raised.
    """


class InternalError(KernelError):
    """The simulator itself failed on a kernel line: a trnsim bug, reported with the line that triggered it."""


class CompileError(TrnsimError):
    """A PyTorch model could not be captured or lowered (the message names the op and the model line)."""


class UnsupportedOpError(CompileError):
    """strict=True and an op has no lowering to the simulated chip, so it would run on the host."""


class TrnsimWarning(UserWarning):
    """Something ran, but not the way the user may think (an op fell back to the host CPU, ...)."""


class UninitialisedMemoryWarning(TrnsimWarning):
    """A kernel read memory nobody wrote, or returned an output it did not fully write.

    The values are the poison (NaN for floats, 4 for integers) and the message names the kernel line or output;
    `nki.simulate` raises these from the profile's warnings (`warnings.simplefilter("error", ...)` makes
    them errors).
    """


class CompilerSpillWarning(TrnsimWarning):
    """The compiler-spill model (TRNSIM_SPILL=compiler) moved live tiles to the next memory tier at a kernel line.

    Values are unchanged; the message gives the spills, refills and bytes. Not an uninitialised read: a filter
    that turns UninitialisedMemoryWarning into errors lets these through.
    """


class WarningText(str):
    """A profile warning's text that is raised as another class than UninitialisedMemoryWarning.

    Profiles keep their warnings as strings; a plain string is an uninitialised read or an output left unwritten.
    """

    category: type[TrnsimWarning]

    def __new__(cls, text: str, category: type[TrnsimWarning]) -> WarningText:
        made = super().__new__(cls, text)
        made.category = category
        return made


def warning_category(message: str) -> type[TrnsimWarning]:
    """The Python warning class a profile warning is raised as (see WarningText)."""
    return getattr(message, "category", UninitialisedMemoryWarning)


class IsolationError(KernelError):
    """A tenant's kernel or DMA addressed memory or a NeuronCore of another tenant on the same instance.

    The message names both tenants; tenants own whole NeuronCores and the memory their kernels allocate.
    """

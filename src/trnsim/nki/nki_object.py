"""`nl.NKIObject`: the base class of configuration objects that kernels pass around (NKI 0.6).

Kernels subclass it, usually as a `@dataclass`, to carry tile sizes, dtypes and flags between helper
functions; nki-library's utility classes all do. NKI's language guide ("Class Support"): "In NKI all classes
are similar to Python data classes ... The @dataclass decorator is optional"; the compiler creates
`__init__(self, x=None, y=False)` over the class's fields (each defaulting to its class value, else None)
and a `__post_init__`, unless the user wrote them. So a subclass without its own `__init__` gets that
initializer here, installed in the class itself so a later `@dataclass` keeps it: this matters for classes
whose fields are plain class attributes (`section_idx = None`, nki-library's attention_cte), for which
Python's dataclass would generate an `__init__` without parameters. Keyword arguments that name no field
are set as attributes too.
"""

from __future__ import annotations

import dataclasses
import inspect
import weakref
from typing import Any, ClassVar

from trnsim.errors import UsageError

_NO_DEFAULT = object()


class NKIObject:
    """Base class for NKI kernel dataclasses and configuration objects."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not _user_init(cls):
            cls.__init__ = _nki_init  # type: ignore[method-assign]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _nki_init(self, *args, **kwargs)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _nki_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """NKI's default initializer: positional arguments fill the fields in order, missing fields take their
    default (None when they have none), other keywords become attributes; then `__post_init__`."""
    from trnsim.nki.context import user_location

    cls = type(self)
    fields = _fields(cls)
    positional = [f.name for f in fields if f.positional]
    if len(args) > len(positional):
        raise UsageError(
            f"{cls.__name__}(...) takes at most {len(positional)} positional argument(s) (its fields in order: "
            f"{', '.join(positional) or 'none'}), got {len(args)}; pass other attributes as keyword arguments only",
            user_location(),
        )
    given = dict(zip(positional, args))
    for key in kwargs:
        if key.startswith("__"):
            raise UsageError(f"{cls.__name__}: field name {key!r} is reserved", user_location())
        if key in given:
            raise UsageError(f"{cls.__name__}(...) got field {key!r} by position and by keyword", user_location())
    given.update(kwargs)
    for f in fields:
        if f.name not in given:
            object.__setattr__(self, f.name, f.default_value())
    for key, value in given.items():
        object.__setattr__(self, key, value)
    post = getattr(self, "__post_init__", None)
    if post is not None:
        post()


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    default: Any  # _NO_DEFAULT: none (the field starts as None, as NKI's generated initializer has it)
    factory: bool  # a dataclass default_factory: called for each new object
    positional: bool  # False for a dataclass field(init=False)

    def default_value(self) -> Any:
        if self.default is _NO_DEFAULT:
            return None
        return self.default() if self.factory else self.default


_FIELDS: weakref.WeakKeyDictionary[type, list[_Field]] = weakref.WeakKeyDictionary()


def _user_init(cls: type) -> bool:
    """Whether `cls` or a base below NKIObject defines its own `__init__` (NKI then keeps it)."""
    for base in cls.__mro__:
        if base is NKIObject:
            return False
        init = base.__dict__.get("__init__")
        if init is not None and init is not _nki_init:
            return True
    return False


def _fields(cls: type) -> list[_Field]:
    """The fields of an NKIObject subclass, base classes first (computed at the first instance, after any
    `@dataclass` ran): dataclass fields, other annotated names, then plain class attributes that are data."""
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    out: dict[str, _Field] = {}
    for base in reversed(cls.__mro__):
        if base is NKIObject or not issubclass(base, NKIObject):
            continue
        as_dataclass: Any = base  # dataclasses.fields wants a dataclass type; checked by the __dict__ test
        declared = (
            {f.name: f for f in dataclasses.fields(as_dataclass)} if "__dataclass_fields__" in base.__dict__ else {}
        )
        annotations = inspect.get_annotations(base)
        for name, annotation in annotations.items():
            if _is_classvar(annotation) or (declared and name not in declared):
                continue  # ClassVar (and a dataclass's InitVar): not a field
            f = declared.get(name)
            if f is None:
                out[name] = _Field(name, base.__dict__.get(name, _NO_DEFAULT), False, True)
            elif f.default_factory is not dataclasses.MISSING:
                out[name] = _Field(name, f.default_factory, True, f.init)
            else:
                out[name] = _Field(name, _NO_DEFAULT if f.default is dataclasses.MISSING else f.default, False, f.init)
        for name, value in base.__dict__.items():
            if name not in out and name not in annotations and _is_data_attribute(name, value):
                out[name] = _Field(name, value, False, True)
    fields = list(out.values())
    _FIELDS[cls] = fields
    return fields


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return annotation is ClassVar or "ClassVar" in text


def _is_data_attribute(name: str, value: Any) -> bool:
    """A class attribute NKI takes as a field: not a dunder, method, property, nested class or descriptor."""
    if name.startswith("__") or isinstance(value, staticmethod | classmethod | property):
        return False
    return not (inspect.isfunction(value) or inspect.isclass(value) or inspect.ismethoddescriptor(value))

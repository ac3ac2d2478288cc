"""Errors of the model-preset package (subclasses of the project's TrnsimError)."""

from __future__ import annotations

from trnsim.errors import TrnsimError


class ModelError(TrnsimError):
    """A model name, config file or build request trnsim cannot use; the message says what to change."""


class UnknownModelError(ModelError):
    """A name that is neither a built-in preset, an alias of one, nor an existing config path."""


class ModelConfigError(ModelError):
    """A config.json that cannot be read or turned into a transformers config (names the file and line)."""

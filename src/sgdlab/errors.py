"""Errors users see: each names the offending field and says how to fix it."""

from __future__ import annotations


class SgdlabError(Exception):
    """Base class of sgdlab's user-facing errors."""


class ConfigError(SgdlabError, ValueError):
    """An invalid configuration value.

    Attributes:
        field: dotted path of the offending field, e.g. ``"batch.size"``.
        message: what is wrong and how to fix it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self) -> tuple:
        # picklable across processes (a ProcessExecutor / Ray worker raising it)
        return (type(self), (self.field, self.message))


class StoreError(SgdlabError):
    """A problem with the results store (missing run, unreadable file)."""

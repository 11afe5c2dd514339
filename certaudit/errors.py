"""certaudit's exceptions: each says what could not be done, on which host or path, and why."""

from __future__ import annotations


class CertauditError(Exception):
    """Base of certaudit's own errors."""


class InventoryError(CertauditError):
    """The inventory cannot be used: unreadable, or a value that would be unsafe or meaningless."""


class ProbeError(CertauditError):
    """A host's facts could not be gathered at all: unreachable, timed out, or an unusable answer."""


class Undeterminable(CertauditError):
    """One fact could not be determined (permission denied, not gathered): the control is an error."""


class PathError(CertauditError):
    """Something at a path could not be used; the message names the path and the cause."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"{path}: {cause}" if path else cause)

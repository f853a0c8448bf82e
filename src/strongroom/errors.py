"""The one exception tree of strongroom.

User errors carry a hint that tells the administrator what to do next; every
error maps to a stable exit code so that scripts can rely on it.
"""

from __future__ import annotations

# Stable exit codes: scripts and CI jobs depend on them, never renumber.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 5
# The run finished but some items failed (a backup or restore PartiallyFailed).
EXIT_PARTIAL = 6


class StrongroomError(Exception):
    """Base of every error strongroom raises on purpose."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class UsageError(StrongroomError):
    """The command line or a spec was malformed."""

    exit_code = EXIT_USAGE


class NotFoundError(StrongroomError):
    """A named thing (backup, sandbox, object) does not exist."""

    exit_code = EXIT_NOT_FOUND


class ConflictError(StrongroomError):
    """The thing already exists or changed underneath us."""

    exit_code = EXIT_CONFLICT


class UnavailableError(StrongroomError):
    """A server or process we depend on is not reachable or did not start."""

    exit_code = EXIT_UNAVAILABLE


class SandboxError(StrongroomError):
    """The sandbox cluster could not be started, stopped or inspected."""


class StorageError(StrongroomError):
    """An object store could not be reached, read or written.

    Adapters raise this (or a subclass) from the provider's exception, so no
    provider type leaks out and messages never carry credentials.
    """

    exit_code = EXIT_UNAVAILABLE


class ObjectNotFound(StorageError, NotFoundError):
    """The object store has no object under the requested key."""

    exit_code = EXIT_NOT_FOUND


class StorageConfigError(StorageError, UsageError):
    """A storage location, its credentials file or a key is malformed; retrying cannot help."""

    exit_code = EXIT_USAGE

"""Exceptions raised by tracestop.

The tree::

    TracestopError            root: catch this to catch everything tracestop raises
    ├── ConfigError           a policy, preset, parameter or option is unknown or out of range
    ├── DataError             input data is missing, unreadable or malformed
    │   └── TraceFormatError  one line of a JSONL file is not a valid record (names file and line)
    ├── StateError            an object was used out of order (fed after its end)
    └── UpstreamError         the model server failed (status, timeout, malformed stream)

Every message says what was wrong and what to do about it.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "StateError", "TraceFormatError", "TracestopError", "UpstreamError"]


class TracestopError(Exception):
    """Root of every error tracestop raises on purpose."""


class ConfigError(TracestopError, ValueError):
    """A policy, preset, parameter or option is unknown or out of range."""


class DataError(TracestopError):
    """Input data is missing, unreadable or malformed."""


class TraceFormatError(DataError):
    """One line of a JSONL file is not a valid record."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}, line {line}: {problem}")


class StateError(TracestopError, RuntimeError):
    """An object was used out of order, e.g. a ``Segmenter`` fed after ``end()``."""


class UpstreamError(TracestopError):
    """The upstream model server failed: an error status, a timeout or a malformed stream."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)

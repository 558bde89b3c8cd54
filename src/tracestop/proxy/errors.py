"""The proxy's error answers: OpenAI-style JSON bodies, and which errors become which status.

A user's mistake (a ``ConfigError``: a bad per-request option, an unknown or evaluation-only
policy, an unknown model family), also when it arrives wrapped in an ``ExceptionGroup`` from
a task group, is a 400 that names the problem. Upstream faults are ``UpstreamError`` (502/504).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from tracestop.errors import ConfigError

__all__ = ["BodyTooLarge", "bad_request", "body_timeout", "config_error", "error_response",
           "too_large"]


def error_response(status: int, message: str, type_: str = "invalid_request_error",
                   param: str | None = None, **extra: Any) -> JSONResponse:
    """``{"error": {"message", "type", "param", "code"}, **extra}`` with HTTP ``status``."""
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": status}, **extra},
        status_code=status,
    )


def bad_request(e: ConfigError) -> JSONResponse:
    """A 400 naming the problem with the request's options (``param``: ``tracestop``, or the
    body field at fault)."""
    return error_response(400, str(e), param=getattr(e, "param", "tracestop"))


def config_error(e: BaseException) -> ConfigError | None:
    """The ``ConfigError`` in ``e`` (itself, or the first one inside an exception group)."""
    if isinstance(e, ConfigError):
        return e
    if isinstance(e, BaseExceptionGroup):
        for sub in e.exceptions:
            found = config_error(sub)
            if found is not None:
                return found
    return None


class BodyTooLarge(Exception):
    """The request body is over the proxy's ``max_body``."""


def too_large(limit: int) -> JSONResponse:
    return error_response(413, f"request body is larger than the proxy's limit of {limit} "
                               "bytes; raise it with --max-body", param="body")


def body_timeout(seconds: float) -> JSONResponse:
    r = error_response(408, f"the request body did not arrive within {seconds:g} s",
                       param="body")
    r.headers["connection"] = "close"  # the rest of the body may still come: not a new request
    return r

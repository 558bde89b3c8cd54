"""Which errors are a user's mistake (HTTP 400), also when a task group wraps them."""

from __future__ import annotations

import json

from tracestop.errors import ConfigError, UpstreamError
from tracestop.proxy.errors import bad_request, config_error


def test_config_error_is_found_inside_exception_groups() -> None:
    e = ConfigError("unknown policy 'x'")
    assert config_error(e) is e
    group = ExceptionGroup("tg", [UpstreamError("boom", 502), ExceptionGroup("inner", [e])])
    assert config_error(group) is e
    assert config_error(ExceptionGroup("tg", [UpstreamError("boom", 502)])) is None
    assert config_error(ValueError("x")) is None


def test_bad_request_names_the_problem() -> None:
    r = bad_request(ConfigError("unknown policy 'x'"))
    assert r.status_code == 400
    assert json.loads(bytes(r.body))["error"] == {
        "message": "unknown policy 'x'", "type": "invalid_request_error", "param": "tracestop",
        "code": 400}

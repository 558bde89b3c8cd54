"""``tracestop serve``: options reach create_app and uvicorn; bad input is one clean line."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from tracestop.cli.serve import serve


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:
        seen["app"] = app
        seen.update(kw)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    from tracestop.proxy import server

    # serve sets these for its workers: restore them after each test
    monkeypatch.setenv(server.HEADER_TIMEOUT_ENV, "")
    monkeypatch.setenv(server.CONFIG_ENV, "")
    return seen


def test_defaults_bind_loopback(ran: dict[str, Any]) -> None:
    r = CliRunner().invoke(serve, ["--upstream", "http://127.0.0.1:8000/v1"])
    assert r.exit_code == 0, r.output
    assert ran["host"] == "127.0.0.1" and ran["port"] == 8400
    cfg = ran["app"].state.tracestop.cfg
    assert cfg.policy == "default" and cfg.max_body == 4 * 1024 * 1024
    assert cfg.target("/v1/models") == "http://127.0.0.1:8000/v1/models"


def test_options_reach_the_app(ran: dict[str, Any]) -> None:
    r = CliRunner().invoke(serve, [
        "--upstream", "http://h:1", "--port", "9000", "--policy", "traces-count:k=2",
        "--timeout", "5", "--max-body", "1000", "--model-family", "qwen3"])
    assert r.exit_code == 0, r.output
    cfg = ran["app"].state.tracestop.cfg
    assert (cfg.policy, cfg.timeout, cfg.max_body, cfg.model_family) == (
        "traces-count:k=2", 5.0, 1000, "qwen3")
    assert ran["port"] == 9000


@pytest.mark.parametrize(
    "args,words",
    [
        pytest.param(["--policy", "nope"], "unknown policy 'nope'", id="bad-policy"),
        pytest.param(["--model-family", "llama"], "unknown template family", id="bad-family"),
    ],
)
def test_bad_options_fail_cleanly(ran: dict[str, Any], args: list[str], words: str) -> None:
    r = CliRunner().invoke(serve, ["--upstream", "http://127.0.0.1:8000", *args])
    assert r.exit_code == 1 and words in r.output and "Traceback" not in r.output
    assert "app" not in ran


def test_bad_upstream_fails_cleanly(ran: dict[str, Any]) -> None:
    r = CliRunner().invoke(serve, ["--upstream", "localhost:8000"])
    assert r.exit_code == 1 and "http(s) URL" in r.output


def test_registered_in_the_tracestop_group() -> None:
    cli = pytest.importorskip("tracestop.cli").cli
    assert "serve" in cli.commands


def test_hardening_options_reach_the_app(ran: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tracestop.proxy import server

    monkeypatch.setenv(server.HEADER_TIMEOUT_ENV, "")  # restored after the test
    r = CliRunner().invoke(serve, [
        "--upstream", "http://h:1", "--max-event", "5000", "--body-timeout", "7",
        "--header-timeout", "3", "--allow-host", "Proxy.Internal", "--allow-origin",
        "https://app.example"])
    assert r.exit_code == 0, r.output
    cfg = ran["app"].state.tracestop.cfg
    assert (cfg.max_event, cfg.body_timeout, cfg.allow_hosts, cfg.allow_origins) == (
        5000, 7.0, ("proxy.internal",), ("https://app.example",))
    assert ran["http"] == server.PROTOCOL
    import os

    assert os.environ[server.HEADER_TIMEOUT_ENV] == "3.0"


def test_safe_defaults(ran: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from tracestop.proxy import server

    monkeypatch.setenv(server.HEADER_TIMEOUT_ENV, "")  # restored after the test
    r = CliRunner().invoke(serve, ["--upstream", "http://h:1"])
    assert r.exit_code == 0, r.output
    cfg = ran["app"].state.tracestop.cfg
    assert cfg.max_event == 1024 * 1024 and cfg.body_timeout == 30.0
    assert cfg.allow_hosts == () and cfg.allow_origins == () and cfg.bind_host == "127.0.0.1"


def test_workers_run_the_app_factory(ran: dict[str, Any],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tracestop.proxy import server

    monkeypatch.setenv(server.CONFIG_ENV, "")  # restored after the test
    r = CliRunner().invoke(serve, ["--upstream", "http://h:1", "--workers", "3",
                                   "--policy", "traces-count:k=2"])
    assert r.exit_code == 0, r.output
    assert ran["app"] == "tracestop.proxy.server:app_from_env"
    assert ran["factory"] is True and ran["workers"] == 3
    # what each worker builds: the same settings
    app = server.app_from_env()
    assert app.state.tracestop.cfg.policy == "traces-count:k=2"
    assert app.state.tracestop.cfg.upstream == "http://h:1"


def test_workers_must_be_positive(ran: dict[str, Any]) -> None:
    r = CliRunner().invoke(serve, ["--upstream", "http://h:1", "--workers", "0"])
    assert r.exit_code == 2 and "app" not in ran

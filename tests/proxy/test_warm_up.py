"""Startup warm-up: `tracestop serve` loads the weights and Math-Verify before its first
request (``tracestop.monitor.warm_up``), and a failing warm-up never stops the server."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.proxy.fakes import REPO, FakeUpstream, ServerThread


def test_warm_up_loads_math_verify_and_sympy() -> None:
    # in a fresh interpreter: the Monitor alone never imports them; warm_up does
    code = ("import sys\n"
            "from tracestop.monitor import Monitor, warm_up\n"
            "m = Monitor('default', question='What is 1+1?'); m.feed('<think>1+1=2.\\n\\nx'); m.end()\n"
            "assert 'sympy' not in sys.modules, 'a plain Monitor run should not import sympy'\n"
            "warm_up()\n"
            "assert 'math_verify' in sys.modules and 'sympy' in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_warm_up_names_a_bad_policy() -> None:
    from tracestop.monitor import warm_up

    with pytest.raises(ValueError, match="no-such-policy"):
        warm_up("no-such-policy")


def test_proxy_warms_up_at_startup_with_its_policy_and_tagger(
        monkeypatch: pytest.MonkeyPatch, upstream_url: str) -> None:
    import tracestop.proxy.app as app_mod

    calls: list[tuple[Any, Any]] = []
    monkeypatch.setattr(app_mod, "warm_up", lambda policy, tagger: calls.append((policy, tagger)))
    app = app_mod.create_app(upstream_url, "consistency:k=3", tagger="rules")
    assert calls == []  # not at build time: at startup
    with ServerThread(app):
        pass
    assert len(calls) == 1
    assert calls[0][0] == "consistency:k=3" and calls[0][1].name == "rules"


def test_a_failing_warm_up_is_logged_and_the_proxy_serves(
        monkeypatch: pytest.MonkeyPatch, fake: FakeUpstream, upstream_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    import tracestop.proxy.app as app_mod

    def broken(policy: Any, tagger: Any) -> None:
        raise OSError("weights unreadable")

    monkeypatch.setattr(app_mod, "warm_up", broken)
    with caplog.at_level(logging.WARNING), ServerThread(app_mod.create_app(upstream_url)) as url:
        r = httpx.get(f"{url}/v1/models", timeout=10)
    assert r.status_code == 200
    assert any("warm-up failed" in rec.getMessage() and "weights unreadable" in rec.getMessage()
               for rec in caplog.records)


def test_what_the_warm_up_loaded_is_frozen_while_the_proxy_serves(
        monkeypatch: pytest.MonkeyPatch, upstream_url: str) -> None:
    # the loaded objects leave the collector's sight for the server's lifetime (a full
    # collection under load then scans only the requests' objects), and return at shutdown
    import gc

    import tracestop.proxy.app as app_mod

    loaded: list[object] = []
    monkeypatch.setattr(app_mod, "warm_up", lambda policy, tagger: loaded.append([{}] * 3))
    assert gc.get_freeze_count() == 0
    with ServerThread(app_mod.create_app(upstream_url)) as url:
        assert gc.get_freeze_count() > 0
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 200
    assert gc.get_freeze_count() == 0

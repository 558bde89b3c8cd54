"""What an operator sees: the startup line, one JSON log line per request through a real
handler (``tracestop serve`` as a process), ``--log-level``, Prometheus metrics at
``/metrics``, and never a key in a log, a metric or an error the client gets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.proxy.fakes import POLICY, QUESTION, REPO, FakeUpstream, ServerThread, _json
from tests.proxy.test_serving_engines import EngineFake

prometheus = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

SECRET = "sk-secret-0123456789abcdef"
MESSAGES = [{"role": "user", "content": QUESTION}]


def metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(base + "/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert SECRET not in r.text
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_requests_stops_tokens_and_latency(proxy_url: str, fid: str) -> None:
    before = metrics(proxy_url)
    c = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=SECRET, max_retries=0, timeout=15)
    r = c.chat.completions.create(model="deepseek-r1-distill-qwen-7b", messages=MESSAGES, max_tokens=4000,
                                  extra_body={"tracestop": {"policy": POLICY},
                                              "fake": {"id": fid}})
    assert r.model_extra["tracestop"]["stopped"] is True
    after = metrics(proxy_url)
    assert delta(before, after, "tracestop_requests_total", route="chat", outcome="stopped") == 1
    assert delta(before, after, "tracestop_stops_total", answer_source="model") == 1
    assert delta(before, after, "tracestop_thinking_tokens_total") >= r.model_extra[
        "tracestop"]["thinking_tokens"]
    for part in ("monitor", "hold", "answer"):
        assert delta(before, after, "tracestop_added_latency_seconds_count", part=part) == 1
    assert delta(before, after, "tracestop_request_seconds_count", route="chat") == 1


def test_metrics_count_upstream_errors(proxy_url: str, fid: str) -> None:
    before = metrics(proxy_url)
    r = httpx.post(proxy_url + "/v1/chat/completions", timeout=10, json={
        "model": "r1", "messages": MESSAGES, "fake": {"id": fid, "fault": {"status": 503}}})
    assert r.status_code == 503
    after = metrics(proxy_url)
    assert delta(before, after, "tracestop_upstream_errors_total", kind="status") == 1
    assert delta(before, after, "tracestop_requests_total", route="chat", outcome="error") == 1


class KeyEcho(EngineFake):
    """Thinks like a strict server, then fails the answer request with an error body that
    quotes the caller's key (as some servers do)."""

    async def _answer(self, req: dict[str, Any], chat: bool, send: Any) -> None:
        await _json(send, 401, {"error": f"invalid api key: Bearer {SECRET}"})


@pytest.fixture(scope="module")
def echo_proxy() -> Iterator[str]:
    from tracestop.proxy import create_app

    with ServerThread(KeyEcho("strict")) as up, ServerThread(
            create_app(up, "default", timeout=5.0)) as base:
        yield base


def test_no_key_in_logs_metrics_or_errors(echo_proxy: str, caplog: pytest.LogCaptureFixture
                                          ) -> None:
    caplog.set_level("DEBUG")
    c = openai.OpenAI(base_url=f"{echo_proxy}/v1", api_key=SECRET, max_retries=0, timeout=15)
    r = c.chat.completions.create(model="deepseek-r1-distill-qwen-7b", messages=MESSAGES,
                                  max_tokens=4000, extra_body={"tracestop": {"policy": POLICY}})
    rep = r.model_extra["tracestop"]
    assert rep["answer_source"] == "best_candidate"
    assert "401" in rep["answer_error"] and SECRET not in rep["answer_error"]
    assert "answer request failed" in caplog.text  # the failure was logged…
    assert SECRET not in caplog.text  # …without the key
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "tracestop.proxy.requests"]
    assert len(lines) == 1 and SECRET not in lines[0]
    metrics(echo_proxy)  # asserts the key is not there either


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(upstream: str, level: str) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracestop", "serve", "--upstream", upstream, "--port", str(port),
         "--policy", POLICY, "--log-level", level], env=env, stderr=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            assert time.monotonic() < deadline, "tracestop serve did not start"
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        _out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


@pytest.mark.parametrize("level", ["info", "warning"])
def test_serve_logs_startup_and_one_json_line_per_request(fake: FakeUpstream, upstream_url: str,
                                                          level: str) -> None:
    """Before: the tracestop logger had no handler, so not one line per request was written,
    and there was no startup line."""
    host = upstream_url.removeprefix("http://")
    proc, base = _serve(f"http://user:{SECRET}@{host}", level)
    try:
        c = openai.OpenAI(base_url=f"{base}/v1", api_key=SECRET, max_retries=0, timeout=15)
        r = c.chat.completions.create(model="deepseek-r1-distill-qwen-7b", messages=MESSAGES, max_tokens=4000,
                                      extra_body={"fake": {"id": f"cli-{level}"}})
        assert r.model_extra["tracestop"]["stopped"] is True
    finally:
        err = _stop(proc)
    assert SECRET not in err
    lines = [ln.split(" request ", 1)[1] for ln in err.splitlines()
             if "tracestop.proxy.requests" in ln]
    if level == "warning":
        assert lines == [] and "listening on" not in err
        return
    startup = next(ln for ln in err.splitlines() if "listening on" in ln)
    assert base in startup and f"upstream http://{host}" in startup and POLICY in startup
    assert len(lines) == 1, err
    rec = json.loads(lines[0])
    assert rec["id"] and rec["model"] == "deepseek-r1-distill-qwen-7b" and rec["policy"] == POLICY
    assert rec["stopped"] is True and rec["stop_step"] == r.model_extra["tracestop"]["step"]
    assert rec["reason"] and rec["thinking_tokens_used"] > 0
    assert rec["latency_ms"] > 0 and rec["upstream_status"] == 200

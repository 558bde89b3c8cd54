"""The proxy under hostile or sloppy input (issue 18): every malformed body is a 400, a
stream never ends silently, a received answer is never discarded, loose fields are refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.proxy.fakes import NO_ANSWER_TRACE, QUESTION, STOP_TRACE, FakeUpstream

JSON = {"content-type": "application/json"}


def _post(proxy_url: str, content: bytes | str, headers: dict[str, str] | None = None,
          path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(f"{proxy_url}{path}", content=content, timeout=10,
                      headers=JSON if headers is None else headers)


def _body(fid: str, **extra: Any) -> dict[str, Any]:
    return {"model": "r1", "messages": [{"role": "user", "content": QUESTION}],
            "fake": {"id": fid}, **extra}


def _sse(text: str) -> list[str]:
    return [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]


# --- item 2: surrogates ---------------------------------------------------------------------


def test_lone_surrogate_in_request_is_400(proxy_url: str, fake: FakeUpstream, fid: str) -> None:
    raw = json.dumps(_body(fid)).replace(QUESTION, "a\\ud800b")
    r = _post(proxy_url, raw)
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert "not valid JSON" in err["message"] and "surrogate" in err["message"]
    assert not fake.record(fid).requests


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_split_surrogate_pair_streams_to_the_end(proxy_url: str, fid: str, kind: str) -> None:
    """The upstream splits an emoji's pair across two events: the stream still ends with
    [DONE], and a client's JSON parser sees both halves."""
    body = _body(fid, stream=True, tracestop={"policy": "none"})
    body["fake"].update(trace=NO_ANSWER_TRACE, emoji_split=True)
    path = "/v1/chat/completions"
    if kind == "completions":
        body.pop("messages")
        body["prompt"] = QUESTION
        path = "/v1/completions"
    r = httpx.post(f"{proxy_url}{path}", json=body, timeout=10)
    data = _sse(r.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert not any("error" in c for c in chunks), data[-3:]
    key = "content" if kind == "chat" else "text"
    text = "".join((c["choices"][0].get("delta") or c["choices"][0]).get(key) or ""
                   for c in chunks if c.get("choices"))
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16")
    assert "\U0001F600 done" in joined


def test_split_surrogate_pair_non_streaming(proxy_url: str, fid: str) -> None:
    body = _body(fid, tracestop={"policy": "none"})
    body["fake"].update(trace=NO_ANSWER_TRACE, emoji_split=True)
    r = httpx.post(f"{proxy_url}/v1/chat/completions", json=body, timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["choices"][0]["message"]["content"].endswith("\U0001F600 done")


# --- item 3: NaN, Infinity, deep nesting ----------------------------------------------------


@pytest.mark.parametrize("raw", [
    pytest.param('{"model": "r1", "temperature": NaN, "messages": []}', id="nan"),
    pytest.param('{"model": "r1", "temperature": Infinity, "messages": []}', id="infinity"),
    pytest.param('{"model": "r1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", id="deep"),
])
def test_nan_infinity_and_deep_nesting_are_400(proxy_url: str, raw: str) -> None:
    r = _post(proxy_url, raw)
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and "not valid JSON" in err["message"]
    assert "NaN" in err["message"] and "1024 levels" in err["message"]


# --- item 4: a received answer is never discarded -------------------------------------------


@pytest.mark.parametrize("fmt", ["reasoning_content", "inline"])
def test_drop_after_answer_non_streaming_returns_it_flagged(proxy_url: str, fid: str,
                                                            fmt: str) -> None:
    body = _body(fid, tracestop={"policy": "none"})
    body["fake"].update(trace=STOP_TRACE, format=fmt, fault={"drop_before_done": True})
    r = httpx.post(f"{proxy_url}/v1/chat/completions", json=body, timeout=10)
    assert r.status_code == 200, r.text[:300]
    out = r.json()
    assert out["choices"][0]["message"]["content"].endswith("Tom has \\boxed{7} apples left.")
    assert out["tracestop"]["upstream_incomplete"] is True
    assert "incomplete" in out["tracestop"]["upstream_error"]


def test_drop_after_answer_streaming_ends_with_error_event(proxy_url: str, fid: str) -> None:
    body = _body(fid, stream=True, tracestop={"policy": "none"})
    body["fake"].update(trace=STOP_TRACE, fault={"drop_before_done": True})
    r = httpx.post(f"{proxy_url}/v1/chat/completions", json=body, timeout=10)
    data = _sse(r.text)
    assert data[-1] == "[DONE]" and "error" in json.loads(data[-2])


# --- item 8: loose fields -------------------------------------------------------------------


@pytest.mark.parametrize("extra,param,words", [
    pytest.param({"stream": "yes"}, "stream", "'stream' must be true or false", id="stream-str"),
    pytest.param({"stream": 1}, "stream", "'stream' must be true or false", id="stream-int"),
    pytest.param({"max_tokens": 10**30}, "max_tokens", "from 1 to 10000000", id="huge"),
    pytest.param({"max_tokens": 0}, "max_tokens", "from 1 to 10000000", id="zero"),
    pytest.param({"max_tokens": "100"}, "max_tokens", "from 1 to 10000000", id="str"),
    pytest.param({"max_completion_tokens": True}, "max_completion_tokens", "from 1",
                 id="bool"),
    pytest.param({"tracestop": {"model_family": "gpt-99"}}, "tracestop",
                 "valid choices are deepseek-r1, qwq, qwen3, gemma-4", id="family-dashed"),
    pytest.param({"tracestop": {"model_family": "foo"}}, "tracestop",
                 "valid choices are deepseek-r1, qwq, qwen3, gemma-4", id="family-plain"),
])
def test_loose_fields_are_400(proxy_url: str, fake: FakeUpstream, fid: str,
                              extra: dict[str, Any], param: str, words: str) -> None:
    r = httpx.post(f"{proxy_url}/v1/chat/completions", json=_body(fid, **extra), timeout=10)
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert words in err["message"] and err["param"] == param
    assert not fake.record(fid).requests


def test_sane_fields_are_accepted(proxy_url: str, fid: str) -> None:
    body = _body(fid, stream=False, max_tokens=10**7, tracestop={"model_family": "qwen3"})
    r = httpx.post(f"{proxy_url}/v1/chat/completions", json=body, timeout=10)
    assert r.status_code == 200, r.text[:300]


def test_server_model_family_lists_choices() -> None:
    from tracestop.errors import ConfigError
    from tracestop.proxy.config import ProxyConfig

    with pytest.raises(ConfigError, match="valid choices are deepseek-r1"):
        ProxyConfig("http://127.0.0.1:1", model_family="gpt-99")


# --- item 7: content type, Host, Origin -----------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_is_415(proxy_url: str, fake: FakeUpstream, fid: str,
                                      ctype: str | None) -> None:
    headers = {} if ctype is None else {"content-type": ctype}
    r = _post(proxy_url, json.dumps(_body(fid)), headers=headers)
    assert r.status_code == 415, r.text[:300]
    assert "application/json" in r.json()["error"]["message"]
    assert not fake.record(fid).requests


def test_json_content_type_with_charset_is_fine(proxy_url: str, fid: str) -> None:
    r = _post(proxy_url, json.dumps(_body(fid)),
              headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text[:300]


@pytest.mark.parametrize("headers,words", [
    pytest.param({"host": "evil.example:8400"}, "--allow-host", id="rebinding-host"),
    pytest.param({"origin": "http://evil.example"}, "--allow-origin", id="cross-site-origin"),
    pytest.param({"origin": "null"}, "--allow-origin", id="null-origin"),
])
@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions"])
def test_foreign_host_or_origin_is_403(proxy_url: str, headers: dict[str, str], words: str,
                                       path: str) -> None:
    method = "GET" if path == "/v1/models" else "POST"
    r = httpx.request(method, f"{proxy_url}{path}", headers={**JSON, **headers},
                      content=b"{}", timeout=10)
    assert r.status_code == 403, r.text[:300]
    assert words in r.json()["error"]["message"]


@pytest.mark.parametrize("headers", [
    {"host": "localhost:8400"}, {"host": "[::1]:8400"}, {"origin": "http://localhost:3000"},
    {"origin": "http://127.0.0.1:8400"},
])
def test_local_host_and_origin_are_fine(proxy_url: str, headers: dict[str, str]) -> None:
    r = httpx.get(f"{proxy_url}/v1/models", headers=headers, timeout=10)
    assert r.status_code == 200, r.text[:300]


def test_operator_allows_other_hosts_and_origins(upstream_url: str) -> None:
    from tracestop.proxy import create_app

    app = create_app(upstream_url, allow_hosts=["proxy.internal"],
                     allow_origins=["https://app.example"])

    cases = [{}, {"origin": "https://app.example"}, {"origin": "https://other.example"},
             {"host": "other.internal"}]

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy.internal") as c:
            return [(await c.get("/v1/models", headers=h)).status_code for h in cases]

    import asyncio

    assert asyncio.run(go()) == [200, 200, 403, 403]


# --- item 6: read timeouts and the event cap ------------------------------------------------


def _raw_exchange(url: str, data: bytes, wait: float) -> tuple[bytes, float]:
    """Send ``data`` on a raw socket and read until the server closes (or ``wait`` s)."""
    import socket
    import time

    host, port = url.removeprefix("http://").split(":")
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except TimeoutError:
            pass
    return got, time.monotonic() - t0


def test_partial_headers_are_timed_out(upstream_url: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.proxy.fakes import ServerThread
    from tracestop.proxy import create_app
    from tracestop.proxy.server import HEADER_TIMEOUT_ENV, PROTOCOL

    monkeypatch.setenv(HEADER_TIMEOUT_ENV, "0.5")
    with ServerThread(create_app(upstream_url), http=PROTOCOL) as url:
        got, took = _raw_exchange(url, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a", 8)
        assert b"408" in got and took < 4, (got, took)
        got, took = _raw_exchange(url, b"", 8)  # connects and says nothing
        assert took < 4, took
        # a whole request is unaffected
        r = httpx.get(f"{url}/v1/models", timeout=5)
        assert r.status_code == 200


def test_short_body_is_timed_out(upstream_url: str) -> None:
    from tests.proxy.fakes import ServerThread
    from tracestop.proxy import create_app

    with ServerThread(create_app(upstream_url, body_timeout=0.5)) as url:
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\"")
        got, took = _raw_exchange(url, head, 8)
        assert got.startswith(b"HTTP/1.1 408") and took < 4, (got[:200], took)
        assert b"did not arrive within 0.5 s" in got


@pytest.mark.parametrize("stream", [True, False])
def test_oversized_upstream_event_is_a_clean_error(upstream_url: str, fake: FakeUpstream,
                                                   fid: str, stream: bool) -> None:
    from tests.proxy.fakes import ServerThread
    from tracestop.proxy import create_app

    with ServerThread(create_app(upstream_url, max_event=64 * 1024)) as url:
        body = _body(fid, stream=stream)
        body["fake"].update(big_event=1024 * 1024, split_bytes=8192)
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    if stream:
        data = _sse(r.text)
        assert data[-1] == "[DONE]"
        err = json.loads(data[-2])["error"]
        assert "larger than 65536 bytes" in err["message"] and "--max-event" in err["message"]
    else:
        assert r.status_code == 502 and "larger than 65536" in r.json()["error"]["message"]
    assert fake.wait(fid).closed_early


# --- no request can stall another -----------------------------------------------------------


def test_degenerate_stream_does_not_stall_other_requests(proxy_url: str, fid: str) -> None:
    """A model in a loop writes 2000 unclosed boxes in one step: the step's answer extraction
    is heavy (quadratic before perf's fix), but a concurrent request is answered at once."""
    import threading
    import time

    trace = "Let me think.\n\n" + "\\boxed{" * 2000 + "\n\nSo the answer is 7.\n</think>\n\n7"
    body = _body(fid, stream=True, tracestop={"policy": "none"})
    body["fake"].update(trace=trace, chunk=40, delay=0)
    done: list[int] = []

    def degenerate() -> None:
        with httpx.stream("POST", f"{proxy_url}/v1/chat/completions", json=body,
                          timeout=120) as r:
            done.append(sum(1 for _ in r.iter_lines()))

    t = threading.Thread(target=degenerate, daemon=True)
    t.start()
    worst = 0.0
    deadline = time.monotonic() + 8
    while t.is_alive() and time.monotonic() < deadline:
        t0 = time.monotonic()
        r = httpx.get(f"{proxy_url}/v1/models", timeout=30)
        worst = max(worst, time.monotonic() - t0)
        assert r.status_code == 200
        time.sleep(0.02)
    t.join(60)
    assert done, "the degenerate stream did not finish"
    assert worst < 1.0, f"a concurrent GET took {worst:.2f} s"


def test_unmodified_chunks_pass_through_byte_for_byte(proxy_url: str, fid: str) -> None:
    """The fake writes ``json.dumps`` (``", "`` separators): relayed chunks keep them, since
    the proxy sends the upstream's bytes instead of re-serialising what it did not change."""
    body = _body(fid, stream=True, tracestop={"policy": "none"})
    body["fake"].update(trace=NO_ANSWER_TRACE)
    r = httpx.post(f"{proxy_url}/v1/chat/completions", json=body, timeout=10)
    data = _sse(r.text)
    relayed = data[:-2]  # the last chunk carries the report; then [DONE]
    assert len(relayed) > 10 and all('"id": "fake-1", ' in d for d in relayed)
    assert '"tracestop"' in data[-2]


def test_sse_reader_caps_an_event_split_over_many_reads() -> None:
    from tracestop.errors import UpstreamError
    from tracestop.proxy.upstream import SSEReader

    reader = SSEReader(max_event=100)
    assert [e.data for e in reader.feed(b"data: 1\n\ndata: 2\r\n\r\n")] == ["1", "2"]
    reader.feed(b"data: " + b"x" * 60)
    with pytest.raises(UpstreamError, match="larger than 100 bytes"):
        reader.feed(b"x" * 60)

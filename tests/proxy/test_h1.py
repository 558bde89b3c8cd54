"""The lean upstream client (``tracestop.proxy.h1``) against httpx: a client sees the same
stream or body whichever one read the upstream, and the client's own HTTP handling
(keep-alive, a connection the server closed, a body read until close, gzip, back-pressure,
timeouts) holds on its own."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.proxy.fakes import (
    ANSWER_TOKENS,
    NO_ANSWER_TRACE,
    POLICY,
    PROXY_MAX_BODY,
    PROXY_TIMEOUT,
    QUESTION,
    ServerThread,
)
from tracestop.proxy import create_app
from tracestop.proxy.h1 import H1Pool

_VOLATILE = {"monitor_seconds", "hold_seconds", "answer_seconds", "latency_ms", "added_ms"}


@pytest.fixture(scope="module")
def httpx_proxy_url(upstream_url: str) -> Iterator[str]:
    """The same proxy, but reading the upstream with httpx (a transport forces it)."""
    app = create_app(upstream_url, "default", timeout=PROXY_TIMEOUT, max_body=PROXY_MAX_BODY,
                     answer_tokens=ANSWER_TOKENS, transport=httpx.AsyncHTTPTransport())
    assert app.state.tracestop.upstream._h1 is None
    with ServerThread(app) as url:
        yield url


def _normal(obj: Any) -> Any:
    """``obj`` without what differs between two runs (timings)."""
    if isinstance(obj, dict):
        return {k: _normal(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, list):
        return [_normal(v) for v in obj]
    return obj


def _events(text: str) -> list[Any]:
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else _normal(json.loads(data)))
    return out


_CASES = {
    # unmodified chunks relayed as the upstream's bytes, the final one rewritten (report)
    "no_stop": {"tracestop": {"policy": "default"}, "fake": {"trace": NO_ANSWER_TRACE}},
    # a stop: the upstream is closed and the answer spliced in
    "stop": {"tracestop": {"policy": POLICY}, "fake": {}},
    # the usage chunk after the final one
    "usage": {"tracestop": {"policy": "none"}, "stream_options": {"include_usage": True},
              "fake": {"trace": NO_ANSWER_TRACE}},
    "usage_stop": {"tracestop": {"policy": POLICY}, "stream_options": {"include_usage": True},
                   "fake": {}},
    # an emoji's surrogate pair split across two events
    "surrogates": {"tracestop": {"policy": "none"},
                   "fake": {"trace": NO_ANSWER_TRACE, "emoji_split": True}},
    # thinking inline, and events split at every 7 bytes
    "inline_split": {"tracestop": {"policy": POLICY},
                     "fake": {"format": "inline", "split_bytes": 7}},
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "body"])
@pytest.mark.parametrize("case", list(_CASES))
def test_same_result_as_with_httpx(proxy_app: Any, proxy_url: str, httpx_proxy_url: str,
                                   case: str, stream: bool) -> None:
    assert proxy_app.state.tracestop.upstream._h1 is not None  # the session proxy uses h1
    got = []
    for url in (proxy_url, httpx_proxy_url):
        spec = _CASES[case]
        body = {"model": "r1", "messages": [{"role": "user", "content": QUESTION}],
                "stream": stream, **{k: v for k, v in spec.items() if k != "fake"},
                "fake": {**spec["fake"], "id": uuid.uuid4().hex}}
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=15)
        assert r.status_code == 200, r.text[:300]
        got.append(_events(r.text) if stream else _normal(r.json()))
    h1, reference = got
    assert h1 == reference
    if stream:
        assert h1[-1] == "[DONE]" and not any("error" in e for e in h1[:-1])
        assert any("tracestop" in e for e in h1[:-1])


# --- the client on its own, against hand-written servers ------------------------------------


class _Server:
    """An asyncio TCP server answering each request with ``respond(request_bytes)``'s bytes
    (then closing if ``close``); counts its connections."""

    def __init__(self, respond: Any, close: bool = False) -> None:
        self.respond = respond
        self.close = close
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                for part in self.respond(head + body):
                    writer.write(part)
                    await writer.drain()
                if self.close:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    async def __aexit__(self, *exc: object) -> None:
        for w in self.writers:
            w.close()
        self.server.close()


def _chunked(*parts: bytes) -> list[bytes]:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return [head, *(b"%x\r\n%s\r\n" % (len(p), p) for p in parts), b"0\r\n\r\n"]


def _pool(timeout: float = 5.0) -> H1Pool:
    return H1Pool(timeout, timeout, 8, 8)


async def _read(pool: H1Pool, url: str, decoded: bool = False) -> tuple[int, bytes]:
    resp = await pool.post(url, [("content-type", "application/json")], b"{}")
    parts = [p async for p in (resp.aiter_bytes() if decoded else resp.aiter_raw())]
    await resp.aclose()
    return resp.status_code, b"".join(parts)


def test_keep_alive_connection_is_reused() -> None:
    async def run() -> None:
        server = _Server(lambda req: _chunked(b"data: 1\n\n", b"data: [DONE]\n\n"))
        async with server as url:
            pool = _pool()
            for _ in range(3):
                assert await _read(pool, url) == (200, b"data: 1\n\ndata: [DONE]\n\n")
            assert server.connections == 1
            await pool.aclose()

    asyncio.run(run())


def test_request_line_headers_and_body() -> None:
    seen: list[bytes] = []

    def respond(req: bytes) -> list[bytes]:
        seen.append(req)
        return _chunked(b"ok")

    async def run() -> None:
        async with _Server(respond) as url:
            pool = _pool()
            resp = await pool.post(url + "?a=1", [("authorization", "Bearer k")], b'{"x":1}')
            assert [p async for p in resp.aiter_raw()] == [b"ok"]
            await resp.aclose()
            await pool.aclose()

    asyncio.run(run())
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions?a=1 HTTP/1.1"
    assert b"authorization: Bearer k" in lines and b"Content-Length: 7" in lines
    assert any(line.startswith(b"Host: 127.0.0.1:") for line in lines)
    assert body == b'{"x":1}'


def test_connection_the_server_closed_is_replaced() -> None:
    """A kept-alive connection the server has closed since is not an error: the request goes
    out again on a new one."""
    async def run() -> None:
        server = _Server(lambda req: _chunked(b"x"))
        async with server as url:
            pool = _pool()
            assert await _read(pool, url) == (200, b"x")
            for w in server.writers:  # the server drops its idle connection
                w.close()
            await asyncio.sleep(0.05)
            assert await _read(pool, url) == (200, b"x")
            assert server.connections == 2
            await pool.aclose()

    asyncio.run(run())


def test_body_until_close_and_sized_body() -> None:
    async def run() -> None:
        plain = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n"
        async with _Server(lambda req: [plain, b"data: 2\n\n"], close=True) as url:
            pool = _pool()
            assert await _read(pool, url) == (200, b"data: 1\n\ndata: 2\n\n")
        sized = b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nnope!"
        async with _Server(lambda req: [sized]) as url:
            assert await _read(pool, url) == (404, b"nope!")
            await pool.aclose()

    asyncio.run(run())


def test_gzip_body_is_decoded() -> None:
    data = gzip.compress(b"data: 1\n\n" * 100)
    head = (b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n"
            % len(data))

    async def run() -> None:
        async with _Server(lambda req: [head, data[:10], data[10:]]) as url:
            pool = _pool()
            assert await _read(pool, url, decoded=True) == (200, b"data: 1\n\n" * 100)
            await pool.aclose()

    asyncio.run(run())


def test_slow_reader_pauses_the_socket_and_loses_nothing() -> None:
    parts = [bytes([65 + i % 26]) * 65536 for i in range(40)]  # 2.5 MB

    async def run() -> None:
        async with _Server(lambda req: _chunked(*parts)) as url:
            pool = _pool()
            resp = await pool.post(url, [], b"")
            await asyncio.sleep(0.3)  # the server writes far more than the high-water mark
            conn = resp._conn
            assert conn.paused and conn.buffered < 2 * 1024 * 1024
            got = b"".join([p async for p in resp.aiter_raw()])
            assert got == b"".join(parts)
            await resp.aclose()
            await pool.aclose()

    asyncio.run(run())


def test_read_timeout_and_refused_connection() -> None:
    async def run() -> None:
        never = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"3\r\nabc\r\n"]
        async with _Server(lambda req: never) as url:
            pool = _pool(timeout=0.2)
            resp = await pool.post(url, [], b"")
            with pytest.raises(httpx.ReadTimeout):
                async for _ in resp.aiter_raw():
                    pass
            await resp.aclose()
        with pytest.raises(httpx.ConnectError):
            await pool.post(url, [], b"")  # the server is gone
        await pool.aclose()

    asyncio.run(run())


def test_handles() -> None:
    assert H1Pool.handles("http://127.0.0.1:8000/v1/chat/completions")
    assert not H1Pool.handles("https://api.example/v1/chat/completions")
    assert not H1Pool.handles("http://user:key@127.0.0.1:8000/v1")

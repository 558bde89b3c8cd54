"""The upstream client: one pooled ``httpx.AsyncClient`` per app, the header policy for the
hop, and reading the upstream's event stream (``SSEReader``, on bytes).

Connection failures become 502/504 responses before anything was sent to the client, and
``UpstreamError`` (with the status to report) once the stream is under way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response

from tracestop.errors import UpstreamError
from tracestop.proxy.config import ProxyConfig
from tracestop.proxy.errors import error_response

try:  # httptools comes with uvicorn[standard] (the proxy extra); without it, httpx does all
    from tracestop.proxy.h1 import H1Pool
except ImportError:  # pragma: no cover - depends on the environment
    H1Pool = None  # type: ignore[assignment,misc]

__all__ = ["StreamResponse", "Upstream", "forward_headers", "response_headers"]

log = logging.getLogger("tracestop.proxy")

_R = TypeVar("_R")

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
# Response headers: the body is relayed byte for byte, so its length stays true.
_HOP_BY_HOP_RESPONSE = _HOP_BY_HOP - {"content-length"}


def forward_headers(request: Request, *, handled: bool) -> list[tuple[str, str]]:
    """The client's headers for the upstream (Authorization included), minus hop-by-hop."""
    out = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
    if handled:
        # The proxy re-encodes the body and parses the stream: plain JSON, no compression.
        out = [(k, v) for k, v in out if k.lower() not in ("content-type", "accept-encoding")]
        out += [("content-type", "application/json"), ("accept-encoding", "identity")]
    elif not any(k.lower() == "accept-encoding" for k, _ in out):
        out.append(("accept-encoding", "identity"))  # else httpx would ask for gzip
    return out


class StreamResponse(Protocol):
    """An open upstream response: an ``httpx.Response``, or an ``h1.H1Response``."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx.Headers: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


def response_headers(resp: StreamResponse) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP_RESPONSE}


class Upstream:
    """The model server behind the proxy.

    The streamed POSTs of handled requests go through ``h1.H1Pool`` (a lean HTTP/1.1 client)
    when the upstream is plain ``http`` without user info and no ``transport`` replaces the
    network; everything else goes through one pooled ``httpx.AsyncClient``."""

    def __init__(self, cfg: ProxyConfig, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.cfg = cfg
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._h1: H1Pool | None = None
        if H1Pool is not None and transport is None and H1Pool.handles(cfg.target("/")):
            self._h1 = H1Pool(cfg.timeout, min(cfg.timeout, 10.0), cfg.max_connections,
                              min(cfg.max_connections, 512))

    def open(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.cfg.timeout, connect=min(self.cfg.timeout, 10.0)),
                # keep as many idle connections as concurrent streams are likely: a new TCP
                # connection per request under load adds to every first byte
                limits=httpx.Limits(max_connections=self.cfg.max_connections,
                                    max_keepalive_connections=min(self.cfg.max_connections, 512)),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._h1 is not None:
            await self._h1.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        # The lifespan opens it; an app driven without lifespan (in-process) opens it lazily.
        return self._client or self.open()

    async def send(self, req: httpx.Request) -> httpx.Response | Response:
        """Send a request, streaming; a connection failure becomes a 502/504 response."""
        return await self._failing_as_response(self.client.send(req, stream=True))

    async def _failing_as_response(self, sending: Awaitable[_R]) -> _R | Response:
        try:
            return await sending
        except httpx.TimeoutException:
            return error_response(504, f"the upstream did not answer within {self.cfg.timeout:g} s",
                                  "upstream_error")
        except httpx.HTTPError as e:
            return error_response(502, f"cannot reach the upstream: {type(e).__name__}: {e}",
                                  "upstream_error")

    async def open_stream(self, url: str, headers: list[tuple[str, str]],
                          body: dict[str, Any]) -> StreamResponse | Response:
        """POST ``body`` and return the open event stream, or the response to give the client
        (a connection failure; an error status or a non-stream body, passed through)."""
        resp: StreamResponse | Response
        if self._h1 is not None:
            # forward_headers(handled=True) set content-type and accept-encoding
            resp = await self._failing_as_response(self._h1.post(url, headers,
                                                                 _json_body(body)))
        else:
            req = self.client.build_request("POST", url, headers=headers, json=body)
            resp = await self.send(req)
        if isinstance(resp, Response):
            return resp
        ctype = resp.headers.get("content-type", "")
        if resp.status_code >= 400 or "text/event-stream" not in ctype:
            # An error status (or a server that ignored stream=true): the client gets the
            # upstream's status and body unchanged.
            try:
                content = await resp.aread()
            except httpx.HTTPError as e:
                return error_response(502, f"upstream failed: {type(e).__name__}",
                                      "upstream_error")
            finally:
                await resp.aclose()
            return Response(content, status_code=resp.status_code,
                            headers=response_headers(resp))
        return resp

    async def events(self, resp: StreamResponse) -> AsyncGenerator[Event, None]:
        """The events of an open stream (``SSEReader``: any chunking, a line ending or UTF-8
        split anywhere, a leading BOM dropped). Events without data (a lone ``event:``/
        ``id:``) are skipped. Raises ``UpstreamError`` on a timeout, a broken connection, an
        event over ``max_event`` bytes, or a stream that ends inside an event without
        ``[DONE]``."""
        reader = SSEReader(self.cfg.max_event)
        done = False
        try:
            # identity is asked for; a server that compresses anyway is decoded
            encoded = resp.headers.get("content-encoding", "identity") != "identity"
            async for chunk in resp.aiter_bytes() if encoded else resp.aiter_raw():
                events = reader.feed(chunk)
                last = len(events) - 1
                for i, event in enumerate(events):
                    data = event.data
                    done = data[:1] != "{" and data.strip() == "[DONE]"
                    event.more = i < last
                    yield event
        except httpx.TimeoutException:
            raise UpstreamError(
                f"the upstream sent nothing for {self.cfg.timeout:g} s: timed out", 504) from None
        except httpx.HTTPError as e:
            raise UpstreamError(
                f"the upstream connection broke mid-stream ({type(e).__name__}): the response "
                "is incomplete", 502) from None
        if not done and reader.inside_event:
            raise UpstreamError("the upstream stream ended inside an event (truncated stream)",
                                502)

    async def post_json(self, path: str, headers: list[tuple[str, str]], body: dict[str, Any],
                        what: str) -> Any:
        """POST ``body`` (not streamed) and return its parsed JSON; ``UpstreamError`` naming
        ``what`` on a timeout, a transport failure, an error status or a non-JSON body."""
        try:
            resp = await self.client.post(self.cfg.target(path), headers=headers, json=body)
        except httpx.TimeoutException:
            raise UpstreamError(f"{what} timed out after {self.cfg.timeout:g} s", 504) from None
        except httpx.HTTPError as e:
            raise UpstreamError(f"{what} failed: {type(e).__name__}", 502) from None
        if resp.status_code >= 400:
            raise UpstreamError(f"{what} got HTTP {resp.status_code}: {resp.text[:200]}",
                                resp.status_code)
        try:
            return resp.json()
        except ValueError:
            raise UpstreamError(f"{what} returned an unexpected body", 502) from None


def _json_body(body: dict[str, Any]) -> bytes:
    """``body`` as httpx's ``json=`` would send it (UTF-8, compact), but with orjson."""
    try:
        return orjson.dumps(body)
    except TypeError:  # not orjson's (an int over 64 bits): the standard library's
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()


_BOM = b"\xef\xbb\xbf"


class Event:
    """One server-sent event: ``data`` (its data lines joined by newlines), ``event`` (the
    type, ``message`` by default), ``id`` (the last event id seen), ``raw``: the bytes
    that send the same data on to a client (``data: …`` lines and a blank line), and
    ``more``: further events of the same read follow at once (``Upstream.events``)."""

    __slots__ = ("data", "event", "id", "more", "raw")

    def __init__(self, data: str, event: str, id_: str, raw: bytes) -> None:
        self.data = data
        self.event = event
        self.id = id_
        self.raw = raw
        self.more = False

    def json(self) -> Any:
        return json.loads(self.data)


class SSEReader:
    """An incremental Server-Sent Events parser over raw bytes (the WHATWG rules: CRLF, LF or
    CR line endings, ``:`` comments, ``data``/``event``/``id`` fields, unknown fields
    ignored). It works on bytes and decodes once per event, which is what keeps the proxy's
    cost per chunk low; an event over ``max_event`` bytes is an ``UpstreamError``."""

    def __init__(self, max_event: int) -> None:
        self._buf = b""
        self._cr = False  # the previous chunk ended with CR: maybe the first half of a CRLF
        self._started = False  # past a possible BOM
        self._last_id = ""
        self._max = max_event

    def feed(self, chunk: bytes) -> list[Event]:
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr = True
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[3:]
        out: list[Event] = []
        start = 0
        while (end := buf.find(b"\n\n", start)) >= 0:
            event = self._event(buf[start:end])
            start = end + 2
            if event is not None:
                out.append(event)
        self._buf = buf[start:] if start else buf
        if len(self._buf) > self._max:
            raise UpstreamError(
                f"the upstream sent an event larger than {self._max} bytes "
                "(tracestop serve --max-event): the response is incomplete", 502)
        return out

    @property
    def inside_event(self) -> bool:
        """The stream so far stopped inside an event (not on a blank line)."""
        return bool((self._buf + (b"\n" if self._cr else b"")).strip(b"\n"))

    def _event(self, block: bytes) -> Event | None:
        if block.startswith(b"data:") and b"\n" not in block:  # the usual event: one line
            value = block[5:]
            if value[:1] == b" ":
                value = value[1:]
            return Event(value.decode("utf-8", "replace"), "message", self._last_id,
                         block + b"\n\n")
        data: list[bytes] = []
        kind = "message"
        for line in block.split(b"\n"):
            if not line or line[:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                kind = value.decode("utf-8", "replace")
            elif name == b"id" and b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        if not data:
            return None
        raw = b"".join(b"data: " + line + b"\n" for line in data) + b"\n"
        return Event(b"\n".join(data).decode("utf-8", "replace"), kind, self._last_id, raw)

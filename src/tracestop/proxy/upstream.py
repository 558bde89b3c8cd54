"""The upstream client: one pooled ``httpx.AsyncClient`` per app, the header policy for the
hop, and reading the upstream's event stream (``httpx-sse``).

Connection failures become 502/504 responses before anything was sent to the client, and
``UpstreamError`` (with the status to report) once the stream is under way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from tracestop.errors import UpstreamError
from tracestop.proxy.config import ProxyConfig
from tracestop.proxy.errors import error_response

__all__ = ["Upstream", "forward_headers", "response_headers"]

log = logging.getLogger("tracestop.proxy")

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


def response_headers(resp: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP_RESPONSE}


class Upstream:
    """The model server behind the proxy."""

    def __init__(self, cfg: ProxyConfig, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.cfg = cfg
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def open(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.cfg.timeout, connect=min(self.cfg.timeout, 10.0)),
                limits=httpx.Limits(max_connections=self.cfg.max_connections,
                                    max_keepalive_connections=64),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        # The lifespan opens it; an app driven without lifespan (in-process) opens it lazily.
        return self._client or self.open()

    async def send(self, req: httpx.Request) -> httpx.Response | Response:
        """Send a request, streaming; a connection failure becomes a 502/504 response."""
        try:
            return await self.client.send(req, stream=True)
        except httpx.TimeoutException:
            return error_response(504, f"the upstream did not answer within {self.cfg.timeout:g} s",
                                  "upstream_error")
        except httpx.HTTPError as e:
            return error_response(502, f"cannot reach the upstream: {type(e).__name__}: {e}",
                                  "upstream_error")

    async def open_stream(self, url: str, headers: list[tuple[str, str]],
                          body: dict[str, Any]) -> httpx.Response | Response:
        """POST ``body`` and return the open event stream, or the response to give the client
        (a connection failure; an error status or a non-stream body, passed through)."""
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

    async def events(self, resp: httpx.Response) -> AsyncGenerator[ServerSentEvent, None]:
        """The events of an open stream, parsed by ``httpx-sse`` (any chunking, UTF-8 split
        anywhere, a leading BOM dropped). Events without data (a lone ``event:``/``id:``) are
        skipped. Raises ``UpstreamError`` on a timeout, a broken connection, or a stream that
        ends inside an event without ``[DONE]``."""
        tail = _Tail(resp.stream, self.cfg.max_event)
        resp.stream = tail
        resp.encoding = "utf-8-sig"  # SSE is always UTF-8; the BOM, if any, is not data
        done = False
        try:
            async for event in EventSource(resp).aiter_sse():
                if not event.data:
                    continue
                done = event.data.strip() == "[DONE]"
                yield event
        except httpx.TimeoutException:
            raise UpstreamError(
                f"the upstream sent nothing for {self.cfg.timeout:g} s: timed out", 504) from None
        except httpx.HTTPError as e:
            raise UpstreamError(
                f"the upstream connection broke mid-stream ({type(e).__name__}): the response "
                "is incomplete", 502) from None
        if not done and tail.inside_event:
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


class _Tail(httpx.AsyncByteStream):
    """The response's byte stream, remembering its last bytes: a stream that does not end
    on a blank line stopped inside an event."""

    def __init__(self, inner: Any, max_event: int) -> None:
        self._inner = inner
        self._tail = b""
        self._max = max_event
        self._pending = 0  # bytes since the last blank line: the event being received

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            if chunk:
                self._tail = (self._tail + chunk)[-4:]
                end = max(chunk.rfind(b"\n\n"), chunk.rfind(b"\r\n\r\n"), chunk.rfind(b"\r\r"))
                self._pending = len(chunk) - end if end >= 0 else self._pending + len(chunk)
                if self._pending > self._max:
                    raise UpstreamError(
                        f"the upstream sent an event larger than {self._max} bytes "
                        "(tracestop serve --max-event): the response is incomplete", 502)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def inside_event(self) -> bool:
        if not self._tail:
            return False
        text = self._tail.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return not text.endswith(b"\n\n")

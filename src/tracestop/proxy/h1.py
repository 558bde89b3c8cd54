"""A lean HTTP/1.1 client for the proxy's hot path: the streamed POST to a plain-``http``
upstream, read with uvicorn's C parser (``httptools``) on an asyncio protocol.

httpx reads a stream through anyio, httpcore and h11 (pure Python): under load, with one SSE
event per socket read, that is about 40 µs of CPU per relayed chunk, more than the rest of the
proxy. Here a read is one ``data_received`` call and one C parse. Only what the relay needs is
implemented: one POST with a known body, a streamed response (chunked, sized or until close),
keep-alive connections reused, a read timeout between reads, back-pressure, and failures
raised as httpx's exceptions, so that ``Upstream`` handles both clients the same way.
Everything else (``https``, user info in the URL, pass-through routes, the answer request)
stays on httpx.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import cast
from urllib.parse import urlsplit

import httptools
import httpx

__all__ = ["H1Pool", "H1Response"]

#: buffered response bytes past which the socket is not read until the relay catches up
_HIGH_WATER = 256 * 1024


class _Conn(asyncio.Protocol):
    """One connection to the upstream, and the response being read on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.lost = False  # the connection is gone (closed by either side)
        self.reused = False
        self._start()

    def _start(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False  # the whole response was read
        self.parts: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.error: Exception | None = None
        self.until_close = False  # the body ends when the connection does
        self.keep_alive = False
        self.got_bytes = False
        self.waiter: asyncio.Future[None] | None = None
        self.last = self.loop.time()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {e}"))
            if self.transport is not None:
                self.transport.close()
            return
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.headers_done and self.until_close and not self.complete:
            self.complete = True  # a body without a length ends with the connection
        elif not self.complete and self.error is None:
            what = "before the response" if not self.headers_done else "mid-response"
            self._fail(httpx.RemoteProtocolError(f"the upstream closed the connection {what}"))
        self._wake()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.raw_headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim response (100 Continue): the real one follows
        self.status = status
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()  # (not after the message: False)
        names = {k.lower() for k, _ in self.raw_headers}
        self.until_close = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        if self.headers_done:
            self.parts.append(body)
            self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True

    # the reader's side
    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Wait for the next bytes (or the end); ``httpx.ReadTimeout`` after ``timeout``
        seconds without any."""
        w = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._expire, w)
        try:
            await w
        finally:
            timer.cancel()

    def _expire(self, w: asyncio.Future[None]) -> None:
        if not w.done():
            self.waiter = None
            w.set_exception(httpx.ReadTimeout("the upstream sent nothing in time"))

    def take(self) -> bytes:
        parts = self.parts
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.parts = []
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class H1Response:
    """A streamed upstream response, with the part of ``httpx.Response``'s interface the proxy
    uses: ``status_code``, ``headers``, ``aiter_raw``, ``aiter_bytes``, ``aread``, ``aclose``."""

    def __init__(self, pool: H1Pool, key: tuple[str, int], conn: _Conn) -> None:
        self._pool = pool
        self._key = key
        self._conn = conn
        self._closed = False
        self.status_code = conn.status
        self.headers = httpx.Headers(conn.raw_headers)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives (transfer coding removed, content coding kept)."""
        conn = self._conn
        timeout = self._pool.timeout
        while True:
            if conn.parts:
                yield conn.take()
            elif conn.error is not None:
                raise conn.error
            elif conn.complete:
                return
            else:
                await conn.wait(timeout)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body with its content coding (gzip, deflate) removed."""
        coding = self.headers.get("content-encoding", "identity").strip().lower()
        if coding in ("identity", ""):
            async for part in self.aiter_raw():
                yield part
            return
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise httpx.DecodingError(f"unsupported content-encoding {coding!r}")
        d = zlib.decompressobj(zlib.MAX_WBITS | 32 if "gzip" in coding else zlib.MAX_WBITS)
        try:
            async for part in self.aiter_raw():
                out = d.decompress(part)
                if out:
                    yield out
            tail = d.flush()
        except zlib.error as e:
            raise httpx.DecodingError(f"cannot decode the {coding} body: {e}") from None
        if tail:
            yield tail

    async def aread(self) -> bytes:
        try:
            return b"".join([part async for part in self.aiter_bytes()])
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if (conn.complete and not conn.lost and conn.error is None and not conn.parts
                and conn.keep_alive):
            self._pool.release(self._key, conn)
        else:
            conn.close()
            self._pool.release(self._key, None)


class H1Pool:
    """Keep-alive connections to plain-``http`` upstreams, at most ``max_connections`` in use
    at once (more wait, up to ``timeout``, as with httpx's pool)."""

    def __init__(self, timeout: float, connect_timeout: float, max_connections: int,
                 max_keepalive: int) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._n_idle = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    @staticmethod
    def handles(url: str) -> bool:
        """Whether this client can send to ``url``: plain http, no user info."""
        parts = urlsplit(url)
        return parts.scheme == "http" and not parts.username and bool(parts.hostname)

    def _bind(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._slots is None:
            self._drop_idle()  # connections of another event loop cannot be used here
            self._loop = loop
            self._slots = asyncio.Semaphore(self.max_connections)
        return self._slots

    def _drop_idle(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                try:
                    c.close()
                except RuntimeError:  # its event loop is closed: nothing left to close
                    pass
        self._idle.clear()
        self._n_idle = 0

    async def post(self, url: str, headers: Sequence[tuple[str, str]], content: bytes
                   ) -> H1Response:
        """POST ``content`` and return once the response's headers are in. Raises
        ``httpx.ConnectError``/``ConnectTimeout``/``ReadTimeout``/``PoolTimeout``/
        ``RemoteProtocolError``."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        key = (host, parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"]
        lines += [f"{k}: {v}\r\n" for k, v in headers]
        lines.append(f"Content-Length: {len(content)}\r\n\r\n")
        request = "".join(lines).encode("latin-1") + content
        slots = self._bind()
        if slots.locked():
            try:
                async with asyncio.timeout(self.timeout):
                    await slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no upstream connection was free in time") from None
        else:
            await slots.acquire()
        try:
            while True:
                conn = await self._connection(key)
                try:
                    await self._exchange(conn, request)
                except httpx.RemoteProtocolError:
                    conn.close()
                    # a kept-alive connection the server had closed: once more on a new one
                    if conn.reused and not conn.got_bytes:
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                return H1Response(self, key, conn)
        except BaseException:
            slots.release()
            raise

    async def _connection(self, key: tuple[str, int]) -> _Conn:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            self._n_idle -= 1
            if not conn.lost and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                conn._start()
                return conn
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(lambda: _Conn(loop), key[0], key[1])
        except TimeoutError:
            raise httpx.ConnectTimeout("connecting to the upstream timed out") from None
        except OSError as e:
            raise httpx.ConnectError(str(e) or type(e).__name__) from None
        return conn

    async def _exchange(self, conn: _Conn, request: bytes) -> None:
        assert conn.transport is not None
        conn.transport.write(request)
        while not conn.headers_done:
            if conn.error is not None:
                raise conn.error
            await conn.wait(self.timeout)

    def release(self, key: tuple[str, int], conn: _Conn | None) -> None:
        if conn is not None:
            if self._n_idle < self.max_keepalive:
                self._idle.setdefault(key, []).append(conn)
                self._n_idle += 1
            else:
                conn.close()
        if self._slots is not None:
            self._slots.release()

    async def aclose(self) -> None:
        self._drop_idle()

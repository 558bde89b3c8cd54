"""Running the proxy under uvicorn (``tracestop serve``): a header read timeout, and the app
factory that ``--workers N`` processes build their app from.

uvicorn arms its keep-alive timer only after a response, so a client that connects and sends
nothing, or half its headers, holds a connection for ever. ``HeaderTimeoutProtocol`` (uvicorn's
httptools protocol) closes such a connection once ``TRACESTOP_HEADER_TIMEOUT`` seconds pass
between the connection (or the first byte of a request) and the end of its headers. The body
has its own limit, ``ProxyConfig.body_timeout`` (HTTP 408).

The proxy keeps no state between requests, so any number of worker processes (or machines
behind a load balancer) can serve the same clients; every worker reads the same settings from
``TRACESTOP_SERVE_CONFIG`` (the keyword arguments of ``create_app``, as JSON).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CONFIG_ENV", "HEADER_TIMEOUT_ENV", "HeaderTimeoutProtocol", "app_from_env"]

CONFIG_ENV = "TRACESTOP_SERVE_CONFIG"
HEADER_TIMEOUT_ENV = "TRACESTOP_HEADER_TIMEOUT"
#: the import string uvicorn resolves in each worker
PROTOCOL = "tracestop.proxy.server:HeaderTimeoutProtocol"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers do not
    arrive in time (slow-loris clients)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = float(os.environ.get(HEADER_TIMEOUT_ENV) or 10.0)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self._header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers took over %g s",
                             self._header_timeout)
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")
            self.transport.close()


def app_from_env() -> FastAPI:
    """The app of one worker: ``create_app(**json.loads($TRACESTOP_SERVE_CONFIG))``."""
    from tracestop.proxy.app import create_app

    kwargs = json.loads(os.environ[CONFIG_ENV])
    return create_app(**kwargs)

"""Disconnect-aware responses: a client that goes away cancels the work for it, and the
upstream stream is always closed (so the server stops generating)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["RAW_SEND", "Relay", "cancel_on_disconnect"]

#: the scope key under which the app leaves the server's unwrapped ``send``
RAW_SEND = "tracestop.raw_send"


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


class Relay(StreamingResponse):
    """An SSE response that cancels its producer the moment the client goes away, and
    always runs ``on_close`` (which closes the upstream stream)."""

    def __init__(self, body: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]],
                 status_code: int = 200, headers: dict[str, str] | None = None,
                 media_type: str | None = "text/event-stream") -> None:
        super().__init__(body, status_code=status_code, headers=headers, media_type=media_type)
        self._body = body
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)
                await send({"type": "http.response.start", "status": self.status_code,
                            "headers": self.raw_headers})
                # the body through the server's own send, if the app left it (once started,
                # the wrappers in between pass body messages on unchanged)
                body_send: Send = scope.get(RAW_SEND) or send
                async for piece in self._body:
                    await body_send({"type": "http.response.body", "body": piece,
                                     "more_body": True})
                await body_send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self._body, "aclose", None)
                if aclose is not None:
                    await aclose()
                await self._on_close()


_T = TypeVar("_T")


async def cancel_on_disconnect(
    receive: Receive, work: Callable[[], Awaitable[_T | Response]]
) -> _T | Response:
    """Run ``work`` but cancel it (closing the upstream) if the client disconnects."""
    result: _T | Response = Response(status_code=499)  # never delivered: the client is gone
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)
        result = await work()
        tg.cancel_scope.cancel()
    return result

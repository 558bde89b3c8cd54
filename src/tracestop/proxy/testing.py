"""The ASGI boilerplate of fake servers (tests/proxy, bench/): answer the lifespan protocol,
read a request body. Standard library only; nothing here is used by the proxy itself.

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["lifespan", "read_body"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def lifespan(receive: Receive, send: Send) -> None:
    """Complete the server's startup and shutdown; returns at shutdown."""
    while True:
        msg = await receive()
        kind = "startup" if msg["type"] == "lifespan.startup" else "shutdown"
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def read_body(receive: Receive) -> bytes:
    """The whole request body (all ``http.request`` messages)."""
    parts: list[bytes] = []
    while True:
        msg = await receive()
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(parts)

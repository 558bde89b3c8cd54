"""OpenAI-compatible streaming proxy that stops reasoning early (``tracestop serve``).

Needs the ``proxy`` extra: ``pip install 'tracestop[proxy]'``. One module per job:

- ``app``: the ASGI app and its routes (handled and pass-through);
- ``config``: ``ProxyConfig`` and the policy check;
- ``request``: request parsing and validation, building the per-request ``Exchange``;
- ``exchange``: one handled request (options, Monitor, what the stream showed, the report);
- ``upstream``: the upstream client, the header policy, reading its event stream (``SSEReader``);
- ``h1``: the lean HTTP/1.1 client that reads a plain-http upstream's stream (httptools);
- ``server``: running under uvicorn (header read timeout, the ``--workers`` app factory);
- ``relay``: driving the stream: relay to the client, stop, splice; streaming and not;
- ``forcing``: the answer request after a stop, and the spliced chunks;
- ``metrics``: the log line per request, Prometheus metrics, the logging setup;
- ``disconnect``: responses that cancel their work when the client goes away;
- ``errors``: the JSON error bodies and which error is which status (a ``ConfigError`` is 400);
- ``schema``: the per-request ``tracestop`` options; ``sse``: pure SSE writers;
- ``testing``: the ASGI boilerplate of fake servers (tests, benchmarks).
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import httpx  # noqa: F401
    import orjson  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tracestop.proxy needs fastapi, uvicorn, httpx and orjson: pip install 'tracestop[proxy]'"
    ) from e

from tracestop.proxy.app import ProxyConfig, create_app
from tracestop.proxy.schema import TracestopOptions

__all__ = ["ProxyConfig", "TracestopOptions", "create_app"]

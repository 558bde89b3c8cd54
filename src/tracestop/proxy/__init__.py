"""OpenAI-compatible streaming proxy that stops reasoning early (``tracestop serve``).

Needs the ``proxy`` extra: ``pip install 'tracestop[proxy]'``. The SSE helpers in
``tracestop.proxy.sse`` are pure and import nothing beyond the standard library.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import httpx  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tracestop.proxy needs fastapi, uvicorn and httpx: pip install 'tracestop[proxy]'"
    ) from e

from tracestop.proxy.app import ProxyConfig, create_app
from tracestop.proxy.schema import TracestopOptions

__all__ = ["ProxyConfig", "TracestopOptions", "create_app"]

"""The ASGI app: an OpenAI-compatible proxy that watches the reasoning and stops it early.

``/v1/chat/completions`` and ``/v1/completions`` are handled; every other route is passed
through unchanged. A handled request is always streamed from the upstream (even when the
client asked for a single JSON body), so that the proxy can stop the generation live:

1. each upstream chunk is relayed as it arrives and fed to a per-request ``Monitor``;
2. on STOP the upstream stream is closed (the server stops generating), and the upstream is
   asked for the final answer from the truncated thinking (a completion prompt, or an
   assistant prefill for chat);
3. the answer is spliced into the same response, whose last chunk (or body) carries a
   ``tracestop`` object.

Faults never hang the client and never cut it silently: an error status is passed through;
a timeout, a malformed stream or a dropped connection ends the stream with an error event;
a failed answer request falls back to the best candidate answer, flagged.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tracestop.errors import ConfigError
from tracestop.monitor import warm_up
from tracestop.proxy.config import ProxyConfig
from tracestop.proxy.disconnect import RAW_SEND, Relay, cancel_on_disconnect
from tracestop.proxy.errors import (
    BodyTooLarge,
    bad_request,
    body_timeout,
    config_error,
    error_response,
    too_large,
)
from tracestop.proxy.exchange import Exchange, Kind
from tracestop.proxy.metrics import ProxyMetrics, log_request
from tracestop.proxy.relay import collect, stream_events
from tracestop.proxy.request import build_exchange, is_json_content_type, read_body
from tracestop.proxy.upstream import StreamResponse, Upstream, forward_headers, response_headers
from tracestop.tag.base import Tagger

__all__ = ["ProxyConfig", "create_app"]

log = logging.getLogger("tracestop.proxy")


def create_app(
    upstream: str,
    policy: str = "default",
    *,
    timeout: float = 300.0,
    max_body: int = 4 * 1024 * 1024,
    answer_tokens: int = 128,
    model_family: str | None = None,
    tagger: Tagger | str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 1024,
    engine: str = "generic",
    max_event: int = 1024 * 1024,
    body_timeout: float = 30.0,
    bind_host: str = "127.0.0.1",
    allow_hosts: Sequence[str] = (),
    allow_origins: Sequence[str] = (),
) -> FastAPI:
    """Build the proxy app. One shared ``httpx.AsyncClient`` lives as long as the app.

    Example::

        app = create_app("http://127.0.0.1:8000", "traces-count:k=3")
        uvicorn.run(app, host="127.0.0.1", port=8400)

    **Parameters:** see ``ProxyConfig``; **tagger** is resolved once (``None``: the default
    tagger); **transport** replaces the network (tests).
    """
    cfg = ProxyConfig(upstream, policy, timeout, max_body, answer_tokens, model_family,
                      max_connections, engine, max_event, body_timeout, bind_host,
                      tuple(h.lower() for h in allow_hosts), tuple(allow_origins))
    state = _AppState(cfg, _resolve_tagger(tagger), Upstream(cfg, transport))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.upstream.open()
        # before the server listens, on the loop's thread: Math-Verify keeps its own
        # timeouts there (off the main thread it runs without them, and says so in the log)
        _warm_up(state)
        # What is loaded now (modules, weights, Math-Verify's grammar: ~170k objects) lives as
        # long as the server: out of the collector's sight, a full collection under load scans
        # only the requests' objects, a pause of the whole loop cut by about half
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await state.upstream.close()

    app = _ProxyApp(title="tracestop proxy", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.tracestop = state
    app.add_middleware(HostOriginGuard, cfg=cfg)

    @app.get("/metrics")
    async def metrics() -> Response:
        if not state.metrics.enabled:
            return error_response(501, "metrics need prometheus-client: pip install "
                                       "'tracestop[proxy]'", "not_implemented")
        data, ctype = state.metrics.render()
        return Response(data, media_type=ctype)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await _handle(state, request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _handle(state, request, "completions")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                            "OPTIONS"])
    async def passthrough(request: Request, path: str) -> Response:
        return await _passthrough(state, request)

    return app


class _ProxyApp(FastAPI):
    """The FastAPI app, which also leaves the server's own ``send`` in the scope
    (``disconnect.RAW_SEND``): a relayed stream writes its body with it, without the three
    wrappers Starlette's error handling puts around every message (they only need to see the
    response start, which still goes through them). Not when middleware other than the
    proxy's own was added to the app: it may want to see the body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if len(self.user_middleware) == 1:  # HostOriginGuard only
            scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


def _warm_up(state: _AppState) -> None:
    """Load weights and Math-Verify before the first request (``tracestop.monitor.warm_up``);
    best effort: a failure here is logged and the first request pays the loading instead."""
    t0 = time.perf_counter()
    try:
        warm_up(state.cfg.policy, state.tagger)
    except Exception as e:  # noqa: BLE001 - a warm-up must never stop the server
        log.warning("warm-up failed (%s: %s); the first request will load what it needs",
                    type(e).__name__, e)
        return
    log.info("warm-up: weights and Math-Verify loaded in %.2f s", time.perf_counter() - t0)


def _resolve_tagger(tagger: Tagger | str | None) -> Tagger:
    if tagger is not None and not isinstance(tagger, str):
        return tagger
    try:
        from tracestop.tag import get_tagger
    except ImportError:
        # The default tagger registry is not available in this build: the rule tagger needs
        # no weights and is always there.
        from tracestop.tag.rules import RuleTagger

        if tagger not in (None, "rules"):
            raise ConfigError(f"unknown tagger {tagger!r}: only 'rules' is available") from None
        log.warning("tracestop.tag.get_tagger is unavailable: using the rule tagger")
        return RuleTagger()
    try:
        result: Tagger = get_tagger(tagger)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return result


class _AppState:
    """What every request of one app shares: its settings, its tagger, its upstream."""

    def __init__(self, cfg: ProxyConfig, tagger: Tagger, upstream: Upstream) -> None:
        self.cfg = cfg
        self.tagger = tagger
        self.upstream = upstream
        self.metrics = ProxyMetrics()

    def done(self, ex: Exchange, outcome: str, error: str | None) -> None:
        log_request(ex, outcome, error)
        self.metrics.record(ex, outcome)


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def host_allowed(host: str, cfg: ProxyConfig) -> bool:
    """A ``Host`` header is fine when it is an IP literal (no DNS, so no rebinding),
    ``localhost``, the bind address, or one the operator allowed (``--allow-host``)."""
    if "*" in cfg.allow_hosts:
        return True
    name = urlsplit(f"//{host}").hostname or ""
    return bool(name) and (_ip(name) is not None or name in _LOOPBACK_NAMES
                           or name == cfg.bind_host.lower() or name in cfg.allow_hosts)


def origin_allowed(origin: str, cfg: ProxyConfig) -> bool:
    """A browser's ``Origin`` is fine when it is on this machine (loopback), on the bind
    address, or allowed by the operator (``--allow-origin``: an origin, or ``*``)."""
    if "*" in cfg.allow_origins or origin.rstrip("/") in cfg.allow_origins:
        return True
    name = urlsplit(origin).hostname or ""
    ip = _ip(name)
    return bool(name) and (name in _LOOPBACK_NAMES or name == cfg.bind_host.lower()
                           or (ip is not None and ip.is_loopback))


class HostOriginGuard:
    """Refuse (403) requests whose ``Host`` or ``Origin`` is not this proxy's: a web page the
    user visits must not reach the model through it (DNS rebinding, cross-site POSTs)."""

    def __init__(self, app: ASGIApp, cfg: ProxyConfig) -> None:
        self.app = app
        self.cfg = cfg

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = origin = None
            for k, v in scope["headers"]:
                if k == b"host":
                    host = v.decode("latin-1")
                elif k == b"origin":
                    origin = v.decode("latin-1")
            problem = None
            if host is not None and not host_allowed(host, self.cfg):
                problem = (f"Host {host!r} is not this proxy's; start it with --allow-host "
                           "NAME to accept it")
            elif origin is not None and not origin_allowed(origin, self.cfg):
                problem = (f"Origin {origin!r} is not allowed; start the proxy with "
                           "--allow-origin ORIGIN to accept it")
            if problem is not None:
                await error_response(403, problem, "permission_error")(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _passthrough(state: _AppState, request: Request) -> Response:
    try:
        body = await read_body(request, state.cfg.max_body, state.cfg.body_timeout)
    except BodyTooLarge:
        return too_large(state.cfg.max_body)
    except TimeoutError:
        return body_timeout(state.cfg.body_timeout)
    url = state.cfg.target(request.url.path, request.url.query)
    req = state.upstream.client.build_request(
        request.method, url, headers=forward_headers(request, handled=False), content=body
    )
    resp = await state.upstream.send(req)
    if isinstance(resp, Response):
        return resp

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for part in resp.aiter_raw():
                yield part
        except httpx.HTTPError as e:
            # Headers are gone already: all that is left is to end the body early.
            log.warning("pass-through %s: upstream failed mid-body: %s", request.url.path,
                        type(e).__name__)

    return Relay(chunks(), resp.aclose, status_code=resp.status_code,
                 headers=response_headers(resp), media_type=None)


async def _handle(state: _AppState, request: Request, kind: Kind) -> Response:
    try:
        return await _handle_request(state, request, kind)
    except (ConfigError, BaseExceptionGroup) as e:
        # A user's mistake found late, also wrapped in an ExceptionGroup by a task group.
        found = config_error(e)
        if found is None:
            raise
        return bad_request(found)


async def _handle_request(state: _AppState, request: Request, kind: Kind) -> Response:
    if not is_json_content_type(request.headers.get("content-type")):
        # A browser's "simple" cross-site POST (text/plain, a form) must not reach the model.
        return error_response(415, "the request body must be JSON: send Content-Type: "
                                   "application/json", param="content-type")
    try:
        raw = await read_body(request, state.cfg.max_body, state.cfg.body_timeout)
    except BodyTooLarge:
        return too_large(state.cfg.max_body)
    except TimeoutError:
        return body_timeout(state.cfg.body_timeout)
    try:
        # orjson is strict where json is not: no NaN/Infinity, no lone UTF-16 surrogates
        # (they cannot be re-encoded for the upstream), at most 1024 levels of nesting.
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return error_response(400, f"the request body is not valid JSON: {e} (JSON has no "
                                   "NaN or Infinity, strings must be valid Unicode, and "
                                   "nesting is limited to 1024 levels)", param="body")
    if not isinstance(body, dict):
        return error_response(400, "the request body must be a JSON object")
    headers = forward_headers(request, handled=True)
    try:
        ex = build_exchange(kind, body, headers, default_policy=state.cfg.policy,
                            model_family=state.cfg.model_family, tagger=state.tagger)
    except ConfigError as e:
        return bad_request(e)
    ex.default_family, ex.default_path = state.cfg.model_family, state.cfg.answer_path
    ex.on_done = state.done

    upstream_body = dict(ex.body)
    upstream_body["stream"] = True  # always stream upstream: that is what makes a stop live
    if not ex.client_stream:
        upstream_body["stream_options"] = {"include_usage": True}
    url = state.cfg.target(request.url.path)
    upstream, answer_tokens = state.upstream, state.cfg.answer_tokens

    async def open_upstream() -> StreamResponse | Response:
        opened = await upstream.open_stream(url, ex.headers, upstream_body)
        ex.upstream_status = opened.status_code
        if isinstance(opened, Response):
            ex.done("error", f"upstream answered HTTP {opened.status_code}")
        return opened

    if ex.client_stream:
        opened = await cancel_on_disconnect(request.receive, open_upstream)
        if isinstance(opened, Response):
            return opened
        resp = opened

        return Relay(stream_events(upstream, ex, resp, answer_tokens), resp.aclose,
                     headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def whole() -> Response:
        opened = await open_upstream()
        if isinstance(opened, Response):
            return opened
        try:
            return await collect(upstream, ex, opened, answer_tokens)
        finally:
            await opened.aclose()

    return await cancel_on_disconnect(request.receive, whole)

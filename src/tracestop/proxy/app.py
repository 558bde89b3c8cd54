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

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar

import anyio
import httpx
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from tracestop.errors import ConfigError, DataError, UpstreamError
from tracestop.monitor import Monitor, MonitorConfig
from tracestop.policies import Preset, parse_policy
from tracestop.presets import load_presets
from tracestop.proxy import sse
from tracestop.proxy.schema import OptionsError, TracestopOptions, pop_options
from tracestop.tag.base import Tagger
from tracestop.templates import OPEN_MARKERS, template_for

__all__ = ["ProxyConfig", "create_app"]

log = logging.getLogger("tracestop.proxy")

#: reasoning fields, in the order they are read (one per delta: vLLM may send two aliases)
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
# Response headers: the body is relayed byte for byte, so its length stays true.
_HOP_BY_HOP_RESPONSE = _HOP_BY_HOP - {"content-length"}
# Keys of the original body that the short answer request must not inherit.
_ANSWER_DROP = frozenset({
    "stream", "stream_options", "n", "best_of", "max_tokens", "max_completion_tokens", "echo",
    "logprobs", "top_logprobs", "tools", "tool_choice", "response_format",
})

Kind = Literal["chat", "completions"]
AnswerSource = Literal["model", "best_candidate", "none"]


@dataclass(frozen=True)
class ProxyConfig:
    """Settings of one proxy app.

    * **upstream** - base URL of the model server, with or without a trailing ``/v1``.
    * **policy** - default policy spec or preset (per request: ``tracestop.policy``).
    * **timeout** - seconds to wait for the upstream (connect, and between two reads).
    * **max_body** - largest request body accepted, in bytes (larger: HTTP 413).
    * **answer_tokens** - ``max_tokens`` of the request that writes the final answer.
    * **model_family** - default end-of-thinking template; by default, from ``model``.
    * **max_connections** - size of the upstream connection pool.
    """

    upstream: str
    policy: str = "default"
    timeout: float = 300.0
    max_body: int = 4 * 1024 * 1024
    answer_tokens: int = 128
    model_family: str | None = None
    max_connections: int = 1024

    def __post_init__(self) -> None:
        if not self.upstream.startswith(("http://", "https://")):
            raise ConfigError(f"upstream must be an http(s) URL, got {self.upstream!r}")
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_body < 1:
            raise ConfigError(f"max_body must be >= 1 byte, got {self.max_body}")
        if self.answer_tokens < 1:
            raise ConfigError(f"answer_tokens must be >= 1, got {self.answer_tokens}")
        _policy(self.policy)  # fail at start-up, not on the first request
        if self.model_family is not None:
            template_for(self.model_family)

    def target(self, path: str, query: str = "") -> str:
        """The upstream URL for a request path (``/v1`` is not doubled)."""
        base = self.upstream.rstrip("/")
        if base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
            path = path[3:]
        return base + path + (f"?{query}" if query else "")


@lru_cache(maxsize=1)
def _presets() -> dict[str, Preset]:
    """Built-in presets plus the user's presets file (``tracestop calibrate`` writes it), read
    once per process."""
    try:
        return load_presets()
    except DataError as e:
        raise ConfigError(str(e)) from None


@lru_cache(maxsize=256)
def _policy(spec: str) -> str:
    """Validate a spec for every answer format (a bad one is a 400); the Monitor resolves it,
    since presets such as ``default`` pick a configuration by the question's answer format."""
    for fmt in ("math", "choice", "yesno"):
        parse_policy(spec, _presets(), answer_format=fmt)
    return spec


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
) -> FastAPI:
    """Build the proxy app. One shared ``httpx.AsyncClient`` lives as long as the app.

    Example::

        app = create_app("http://127.0.0.1:8000", "traces-count:k=3")
        uvicorn.run(app, host="127.0.0.1", port=8400)

    **Parameters:** see ``ProxyConfig``; **tagger** is resolved once (``None``: the default
    tagger); **transport** replaces the network (tests).
    """
    cfg = ProxyConfig(upstream, policy, timeout, max_body, answer_tokens, model_family,
                      max_connections)
    resolved_tagger = _resolve_tagger(tagger)
    state = _AppState(cfg, resolved_tagger, transport)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.open()
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(title="tracestop proxy", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.tracestop = state

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
    def __init__(self, cfg: ProxyConfig, tagger: Tagger,
                 transport: httpx.AsyncBaseTransport | None) -> None:
        self.cfg = cfg
        self.tagger = tagger
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


# --- errors ---------------------------------------------------------------------------------


def _error(status: int, message: str, type_: str = "invalid_request_error",
           param: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": status}, **extra},
        status_code=status,
    )


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise _BodyTooLarge
        parts.append(part)
    return b"".join(parts)


def _too_large(limit: int) -> JSONResponse:
    return _error(413, f"request body is larger than the proxy's limit of {limit} bytes; "
                       "raise it with --max-body", param="body")


def _forward_headers(request: Request, *, handled: bool) -> list[tuple[str, str]]:
    """The client's headers for the upstream (Authorization included), minus hop-by-hop."""
    out = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
    if handled:
        # The proxy re-encodes the body and parses the stream: plain JSON, no compression.
        out = [(k, v) for k, v in out if k.lower() not in ("content-type", "accept-encoding")]
        out += [("content-type", "application/json"), ("accept-encoding", "identity")]
    elif not any(k.lower() == "accept-encoding" for k, _ in out):
        out.append(("accept-encoding", "identity"))  # else httpx would ask for gzip
    return out


def _response_headers(resp: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP_RESPONSE}


# --- disconnect-aware responses -------------------------------------------------------------


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


class _Relay(StreamingResponse):
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
                async for piece in self._body:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self._body, "aclose", None)
                if aclose is not None:
                    await aclose()
                await self._on_close()


_T = TypeVar("_T")


async def _cancel_on_disconnect(
    receive: Receive, work: Callable[[], Awaitable[_T | Response]]
) -> _T | Response:
    """Run ``work`` but cancel it (closing the upstream) if the client disconnects."""
    result: _T | Response = Response(status_code=499)  # never delivered: the client is gone
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)
        result = await work()
        tg.cancel_scope.cancel()
    return result


# --- pass-through ---------------------------------------------------------------------------


async def _passthrough(state: _AppState, request: Request) -> Response:
    try:
        body = await _read_body(request, state.cfg.max_body)
    except _BodyTooLarge:
        return _too_large(state.cfg.max_body)
    url = state.cfg.target(request.url.path, request.url.query)
    req = state.client.build_request(
        request.method, url, headers=_forward_headers(request, handled=False), content=body
    )
    resp = await _send(state, req)
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

    return _Relay(chunks(), resp.aclose, status_code=resp.status_code,
                  headers=_response_headers(resp), media_type=None)


# --- handled routes -------------------------------------------------------------------------


@dataclass
class _Exchange:
    """Everything about one handled request."""

    kind: Kind
    body: dict[str, Any]
    options: TracestopOptions
    monitor: Monitor
    headers: list[tuple[str, str]]
    client_stream: bool
    can_force: bool = True
    reasoning_field: str | None = None  # the separate field the thinking came in, if any
    head: str = ""  # the first characters of inline output (to restore an opening marker)
    id: str = ""
    model: str = ""
    created: int = 0
    spliced: str = ""  # what the proxy wrote after the truncated thinking (cue + answer)
    answer_source: AnswerSource = "model"
    answer_error: str | None = None
    answer_tokens: int | None = None

    def remember(self, chunk: dict[str, Any]) -> None:
        if not self.id:
            self.id = str(chunk.get("id") or f"tracestop-{uuid.uuid4().hex[:24]}")
            self.model = str(chunk.get("model") or self.body.get("model") or "")
            created = chunk.get("created")
            self.created = created if isinstance(created, int) else int(time.time())

    def feed(self, chunk: dict[str, Any]) -> None:
        """Feed choice 0 of an upstream chunk to the Monitor."""
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if self.kind == "completions":
                text = choice.get("text")
                if isinstance(text, str) and text:
                    self._inline(text)
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                continue
            for name in REASONING_FIELDS:
                value = delta.get(name)
                if isinstance(value, str) and value:
                    self.reasoning_field = self.reasoning_field or name
                    self.monitor.feed_thinking(value)
                    break
            content = delta.get("content")
            if isinstance(content, str) and content:
                if self.reasoning_field is not None:
                    self.monitor.feed_answer(content)
                else:
                    self._inline(content)

    def _inline(self, text: str) -> None:
        if len(self.head) < 64:
            self.head += text[: 64 - len(self.head)]
        self.monitor.feed(text)

    @property
    def open_prefix(self) -> str:
        """The raw text the thinking started with (an opening marker the Monitor dropped)."""
        if self.reasoning_field is not None:
            return ""
        stripped = self.head.lstrip()
        for marker in OPEN_MARKERS:
            if stripped.startswith(marker):
                return self.head[: len(self.head) - len(stripped) + len(marker)]
        return ""

    @property
    def cue(self) -> str:
        """The forcing suffix as the client sees it: with the close marker when the thinking
        was inline, only the answer cue when it came in a separate field."""
        suffix = self.monitor.forcing_suffix
        if self.reasoning_field is None:
            return suffix
        close = self.monitor.template.close
        return suffix.split(close, 1)[1].lstrip("\n") if close in suffix else suffix

    def report(self) -> dict[str, Any]:
        out = self.monitor.report()
        out["thinking_tokens_saved_estimate"] = self._saved()
        out["answer_source"] = self.answer_source
        out["thinking_field"] = self.reasoning_field or "inline"
        if self.answer_error:
            out["answer_error"] = self.answer_error
        return out

    def _saved(self) -> int | None:
        """Thinking tokens saved, estimated (see docs/serving.md).

        Stopped: the generation budget the request allowed (``max_tokens`` or
        ``max_completion_tokens``) minus what was generated (all thinking received, by the
        Monitor's counter, plus the answer), an upper bound; ``None`` when the request set
        no budget. Observe mode: the thinking received after the would-stop step, exact up
        to the counter. Not stopped: 0.
        """
        m = self.monitor
        if m.stopped:
            budget = self.body.get("max_tokens") or self.body.get("max_completion_tokens")
            if not isinstance(budget, int):
                return None
            used = m.count_tokens(m.thinking_text)
            answer = self.answer_tokens if self.answer_tokens is not None else (
                m.count_tokens(self.spliced))
            return max(0, budget - used - answer)
        d = m.decision
        if m.observe and d is not None and d.step is not None and m.records:
            return m.records[-1].tokens_cum - m.records[d.step].tokens_cum
        return 0


def _question(kind: Kind, body: dict[str, Any]) -> str:
    if kind == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        return prompt if isinstance(prompt, str) else ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(p.get("text", "") for p in content
                                 if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


async def _send(state: _AppState, req: httpx.Request) -> httpx.Response | Response:
    """Send a request upstream, streaming; a connection failure becomes a 502/504 response."""
    try:
        return await state.client.send(req, stream=True)
    except httpx.TimeoutException:
        return _error(504, f"the upstream did not answer within {state.cfg.timeout:g} s",
                      "upstream_error")
    except httpx.HTTPError as e:
        return _error(502, f"cannot reach the upstream: {type(e).__name__}: {e}",
                      "upstream_error")


def _build_exchange(state: _AppState, kind: Kind, body: dict[str, Any],
                    headers: list[tuple[str, str]]) -> _Exchange:
    options = pop_options(body)
    policy = _policy(options.policy or state.cfg.policy)
    family = options.model_family or state.cfg.model_family
    if family is not None:
        template_for(family)  # a ConfigError names the known families
    else:
        model = body.get("model")
        try:
            template_for(model if isinstance(model, str) else None)
            family = model if isinstance(model, str) else None
        except ConfigError:
            family = None  # an unknown model name: the default template
    can_force = True
    if kind == "completions":
        prompt = body.get("prompt")
        can_force = isinstance(prompt, str) or (
            isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str))
    elif not isinstance(body.get("messages"), list):
        raise OptionsError("'messages' must be a list of chat messages")
    n = body.get("n")
    # The Monitor watches choice 0; with several choices, or no way to force an answer, it
    # only observes.
    observe = options.observe or not can_force or (isinstance(n, int) and n > 1)
    monitor = Monitor(
        policy,
        tagger=state.tagger,
        question=_question(kind, body),
        answer_format=options.answer_format,
        model=family,
        observe=observe,
        config=MonitorConfig(presets=_presets()),
    )
    return _Exchange(kind, body, options, monitor, headers, bool(body.get("stream")), can_force)


async def _handle(state: _AppState, request: Request, kind: Kind) -> Response:
    try:
        raw = await _read_body(request, state.cfg.max_body)
    except _BodyTooLarge:
        return _too_large(state.cfg.max_body)
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(400, "the request body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "the request body must be a JSON object")
    headers = _forward_headers(request, handled=True)
    try:
        ex = _build_exchange(state, kind, body, headers)
    except ConfigError as e:
        return _error(400, str(e), param="tracestop")

    upstream_body = dict(ex.body)
    upstream_body["stream"] = True  # always stream upstream: that is what makes a stop live
    if not ex.client_stream:
        upstream_body["stream_options"] = {"include_usage": True}
    url = state.cfg.target(request.url.path)

    async def open_upstream() -> httpx.Response | Response:
        req = state.client.build_request("POST", url, headers=ex.headers, json=upstream_body)
        resp = await _send(state, req)
        if isinstance(resp, Response):
            return resp
        ctype = resp.headers.get("content-type", "")
        if resp.status_code >= 400 or "text/event-stream" not in ctype:
            # An error status (or a server that ignored stream=true): the client gets the
            # upstream's status and body unchanged.
            try:
                content = await resp.aread()
            except httpx.HTTPError as e:
                return _error(502, f"upstream failed: {type(e).__name__}", "upstream_error")
            finally:
                await resp.aclose()
            return Response(content, status_code=resp.status_code,
                            headers=_response_headers(resp))
        return resp

    if ex.client_stream:
        opened = await _cancel_on_disconnect(request.receive, open_upstream)
        if isinstance(opened, Response):
            return opened
        resp = opened

        async def events() -> AsyncIterator[bytes]:
            async for piece in _stream_events(state, ex, resp):
                yield piece

        return _Relay(events(), resp.aclose,
                      headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def whole() -> Response:
        opened = await open_upstream()
        if isinstance(opened, Response):
            return opened
        try:
            return await _collect(state, ex, opened)
        finally:
            await opened.aclose()

    return await _cancel_on_disconnect(request.receive, whole)


# --- the shared driver ----------------------------------------------------------------------


async def _drive(state: _AppState, ex: _Exchange,
                 resp: httpx.Response) -> AsyncGenerator[dict[str, Any], None]:
    """Yield the chunks to give the client, in order; the last one carries ``tracestop``.

    Raises ``UpstreamError`` on a timeout, a malformed stream or a dropped connection,
    after closing the upstream response.
    """
    parser = sse.SSEParser()
    held: dict[str, Any] | None = None  # a final-looking chunk, kept to carry the report
    done = False
    try:
        async for raw in resp.aiter_bytes():
            for event in parser.feed(raw):
                if event.done:
                    done = True
                    break
                try:
                    chunk = event.json()
                except ValueError:
                    raise UpstreamError(
                        f"malformed stream from the upstream: event data is not JSON: "
                        f"{event.data[:80]!r}", 502) from None
                if not isinstance(chunk, dict):
                    raise UpstreamError(
                        f"malformed stream from the upstream: event data is not a JSON "
                        f"object: {event.data[:80]!r}", 502)
                if held is not None:
                    yield held
                    held = None
                if "error" in chunk and "choices" not in chunk:
                    yield chunk  # the upstream's own error event: relay it as it is
                    continue
                ex.remember(chunk)
                ex.feed(chunk)
                if ex.monitor.stopped:
                    break
                if _is_final(chunk):
                    held = chunk
                else:
                    yield chunk
            if done or ex.monitor.stopped:
                break
        else:
            for event in parser.end():
                if not event.done:
                    raise UpstreamError(
                        "the upstream stream ended inside an event (truncated stream)", 502)
    except httpx.TimeoutException:
        raise UpstreamError(
            f"the upstream sent nothing for {state.cfg.timeout:g} s: timed out", 504) from None
    except httpx.HTTPError as e:
        raise UpstreamError(
            f"the upstream connection broke mid-stream ({type(e).__name__}): the response "
            "is incomplete", 502) from None
    finally:
        # Stopped, done or failed: close the stream now, so the server stops generating.
        await resp.aclose()

    if not ex.id:
        ex.remember({})
    ex.monitor.end()
    if ex.monitor.stopped:
        text = await _answer(state, ex)
        ex.spliced = text
        yield _chunk(ex, content=text)
        yield _chunk(ex, finish="stop", extra={"tracestop": ex.report()})
        return
    if held is not None:
        held["tracestop"] = ex.report()
        yield held
    else:
        final = _chunk(ex, extra={"tracestop": ex.report()})
        final["choices"] = []
        yield final


def _is_final(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    if not choices:
        return True  # a usage chunk
    return all(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def _chunk(ex: _Exchange, *, content: str | None = None, finish: str | None = None,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    if ex.kind == "chat":
        return sse.chat_chunk(ex.id, ex.model, ex.created, content=content,
                              finish_reason=finish, extra=extra)
    return sse.completion_chunk(ex.id, ex.model, ex.created, text=content or "",
                                finish_reason=finish, extra=extra)


async def _answer(state: _AppState, ex: _Exchange) -> str:
    """The text spliced after the truncated thinking: cue + the model's forced answer, or
    cue + the best candidate when the answer request fails. Raises ``UpstreamError`` when
    there is neither."""
    try:
        answer = await _force(state, ex)
        ex.answer_source = "model"
        return ex.cue + answer
    except UpstreamError as e:
        ex.answer_error = str(e)
        log.warning("answer request failed: %s", e)
    best = ex.monitor.answer.current
    if best is not None:
        ex.answer_source = "best_candidate"
        shown = f"\\boxed{{{best}}}" if ex.monitor.answer_format == "math" else best
        return ex.cue + shown
    ex.answer_source = "none"
    raise UpstreamError(
        f"stopped the thinking but could not get an answer: {ex.answer_error}; "
        "no candidate answer had been stated", 502)


async def _force(state: _AppState, ex: _Exchange) -> str:
    """Ask the upstream for the answer from the truncated thinking (non-streaming)."""
    m = ex.monitor
    prefill = ex.open_prefix + m.truncated_thinking + m.forcing_suffix
    body = {k: v for k, v in ex.body.items() if k not in _ANSWER_DROP}
    body["stream"] = False
    body["max_tokens"] = state.cfg.answer_tokens
    if ex.kind == "chat":
        path = "/v1/chat/completions"
        body["messages"] = [*ex.body["messages"], {"role": "assistant", "content": prefill}]
        # vLLM/SGLang: continue the assistant message; llama.cpp treats it as a prefill.
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    else:
        path = "/v1/completions"
        prompt = ex.body["prompt"]
        body["prompt"] = (prompt[0] if isinstance(prompt, list) else prompt) + prefill
    try:
        resp = await state.client.post(state.cfg.target(path), headers=ex.headers, json=body)
    except httpx.TimeoutException:
        raise UpstreamError(f"the answer request timed out after {state.cfg.timeout:g} s",
                            504) from None
    except httpx.HTTPError as e:
        raise UpstreamError(f"the answer request failed: {type(e).__name__}", 502) from None
    if resp.status_code >= 400:
        raise UpstreamError(
            f"the answer request got HTTP {resp.status_code}: {resp.text[:200]}",
            resp.status_code)
    try:
        data = resp.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError):
        raise UpstreamError("the answer request returned an unexpected body", 502) from None
    if ex.kind == "chat":
        message = choice.get("message") or {}
        # A reasoning parser may file a continuation with no end marker under "reasoning".
        text = message.get("content") or next(
            (message[f] for f in REASONING_FIELDS if isinstance(message.get(f), str)
             and message.get(f)), "")
    else:
        text = choice.get("text") or ""
    if not isinstance(text, str) or not text.strip():
        raise UpstreamError("the answer request returned an empty answer", 502)
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    ex.answer_tokens = tokens if isinstance(tokens, int) else None
    return text


# --- streaming and non-streaming ends -------------------------------------------------------


async def _stream_events(state: _AppState, ex: _Exchange,
                         resp: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async with aclosing(_drive(state, ex, resp)) as chunks:
            async for chunk in chunks:
                yield sse.format_event(chunk)
    except UpstreamError as e:
        log.warning("%s stream ended with an error: %s", ex.kind, e)
        yield sse.error_event(str(e), code=e.status, tracestop=ex.report())
    yield sse.DONE
    _log_done(ex)


class _Collector:
    """Folds streamed chunks into one completion body."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.content: dict[int, list[str]] = {}
        self.reasoning: dict[int, list[str]] = {}
        self.finish: dict[int, str] = {}
        self.usage: Any = None
        self.report: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        self.usage = chunk.get("usage") or self.usage
        self.report = chunk.get("tracestop", self.report)
        for choice in chunk.get("choices") or ():
            i = int(choice.get("index", 0))
            if self.kind == "chat":
                delta = choice.get("delta") or {}
                for name in REASONING_FIELDS:
                    if isinstance(delta.get(name), str) and delta[name]:
                        self.reasoning.setdefault(i, []).append(delta[name])
                        break
                text = delta.get("content")
            else:
                text = choice.get("text")
            if isinstance(text, str):
                self.content.setdefault(i, []).append(text)
            if choice.get("finish_reason"):
                self.finish[i] = choice["finish_reason"]

    def choices(self, reasoning_field: str | None) -> list[dict[str, Any]]:
        indices = sorted(set(self.content) | set(self.reasoning) | set(self.finish)) or [0]
        out: list[dict[str, Any]] = []
        for i in indices:
            text = "".join(self.content.get(i, []))
            finish = self.finish.get(i, "stop")
            if self.kind == "completions":
                out.append({"index": i, "text": text, "logprobs": None, "finish_reason": finish})
                continue
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if i in self.reasoning:
                message[reasoning_field or "reasoning_content"] = "".join(self.reasoning[i])
            out.append({"index": i, "message": message, "logprobs": None,
                        "finish_reason": finish})
        return out


async def _collect(state: _AppState, ex: _Exchange, resp: httpx.Response) -> Response:
    got = _Collector(ex.kind)
    try:
        async with aclosing(_drive(state, ex, resp)) as chunks:
            async for chunk in chunks:
                if "error" in chunk and "choices" not in chunk:
                    return JSONResponse(chunk, status_code=502)
                got.add(chunk)
    except UpstreamError as e:
        status = e.status if e.status and e.status >= 400 else 502
        return _error(status, str(e), "upstream_error", tracestop=ex.report())
    m = ex.monitor
    if m.stopped:
        # Nothing was sent yet: give exactly the kept thinking, the cue and the answer.
        got.usage = None
        if ex.reasoning_field is not None:
            got.reasoning[0] = [m.truncated_thinking]
            got.content[0] = [ex.spliced]
        else:
            got.content[0] = [ex.open_prefix + m.truncated_thinking + ex.spliced]
    body = {
        "id": ex.id,
        "object": "chat.completion" if ex.kind == "chat" else "text_completion",
        "created": ex.created,
        "model": ex.model,
        "choices": got.choices(ex.reasoning_field),
        "usage": got.usage,
        "tracestop": got.report if got.report is not None else ex.report(),
    }
    _log_done(ex)
    return JSONResponse(body)


def _log_done(ex: _Exchange) -> None:
    m = ex.monitor
    if m.decision is not None:
        log.info("%s: %s at step %s (%s); answer from %s", ex.kind,
                 "stopped" if m.stopped else "would stop", (m.decision.step or 0) + 1,
                 m.decision.reason, ex.answer_source)

"""Stream relay: drive one exchange over the upstream's event stream, and give the client
the chunks (streaming) or one folded body (non-streaming).

``drive`` relays each chunk as it arrives and feeds it to the Monitor; on STOP it closes the
upstream stream, forces the answer (``forcing``) and splices it in. The last chunk (or the
body) carries the ``tracestop`` report. A user's mistake found only while driving (a
``ConfigError``) is answered as a 400, in the body or as the stream's error event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import httpx
import orjson
from starlette.responses import JSONResponse, Response

from tracestop.errors import ConfigError, UpstreamError
from tracestop.proxy import forcing, sse
from tracestop.proxy.errors import bad_request, error_response
from tracestop.proxy.exchange import REASONING_FIELDS, Exchange, Kind
from tracestop.proxy.upstream import Upstream

__all__ = ["collect", "drive", "stream_events"]

log = logging.getLogger("tracestop.proxy")


async def drive(upstream: Upstream, ex: Exchange, resp: httpx.Response,
                answer_tokens: int) -> AsyncGenerator[dict[str, Any], None]:
    """Yield the chunks to give the client, in order; the last one carries ``tracestop``.

    Raises ``UpstreamError`` on a timeout, a malformed stream or a dropped connection,
    after closing the upstream response.
    """
    held: dict[str, Any] | None = None  # a final-looking chunk, kept to carry the report
    offload = _Offload()
    try:
        async with aclosing(upstream.events(resp)) as events:
            async for event in events:
                if event.data.strip() == "[DONE]":
                    break
                try:
                    chunk = _loads(event.data)
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
                    # the upstream's own error event: relay it as it is
                    yield _Relayed(chunk, event.raw, event.more)
                    continue
                ex.remember(chunk)
                await offload.feed(ex, chunk)
                if ex.monitor.stopped:
                    break
                if _is_final(chunk):
                    held = chunk
                else:
                    yield _Relayed(chunk, event.raw, event.more)  # unmodified: relay its bytes
    finally:
        # Stopped, done or failed: close the stream now, so the server stops generating.
        await resp.aclose()

    if not ex.id:
        ex.remember({})
    await offload.end(ex)
    if ex.monitor.stopped:
        text = await forcing.answer(upstream, ex, answer_tokens)
        ex.spliced = text
        yield forcing.chunk(ex, content=text)
        yield forcing.chunk(ex, finish="stop", extra={"tracestop": ex.report()})
        return
    if held is not None:
        held["tracestop"] = ex.report()
        yield held
    else:
        final = forcing.chunk(ex, extra={"tracestop": ex.report()})
        final["choices"] = []
        yield final


#: thinking characters since the last line break past which the Monitor runs off the event loop
OFFLOAD_CHARS = 4096


class _Offload:
    """Keeps the Monitor's work off the event loop when it can be large.

    The Monitor's cost per chunk is small, except where a step completes: then it tags the
    step and extracts its answers, work that grows with the step's length. Normal steps
    (hundreds of characters) are handled on the loop, where a call costs nothing extra. While
    the text since the last line break exceeds ``OFFLOAD_CHARS`` (a degenerate step: a model
    in a loop), every chunk is fed in a worker thread, so one such stream cannot stall the
    other requests; the stream's own chunks stay in order (each waits for its feed).
    """

    __slots__ = ("pending",)

    def __init__(self) -> None:
        # characters fed since the Monitor last completed a step (a blank line is not enough:
        # a short fragment after it is merged into the step, which completes later)
        self.pending = 0

    async def feed(self, ex: Exchange, chunk: dict[str, Any]) -> None:
        self.pending += len(_chunk_text(chunk))
        steps = len(ex.monitor.records)
        if self.pending <= OFFLOAD_CHARS:
            ex.feed(chunk)
        else:
            await anyio.to_thread.run_sync(ex.feed, chunk, abandon_on_cancel=True)
        if len(ex.monitor.records) != steps:
            self.pending = 0

    async def end(self, ex: Exchange) -> None:
        if self.pending <= OFFLOAD_CHARS:
            ex.monitor.end()
        else:
            await anyio.to_thread.run_sync(ex.monitor.end, abandon_on_cancel=True)


def _chunk_text(chunk: dict[str, Any]) -> str:
    """The text of choice 0 of a chunk (any field the Monitor may read), for ``_Offload``."""
    choices = chunk.get("choices")
    if not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        text = choice.get("text")
        return text if isinstance(text, str) else ""
    out = ""
    for name in ("content", *REASONING_FIELDS):
        value = delta.get(name)
        if isinstance(value, str) and value:
            out = value if not out else out + value
    return out


class _Relayed(dict[str, Any]):
    """A chunk relayed unmodified: ``raw`` is the upstream's event, sent to a streaming
    client as it came (no re-serialisation). Do not modify one after it is yielded."""

    __slots__ = ("more", "raw")

    def __init__(self, chunk: dict[str, Any], raw: bytes, more: bool = False) -> None:
        super().__init__(chunk)
        self.raw = raw
        self.more = more  # more events of the same upstream read follow at once


def _loads(data: str) -> Any:
    """Parse one upstream event. orjson first (fast); the stdlib's parser as the fallback
    for what orjson refuses but an upstream may send: a lone UTF-16 surrogate (an emoji's
    pair split across two chunks), a NaN."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _dumps(obj: Any) -> bytes:
    """Serialise a chunk or body; with lone surrogates (which UTF-8 cannot carry) the JSON
    escapes them (``\\ud83d``) instead of failing, so a client's parser joins a split pair."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":")).encode()


def _event(chunk: dict[str, Any]) -> bytes:
    raw: bytes | None = getattr(chunk, "raw", None)
    return raw if raw is not None else b"data: " + _dumps(chunk) + b"\n\n"


def _is_final(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    if not choices:
        return True  # a usage chunk
    return all(isinstance(c, dict) and c.get("finish_reason") for c in choices)


async def stream_events(upstream: Upstream, ex: Exchange, resp: httpx.Response,
                        answer_tokens: int) -> AsyncIterator[bytes]:
    """The streaming end: SSE bytes, ending with an error event if the exchange fails.

    The chunks of one upstream read (all there at once) go out in one write: under load,
    reads carry many events, and one write per event is most of the relay's cost."""
    out: list[bytes] = []
    try:
        async with aclosing(drive(upstream, ex, resp, answer_tokens)) as chunks:
            async for chunk in chunks:
                out.append(_event(chunk))
                if not getattr(chunk, "more", False):
                    yield out[0] if len(out) == 1 else b"".join(out)
                    out.clear()
    except UpstreamError as e:
        log.warning("%s stream ended with an error: %s", ex.kind, e)
        out.append(_error_event(ex, str(e), "upstream_error", e.status))
    except ConfigError as e:
        # Headers are sent already: the mistake ends the stream as a 400 error event.
        out.append(sse.error_event(str(e), "invalid_request_error", code=400))
    except Exception as e:
        # A bug must not cut the stream silently either: an error event, then [DONE].
        log.exception("%s stream failed", ex.kind)
        out.append(_error_event(ex, f"the proxy failed: {type(e).__name__}", "server_error",
                                500))
    out.append(sse.DONE)
    yield b"".join(out)
    _log_done(ex)


def _error_event(ex: Exchange, message: str, type_: str, code: int | None) -> bytes:
    try:
        report: dict[str, Any] | None = ex.report()
    except Exception:  # noqa: BLE001 - the error event must go out whatever the report does
        report = None
    err = {"error": {"message": message, "type": type_, "code": code}, "tracestop": report}
    return b"data: " + _dumps(err) + b"\n\n"


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


async def collect(upstream: Upstream, ex: Exchange, resp: httpx.Response,
                  answer_tokens: int) -> Response:
    """The non-streaming end: fold the chunks into one completion body."""
    got = _Collector(ex.kind)
    incomplete: str | None = None
    try:
        async with aclosing(drive(upstream, ex, resp, answer_tokens)) as chunks:
            async for chunk in chunks:
                if "error" in chunk and "choices" not in chunk:
                    return JSONResponse(chunk, status_code=502)
                got.add(chunk)
    except UpstreamError as e:
        if ex.monitor.stopped or not (got.finish or ex.monitor.answer_text):
            status = e.status if e.status and e.status >= 400 else 502
            return error_response(status, str(e), "upstream_error", tracestop=ex.report())
        # The answer had arrived (the upstream broke before [DONE]): never discard it.
        incomplete = str(e)
        log.warning("%s: the upstream broke after the answer began; returning what came: %s",
                    ex.kind, e)
    except ConfigError as e:
        return bad_request(e)
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
    if incomplete is not None:
        body["tracestop"]["upstream_incomplete"] = True
        body["tracestop"]["upstream_error"] = incomplete
    _log_done(ex)
    return Response(_dumps(body), media_type="application/json")


def _log_done(ex: Exchange) -> None:
    m = ex.monitor
    if m.decision is not None:
        log.info("%s: %s at step %s (%s); answer from %s", ex.kind,
                 "stopped" if m.stopped else "would stop", (m.decision.step or 0) + 1,
                 m.decision.reason, ex.answer_source)

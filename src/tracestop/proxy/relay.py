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
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import orjson
from starlette.responses import JSONResponse, Response

from tracestop.errors import ConfigError, UpstreamError
from tracestop.proxy import forcing, sse
from tracestop.proxy.errors import bad_request, error_response
from tracestop.proxy.exchange import REASONING_FIELDS, Exchange, Kind
from tracestop.proxy.metrics import redact
from tracestop.proxy.upstream import StreamResponse, Upstream

__all__ = ["collect", "drive", "stream_events"]

log = logging.getLogger("tracestop.proxy")


async def drive(upstream: Upstream, ex: Exchange, resp: StreamResponse,
                answer_tokens: int) -> AsyncGenerator[dict[str, Any], None]:
    """Yield the chunks to give the client, in order; the last one carries ``tracestop``.

    Raises ``UpstreamError`` on a timeout, a malformed stream or a dropped connection,
    after closing the upstream response.
    """
    held: dict[str, Any] | None = None  # a final-looking chunk, kept to carry the report
    # Chunks that carry text after the end of the step being written: relayed once the
    # Monitor has decided on that step, so that nothing after a stop step reaches the client.
    # Bounded: only the tail after the last step boundary waits. (chunk, thinking chars, arrival)
    pending: list[tuple[_Relayed, int, float]] = []
    offload = _Offload()
    try:
        async with aclosing(upstream.events(resp)) as events:
            async for event in events:
                data = event.data
                if data[:1] != "{" and data.strip() == "[DONE]":
                    break
                try:
                    chunk = _loads(data)
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
                    for waiting, n, _t in pending:
                        ex.sent_thinking += n
                        waiting.more = False
                        yield waiting
                    pending.clear()
                    # the upstream's own error event: relay it as it is
                    yield _Relayed(chunk, event.raw, event.more)
                    continue
                if not ex.id:
                    ex.remember(chunk)
                t0 = time.perf_counter()
                text = _chunk_text(chunk)
                got = await offload.feed(ex, chunk, text)
                now = time.perf_counter()
                ex.monitor_seconds += now - t0
                m = ex.monitor
                if m.stopped:
                    break
                relayed = _Relayed(chunk, event.raw, event.more)  # unmodified: relay its bytes
                if _FAST_PATH and not pending and (m.observe or m.thinking_closed or not got
                                    or ("\n" not in text and not text.isspace())):
                    # The fast path of the loop below: nothing waits, and this chunk cannot
                    # hold a step boundary (no line break; text that is not all whitespace
                    # ends any trailing whitespace before it), so it is inside the step being
                    # written, which may reach the client.
                    ex.sent_thinking += got
                    if _is_final(chunk):
                        held = chunk
                    else:
                        yield relayed
                    continue
                pending.append((relayed, got, now))
                safe = None if m.observe or m.thinking_closed else _safe_end(ex)
                released: list[_Relayed] = []
                while pending and (safe is None or ex.sent_thinking + pending[0][1] <= safe):
                    waiting, n, arrived = pending.pop(0)
                    ex.sent_thinking += n
                    ex.hold_seconds = max(ex.hold_seconds, now - arrived)
                    if waiting is relayed and _is_final(chunk):
                        held = chunk
                    else:
                        released.append(waiting)
                for i, waiting in enumerate(released):
                    # batch with the events of the same upstream read, unless some still wait
                    waiting.more = i < len(released) - 1 or (event.more and not pending)
                    yield waiting
    finally:
        # Stopped, done or failed: close the stream now, so the server stops generating.
        await resp.aclose()

    if not ex.id:
        ex.remember({})
    await offload.end(ex)
    if ex.monitor.stopped:
        rest = ex.kept_raw[ex.sent_thinking:]
        if rest:  # the part of the stop step that waited with the step after it
            yield _thinking_chunk(ex, rest)
        t0 = time.perf_counter()
        try:
            text = await forcing.answer(upstream, ex, answer_tokens)
        finally:
            ex.answer_seconds = time.perf_counter() - t0
        ex.spliced = text
        yield forcing.chunk(ex, content=text)
        usage = ex.usage()
        if usage is not None and _wants_usage(ex):
            yield forcing.chunk(ex, finish="stop")
            last = forcing.chunk(ex, extra={"usage": usage, "tracestop": ex.report()})
            last["choices"] = []
            yield last
        else:
            yield forcing.chunk(ex, finish="stop", extra={"tracestop": ex.report()})
        return
    tail: list[dict[str, Any]] = ([held] if held is not None else [])
    tail += [c for c, _n, _t in pending]
    if tail and _is_final(tail[-1]):
        for c in tail[:-1]:
            yield c
        last = dict(tail[-1])  # a plain copy: a _Relayed would be sent as its raw bytes
        last["tracestop"] = ex.report()
        yield last
        return
    for c in tail:
        yield c
    final = forcing.chunk(ex, extra={"tracestop": ex.report()})
    final["choices"] = []
    yield final


_BOUNDARY = re.compile(r"\n\s*\n")  # the Segmenter's step boundary (a blank line)
#: ``drive`` releases a chunk that cannot hold a boundary without the hold-back scan (tests
#: turn it off to compare)
_FAST_PATH = True


def _safe_end(ex: Exchange) -> int:
    """How much raw thinking may reach the client now: up to the end of the step being
    written (its boundary may still follow), after the last step the Monitor decided on."""
    m = ex.monitor
    text = m.thinking_text
    done = m.records[m.n_decided - 1].tagged.step.end if m.n_decided else 0
    after = _BOUNDARY.match(text, done)
    start = after.end() if after else done
    nxt = _BOUNDARY.search(text, start)
    if nxt:
        end = nxt.start()
    else:  # a boundary can only begin at a line break in the trailing whitespace
        body = start + len(text[start:].rstrip())  # O(step), not O(all thinking) per chunk
        brk = text.find("\n", body)
        end = brk if brk >= 0 else len(text)
    return len(ex.open_prefix) + max(done, end)


def _wants_usage(ex: Exchange) -> bool:
    if not ex.client_stream:
        return True  # the body gets usage
    opts = ex.body.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))


def _thinking_chunk(ex: Exchange, text: str) -> dict[str, Any]:
    """A chunk carrying raw thinking, where the upstream put it."""
    if ex.kind == "chat" and ex.reasoning_field is not None:
        out = forcing.chunk(ex)
        out["choices"][0]["delta"] = {ex.reasoning_field: text}
        return out
    return forcing.chunk(ex, content=text)


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

    async def feed(self, ex: Exchange, chunk: dict[str, Any], text: str) -> int:
        """``ex.feed(chunk)``, on the loop or in a worker thread; returns what it returns.
        ``text``: ``_chunk_text(chunk)``."""
        self.pending += len(text)
        steps = len(ex.monitor.records)
        if self.pending <= OFFLOAD_CHARS:
            got = ex.feed(chunk)
        else:
            got = await anyio.to_thread.run_sync(ex.feed, chunk, abandon_on_cancel=True)
        if len(ex.monitor.records) != steps:
            self.pending = 0
        return got

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


async def stream_events(upstream: Upstream, ex: Exchange, resp: StreamResponse,
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
        log.warning("%s stream ended with an error: %s", ex.kind, redact(str(e), ex.headers))
        ex.done("error", str(e))
        out.append(_error_event(ex, str(e), "upstream_error", e.status))
    except ConfigError as e:
        # Headers are sent already: the mistake ends the stream as a 400 error event.
        ex.done("error", str(e))
        out.append(sse.error_event(str(e), "invalid_request_error", code=400))
    except Exception as e:
        # A bug must not cut the stream silently either: an error event, then [DONE].
        log.exception("%s stream failed", ex.kind)
        ex.done("error", f"{type(e).__name__}")
        out.append(_error_event(ex, f"the proxy failed: {type(e).__name__}", "server_error",
                                500))
    ex.done(_outcome(ex))
    out.append(sse.DONE)
    yield b"".join(out)


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


async def collect(upstream: Upstream, ex: Exchange, resp: StreamResponse,
                  answer_tokens: int) -> Response:
    """The non-streaming end: fold the chunks into one completion body."""
    got = _Collector(ex.kind)
    incomplete: str | None = None
    try:
        async with aclosing(drive(upstream, ex, resp, answer_tokens)) as chunks:
            async for chunk in chunks:
                if "error" in chunk and "choices" not in chunk:
                    ex.done("error", "the upstream sent an error event")
                    return JSONResponse(chunk, status_code=502)
                got.add(chunk)
    except UpstreamError as e:
        if ex.monitor.stopped or not (got.finish or ex.monitor.answer_text):
            status = e.status if e.status and e.status >= 400 else 502
            ex.done("error", str(e))
            return error_response(status, str(e), "upstream_error", tracestop=ex.report())
        # The answer had arrived (the upstream broke before [DONE]): never discard it.
        incomplete = str(e)
        log.warning("%s: the upstream broke after the answer began; returning what came: %s",
                    ex.kind, redact(str(e), ex.headers))
    except ConfigError as e:
        ex.done("error", str(e))
        return bad_request(e)
    m = ex.monitor
    if m.stopped:
        # Nothing was sent yet: give exactly the kept thinking, the cue and the answer.
        got.usage = ex.usage()
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
    ex.done(_outcome(ex))
    return Response(_dumps(body), media_type="application/json")


def _outcome(ex: Exchange) -> str:
    return "stopped" if ex.monitor.stopped else "completed"

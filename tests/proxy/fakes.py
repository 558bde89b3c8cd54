"""Test doubles for the proxy tests: a fake OpenAI-compatible upstream and the proxy, both real
HTTP servers on 127.0.0.1 (uvicorn in a thread), and a few tiny hand-written traces.

The fake upstream streams a trace chunk by chunk in one of the reasoning formats
(``reasoning_content``, ``reasoning``, ``thinking``, ``inline``), logs what it sent and
whether the client closed early, and injects faults. A test steers it through a ``fake``
object in the request body, which the proxy forwards like any unknown key::

    client.chat.completions.create(..., extra_body={"fake": {"id": "t1", "trace": T}})
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from tracestop.proxy.testing import lifespan, read_body
from tracestop.segment import split_thinking

REPO = Path(__file__).resolve().parents[2]
QUESTION = "Tom has 12 apples and gives 5 away. How many apples are left?"

_SETUP = [
    "Okay, so I need to find how many apples Tom has left after giving some away.",
    "Tom starts with 12 apples. He gives away 5 of them to his friend Sam.",
    "The operation here is a subtraction: the apples left are 12 minus 5.",
    "Computing it: 12 - 5 = 7, so seven apples remain with Tom at the end.",
]
_ANSWERS = [
    "So the answer is 7.",
    "Let me double-check: 7 + 5 = 12, so the answer is 7.",
    "Checking once more by counting down from 12 five times, the answer is 7.",
]
_TAIL = [f"Wait, let me verify it another way, attempt number {i}: 12 - 5 = 7 still holds."
         for i in range(40)]

#: states 7 three times in a row, then keeps checking for 40 more steps
STOP_TRACE = "\n\n".join(_SETUP + _ANSWERS + _TAIL) + "\n</think>\n\nTom has \\boxed{7} apples left."
#: never states a candidate answer
NO_ANSWER_TRACE = "\n\n".join(
    f"Step {i}: thinking about the structure of the problem without concluding anything yet."
    for i in range(40)
) + "\n</think>\n\nI am not sure."
#: a policy that depends on the answer tracker only, not on the tagger
POLICY = "consistency:k=3"
FORCED = " \\boxed{7}"


def shared_data() -> Path:
    return Path(os.environ.get("TRACESTOP_DATA") or REPO.parent / "shared" / "data")


# --- the fake upstream ----------------------------------------------------------------------


@dataclass
class Record:
    """What the fake did for one ``fake.id``."""

    requests: list[dict[str, Any]] = field(default_factory=list)  # {"body", "headers", ...}
    total: int = 0  # content chunks it meant to send
    sent: int = 0  # content chunks it sent
    closed_early: bool = False  # the client went away before the end of the stream
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def answer_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if not r["body"].get("stream")]


def _pieces(text: str, chunk: Any) -> list[str]:
    if isinstance(chunk, list):
        out, i, k = [], 0, 0
        while i < len(text):
            n = max(1, int(chunk[k % len(chunk)]))
            out.append(text[i : i + n])
            i, k = i + n, k + 1
        return out
    n = max(1, int(chunk))
    return [text[i : i + n] for i in range(0, len(text), n)]


class FakeUpstream:
    """A raw ASGI app that plays an OpenAI-compatible reasoning server."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self._lock = threading.Lock()

    def record(self, id_: str) -> Record:
        with self._lock:
            return self.records.setdefault(id_, Record())

    def wait(self, id_: str, timeout: float = 5.0) -> Record:
        rec = self.record(id_)
        assert rec.finished.wait(timeout), f"fake upstream stream {id_} never finished"
        return rec

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        if path == "/v1/models":
            await _json(send, 200, {"object": "list", "data": [
                {"id": "fake-r1", "object": "model", "owned_by": "tests"}]},
                extra=[(b"x-fake-upstream", b"models")])
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            await _json(send, 418, {"method": scope["method"], "path": path,
                                    "query": scope["query_string"].decode(),
                                    "body": body.decode(),
                                    "authorization": headers.get("authorization")},
                        extra=[(b"x-fake-upstream", b"echo")])
            return
        req = json.loads(body)
        spec = req.get("fake") or {}
        rec = self.record(spec.get("id", "anonymous"))
        rec.requests.append({"body": req, "headers": headers, "path": path})
        chat = path.endswith("chat/completions")
        if not req.get("stream"):
            await self._answer(spec, chat, receive, send)
            return
        try:
            await self._stream(spec, req, chat, rec, receive, send)
        finally:
            rec.finished.set()

    async def _answer(self, spec: dict, chat: bool, receive: Any, send: Any) -> None:
        fault = spec.get("answer_fault")
        if fault == "500":
            await _json(send, 500, {"error": {"message": "answer failed", "type": "server"}})
            return
        if fault == "stall":
            # hold the request until the client gives up (the body is read: the next
            # message is the disconnect)
            await asyncio.wait_for(receive(), 10)
            return
        text = "" if fault == "empty" else spec.get("answer", FORCED)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        await _json(send, 200, {"id": "fake-answer", "object": "x", "created": 1,
                                "model": "fake-r1", "choices": [choice],
                                "usage": {"prompt_tokens": 100, "completion_tokens": 4,
                                          "total_tokens": 104}})

    async def _stream(self, spec: dict, req: dict, chat: bool, rec: Record, receive: Any,
                      send: Any) -> None:
        fault = spec.get("fault") or {}
        if "status" in fault:
            await _json(send, int(fault["status"]), fault.get("body", {"error": "x"}))
            return
        trace = spec.get("trace", STOP_TRACE)
        fmt = spec.get("format", "reasoning_content")
        chunk = spec.get("chunk", 16)
        think, answer = split_thinking(trace)
        answer = answer or ""
        events: list[dict[str, Any]] = []
        if not chat:
            events = [{"text": t} for t in _pieces(trace, chunk)]
        elif fmt == "inline":
            events = [{"content": t} for t in _pieces(trace, chunk)]
        else:
            events = [{fmt: t} for t in _pieces(think, chunk)]
            events += [{"content": t} for t in _pieces(answer, chunk)]
        if spec.get("emoji_split"):
            # an emoji whose UTF-16 surrogate pair is split across two events (json.dumps
            # escapes each half: "\ud83d", then "\ude00")
            key = "text" if not chat else "content"
            events += [{key: "\ud83d"}, {key: "\ude00"}, {key: " done"}]
        rec.total = len(events)
        eol = "\r\n" if spec.get("crlf") else "\n"

        def frame(payload: dict[str, Any] | str) -> bytes:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            return f"data: {data}{eol}{eol}".encode()

        def wrap(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            if chat:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                obj = "chat.completion.chunk"
            else:
                choice = {"index": 0, "text": delta.get("text", ""), "finish_reason": finish}
                obj = "text_completion"
            return {"id": "fake-1", "object": obj, "created": 1700000000,
                    "model": req.get("model", "fake-r1"), "choices": [choice]}

        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.create_task(watch())
        split = spec.get("split_bytes")

        async def write(data: bytes) -> None:
            if split:
                for i in range(0, len(data), split):
                    await send({"type": "http.response.body", "body": data[i : i + split],
                                "more_body": True})
            else:
                await send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            if chat:
                await write(frame(wrap({"role": "assistant", "content": ""})))
            if spec.get("big_event"):
                await write(frame(wrap({"content" if chat else "text": "x" * spec["big_event"]})))
            delay = float(spec.get("delay", 0.001))
            for i, delta in enumerate(events):
                if gone.is_set():
                    rec.closed_early = True
                    return
                if fault.get("stall_after") == i:
                    await asyncio.wait_for(gone.wait(), 30)
                    rec.closed_early = True
                    return
                if fault.get("malformed_after") == i:
                    await write(f"data: {{this is not json{eol}{eol}".encode())
                    await asyncio.wait_for(gone.wait(), 30)
                    rec.closed_early = True
                    return
                if fault.get("disconnect_after") == i:
                    raise RuntimeError("fake upstream: dropping the connection on purpose")
                await write(frame(wrap(delta)))
                rec.sent += 1
                await asyncio.sleep(delay)
            await write(frame(wrap({}, "stop")))
            if fault.get("drop_before_done"):
                raise RuntimeError("fake upstream: dropping the connection before [DONE]")
            if (req.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 20, "completion_tokens": rec.total,
                         "total_tokens": 20 + rec.total}
                await write(frame({"id": "fake-1", "object": "chat.completion.chunk",
                                   "created": 1700000000, "model": "fake-r1", "choices": [],
                                   "usage": usage}))
            await write(frame("[DONE]"))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()


async def _json(send: Any, status: int, obj: Any,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": data})


# --- servers --------------------------------------------------------------------------------


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, app: Any, **kw: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical",
                                lifespan="on", access_log=False,
                                timeout_graceful_shutdown=1, **kw)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

PROXY_TIMEOUT = 1.0
PROXY_MAX_BODY = 256 * 1024
ANSWER_TOKENS = 32

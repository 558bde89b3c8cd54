"""Pure Server-Sent Events helpers: an incremental parser and the chunk formatters.

No I/O and no third-party imports. ``SSEParser.feed(bytes)`` copes with any chunking of
the byte stream: events, lines, ``\\r\\n`` pairs and multi-byte UTF-8 characters may all be
split across reads.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DONE",
    "SSEEvent",
    "SSEParser",
    "chat_chunk",
    "completion_chunk",
    "error_event",
    "format_event",
]

#: the OpenAI end-of-stream sentinel, formatted
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: ``data`` is its data lines joined by ``\\n``."""

    data: str
    event: str = ""
    id: str | None = None

    @property
    def done(self) -> bool:
        """True for the OpenAI ``[DONE]`` sentinel."""
        return self.data.strip() == "[DONE]"

    def json(self) -> Any:
        """The data parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.data)


class SSEParser:
    """Incremental SSE parser (the WHATWG event-stream grammar, minus ``retry``).

    ``feed(chunk)`` returns the events completed by ``chunk``; ``end()`` returns whatever
    the stream left unfinished (a last event not followed by a blank line). Comment lines
    (``: keep-alive``) and unknown fields are ignored, as the standard says.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._cr_pending = False  # the last chunk ended in "\r": a "\n" may follow
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._has_fields = False
        self._first = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if self._first and text:
            self._first = False
            text = text.removeprefix("\ufeff")
        if self._cr_pending and text:
            # a "\r\n" pair split across reads is one line break, not two
            text = text.removeprefix("\n")
            self._cr_pending = False
        buf = self._buf + text
        out: list[SSEEvent] = []
        start = 0
        n = len(buf)
        while start < n:
            i_n = buf.find("\n", start)
            i_r = buf.find("\r", start, i_n if i_n >= 0 else n)
            if i_r >= 0:
                end, nxt = i_r, i_r + 1
                if nxt < n and buf[nxt] == "\n":
                    nxt += 1
                elif nxt == n:
                    self._cr_pending = True
            elif i_n >= 0:
                end, nxt = i_n, i_n + 1
            else:
                break
            self._line(buf[start:end], out)
            start = nxt
        self._buf = buf[start:]
        return out

    def end(self) -> list[SSEEvent]:
        """Flush at the end of the stream: a trailing unterminated event is still returned."""
        out: list[SSEEvent] = []
        rest = self._buf + self._decoder.decode(b"", final=True)
        self._buf = ""
        if rest:
            self._line(rest, out)
        self._dispatch(out)
        return out

    @property
    def pending(self) -> bool:
        """True when a partial line or an undispatched event is buffered."""
        return bool(self._buf) or self._has_fields

    def _line(self, line: str, out: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line.startswith(":"):
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_fields = True
        elif name == "event":
            self._event = value
            self._has_fields = True
        elif name == "id":
            self._id = value
            self._has_fields = True

    def _dispatch(self, out: list[SSEEvent]) -> None:
        if self._data:
            out.append(SSEEvent("\n".join(self._data), self._event, self._id))
        self._data = []
        self._event = ""
        self._has_fields = False


def format_event(data: str | dict[str, Any]) -> bytes:
    """One SSE event carrying ``data`` (a dict is JSON-encoded on one line)."""
    if not isinstance(data, str):
        data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    lines = data.split("\n")
    return ("".join(f"data: {line}\n" for line in lines) + "\n").encode()


def error_event(message: str, type_: str = "upstream_error", code: int | None = None,
                **extra: Any) -> bytes:
    """An OpenAI-style error event: ``data: {"error": {...}}``."""
    err: dict[str, Any] = {"message": message, "type": type_, "code": code}
    return format_event({"error": err, **extra})


def chat_chunk(
    id_: str,
    model: str,
    created: int,
    *,
    content: str | None = None,
    finish_reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice (index 0)."""
    delta: dict[str, Any] = {} if content is None else {"content": content}
    out: dict[str, Any] = {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None,
                     "finish_reason": finish_reason}],
    }
    if extra:
        out.update(extra)
    return out


def completion_chunk(
    id_: str,
    model: str,
    created: int,
    *,
    text: str = "",
    finish_reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``text_completion`` chunk with one choice (index 0)."""
    out: dict[str, Any] = {
        "id": id_,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None,
                     "finish_reason": finish_reason}],
    }
    if extra:
        out.update(extra)
    return out

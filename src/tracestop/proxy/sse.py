"""Pure Server-Sent Events writers: the events and chunks the proxy sends to its clients.

No I/O and no third-party imports. Reading the upstream's stream is
``tracestop.proxy.upstream`` 's job (its byte-level ``SSEReader``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "DONE",
    "chat_chunk",
    "completion_chunk",
    "error_event",
    "format_event",
]

#: the OpenAI end-of-stream sentinel, formatted
DONE = b"data: [DONE]\n\n"


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

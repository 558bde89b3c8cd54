"""SSE on both sides of the proxy: the upstream's stream is read (``SSEReader``, behind
``Upstream.events``) into the same events whatever the byte chunking, and the writers'
output reads back as what was written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracestop.errors import UpstreamError
from tracestop.proxy.config import ProxyConfig
from tracestop.proxy.sse import DONE, chat_chunk, error_event, format_event
from tracestop.proxy.upstream import Upstream


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


def parse_all(chunks: list[bytes]) -> list[tuple[str, str, str]]:
    async def go() -> list[tuple[str, str, str]]:
        resp = httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=_Chunks(chunks))
        upstream = Upstream(ProxyConfig("http://127.0.0.1:9", policy="none"))
        return [(e.data, e.event, e.id) async for e in upstream.events(resp)]

    return asyncio.run(go())


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


STREAM = (
    "\ufeff: a comment line\r\n"
    "data: {\"a\": \"é — 😀\"}\r\n\r\n"
    "event: note\nid: 7\ndata: line one\ndata: line two\n\n"
    "data:no-space\r\r"
    "event: ping\n\n"
    "retry: 100\nunknown: x\ndata: [DONE]\n\n"
).encode()
EXPECTED = [
    ('{"a": "é — 😀"}', "message", ""),
    ("line one\nline two", "note", "7"),
    ("no-space", "message", "7"),  # the last event id carries over, as the standard says
    ("[DONE]", "message", "7"),  # the data-less "ping" event is skipped
]


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([STREAM], id="whole"),
        pytest.param([STREAM[i : i + 1] for i in range(len(STREAM))], id="byte-by-byte"),
    ],
)
def test_reader_cases(chunks: list[bytes]) -> None:
    assert parse_all(chunks) == EXPECTED


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_reader_chunking_invariance(cuts: list[int]) -> None:
    assert parse_all(split_at(STREAM, cuts)) == EXPECTED


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
)
def test_format_then_read_roundtrip(texts: list[str], cuts: list[int]) -> None:
    events = [{"choices": [{"delta": {"content": t}}]} for t in texts]
    data = b"".join(format_event(e) for e in events) + DONE
    got = parse_all(split_at(data, cuts))
    assert [json.loads(d) for d, _, _ in got[:-1]] == events
    assert got[-1][0] == "[DONE]"


@pytest.mark.parametrize("tail", [b"data: {\"x\": 1}", b"data: {\"x\": 1}\n", b"data: {\"x\": 1}\r"])
def test_stream_ending_inside_an_event_is_an_error(tail: bytes) -> None:
    with pytest.raises(UpstreamError, match="truncated stream"):
        parse_all([format_event({"x": 0}), tail])


def test_stream_ending_between_events_without_done_is_not_an_error() -> None:
    assert [d for d, _, _ in parse_all([format_event({"x": 0}), b"\r\n\r\n"])] == ['{"x":0}']
    assert parse_all([]) == []


def test_multiline_string_is_split_into_data_lines() -> None:
    assert format_event("a\nb") == b"data: a\ndata: b\n\n"
    assert parse_all([format_event("a\nb")])[0][0] == "a\nb"


def test_error_event_and_chunk_shapes() -> None:
    ((data, _, _),) = parse_all([error_event("boom", code=504, tracestop={"stopped": False})])
    assert json.loads(data) == {"error": {"message": "boom", "type": "upstream_error",
                                          "code": 504}, "tracestop": {"stopped": False}}
    chunk = chat_chunk("id1", "m", 1, content="hi", finish_reason="stop", extra={"k": 1})
    assert chunk["choices"][0]["delta"] == {"content": "hi"} and chunk["k"] == 1
    assert parse_all([DONE])[0][0] == "[DONE]"

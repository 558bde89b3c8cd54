"""The pure SSE helpers: the parser gives the same events whatever the byte chunking."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracestop.proxy.sse import DONE, SSEParser, chat_chunk, error_event, format_event


def parse_all(chunks: list[bytes]) -> list[tuple[str, str, str | None]]:
    p = SSEParser()
    out = []
    for c in chunks:
        out += p.feed(c)
    out += p.end()
    return [(e.data, e.event, e.id) for e in out]


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
    "retry: 100\nunknown: x\ndata: [DONE]\n\n"
).encode()
EXPECTED = [
    ('{"a": "é — 😀"}', "", None),
    ("line one\nline two", "note", "7"),
    ("no-space", "", "7"),  # the last event id carries over, as the standard says
    ("[DONE]", "", "7"),
]


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([STREAM], id="whole"),
        pytest.param([STREAM[i : i + 1] for i in range(len(STREAM))], id="byte-by-byte"),
    ],
)
def test_parser_cases(chunks: list[bytes]) -> None:
    assert parse_all(chunks) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_parser_chunking_invariance(cuts: list[int]) -> None:
    assert parse_all(split_at(STREAM, cuts)) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
)
def test_format_then_parse_roundtrip(texts: list[str], cuts: list[int]) -> None:
    events = [{"choices": [{"delta": {"content": t}}]} for t in texts]
    data = b"".join(format_event(e) for e in events) + DONE
    got = parse_all(split_at(data, cuts))
    assert [json.loads(d) for d, _, _ in got[:-1]] == events
    assert got[-1][0] == "[DONE]"


def test_unterminated_event_is_flushed_at_end() -> None:
    p = SSEParser()
    assert p.feed(b"data: {\"x\": 1}\n") == []
    assert p.pending
    assert [e.data for e in p.end()] == ['{"x": 1}']


def test_multiline_string_is_split_into_data_lines() -> None:
    assert format_event("a\nb") == b"data: a\ndata: b\n\n"
    (event,) = SSEParser().feed(format_event("a\nb"))
    assert event.data == "a\nb"


def test_error_event_and_chunk_shapes() -> None:
    (event,) = SSEParser().feed(error_event("boom", code=504, tracestop={"stopped": False}))
    assert event.json() == {"error": {"message": "boom", "type": "upstream_error", "code": 504},
                            "tracestop": {"stopped": False}}
    chunk = chat_chunk("id1", "m", 1, content="hi", finish_reason="stop", extra={"k": 1})
    assert chunk["choices"][0]["delta"] == {"content": "hi"} and chunk["k"] == 1
    assert SSEParser().feed(DONE)[0].done

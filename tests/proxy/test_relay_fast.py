"""The relay's per-chunk fast paths give the client exactly what the general code does.

* ``relay.drive`` releases a chunk that cannot hold a step boundary without the hold-back
  scan: the bytes a client gets are the same with the fast path on and off, over random
  chunkings of traces with blank lines, whitespace-only chunks and lone line breaks.
* ``Exchange`` counts the raw thinking of a reasoning field itself (``thinking_text`` joins
  all of it on every call): the count stays ``len(monitor.thinking_text)``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.proxy.fakes import NO_ANSWER_TRACE, POLICY, STOP_TRACE
from tracestop.proxy import forcing, relay
from tracestop.proxy.config import ProxyConfig
from tracestop.proxy.request import build_exchange
from tracestop.proxy.upstream import Upstream
from tracestop.segment import split_thinking
from tracestop.tag.rules import RuleTagger

_TIMINGS = re.compile(rb'"(monitor_seconds|hold_seconds|answer_seconds)":[0-9.e-]+')


class _Stream:
    """A finished upstream response carrying ``events`` (SSE bytes), in reads of 1-3 events."""

    status_code = 200
    headers = httpx.Headers({"content-type": "text/event-stream"})

    def __init__(self, events: list[bytes], rng: random.Random) -> None:
        self.reads: list[bytes] = []
        i = 0
        while i < len(events):
            n = rng.randint(1, 3)
            self.reads.append(b"".join(events[i : i + n]))
            i += n

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        for r in self.reads:
            yield r

    aiter_bytes = aiter_raw

    async def aread(self) -> bytes:
        return b"".join(self.reads)

    async def aclose(self) -> None:
        return None


def _trace(rng: random.Random, base: str) -> str:
    """``base`` with its blank lines varied: extra spaces, a third line break, a lone one."""
    think, answer = split_thinking(base)
    steps = think.split("\n\n")
    out = steps[0]
    for step in steps[1:]:
        out += rng.choice(["\n\n", "\n \n", "\n\n\n", " \n\n", "\n", "\n\t\n  "]) + step
    return out + "\n</think>\n\n" + (answer or "")


def _events(trace: str, fmt: str, rng: random.Random) -> list[bytes]:
    think, answer = split_thinking(trace)
    pieces: list[tuple[str, str]] = []
    text = trace if fmt == "inline" else think
    key = "content" if fmt == "inline" else fmt
    i = 0
    while i < len(text):
        n = rng.choice([1, 1, 2, 3, 5, 8, 13, 21])
        pieces.append((key, text[i : i + n]))
        i += n
    if fmt != "inline":
        pieces.append(("content", answer or ""))
    out = []
    for k, piece in pieces:
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "r1",
                 "choices": [{"index": 0, "delta": {k: piece}, "finish_reason": None}]}
        out.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    final = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "r1",
             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    out += [b"data: " + json.dumps(final).encode() + b"\n\n", b"data: [DONE]\n\n"]
    return out


async def _relay(events: list[bytes], fmt: str, policy: str, seed: int) -> bytes:
    body = {"model": "r1", "stream": True, "messages": [{"role": "user", "content": "q"}],
            "tracestop": {"policy": policy}}
    ex = build_exchange("chat", body, [], default_policy=policy, model_family="deepseek-r1",
                        tagger=RuleTagger())
    upstream = Upstream(ProxyConfig("http://127.0.0.1:9", policy))
    out = [part async for part in relay.stream_events(upstream, ex, _Stream(
        events, random.Random(seed)), 32)]
    return _TIMINGS.sub(b"", b"".join(out))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fmt", ["reasoning_content", "inline"])
@pytest.mark.parametrize("policy", ["none", POLICY, "default"])
def test_fast_path_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch, seed: int, fmt: str,
                                        policy: str) -> None:
    async def answer(upstream: Upstream, ex: Any, answer_tokens: int) -> str:
        ex.answer_source = "model"
        return ex.cue + " \\boxed{7}"

    monkeypatch.setattr(forcing, "answer", answer)
    rng = random.Random(seed)
    trace = _trace(rng, STOP_TRACE if seed % 2 == 0 else NO_ANSWER_TRACE)
    events = _events(trace, fmt, rng)
    fast = asyncio.run(_relay(events, fmt, policy, seed))
    monkeypatch.setattr(relay, "_FAST_PATH", False)
    slow = asyncio.run(_relay(events, fmt, policy, seed))
    assert fast == slow
    assert fast.endswith(b"data: [DONE]\n\n") and b'"error"' not in fast


@pytest.mark.parametrize("policy", ["none", POLICY])
def test_reasoning_length_kept_by_the_exchange(policy: str) -> None:
    body = {"model": "r1", "stream": True, "messages": [{"role": "user", "content": "q"}],
            "tracestop": {"policy": policy}}
    ex = build_exchange("chat", body, [], default_policy=policy, model_family="deepseek-r1",
                        tagger=RuleTagger())
    think, answer = split_thinking(STOP_TRACE)
    deltas = [("content", "")] + [("reasoning_content", think[i : i + 9])
                                  for i in range(0, len(think), 9)]
    deltas += [("content", answer or "x"), ("reasoning_content", "after the answer")]
    total = 0
    for key, text in deltas:
        total += ex.feed({"choices": [{"index": 0, "delta": {key: text}}]})
        assert ex.raw_thinking_len == len(ex.monitor.thinking_text) == total

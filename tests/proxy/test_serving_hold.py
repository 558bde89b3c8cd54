"""The streaming hold-back, driven in process: text after the end of the step being written
waits for the Monitor's decision on that step; the step itself streams at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tracestop.proxy import relay
from tracestop.proxy.request import build_exchange
from tracestop.proxy.upstream import Event
from tracestop.tag.rules import RuleTagger


class _Resp:
    async def aclose(self) -> None:
        pass


class _Upstream:
    """Yields the events one by one; ``fed`` says how many the relay has pulled."""

    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas
        self.fed = 0

    async def events(self, resp: Any) -> Any:
        for d in self.deltas:
            self.fed += 1
            chunk = {"id": "x", "model": "qwen3", "created": 1,
                     "choices": [{"index": 0, "delta": {"reasoning_content": d},
                                  "finish_reason": None}]}
            data = json.dumps(chunk)
            yield Event(data, "message", "", f"data: {data}\n\n".encode())


def _drive(deltas: list[str], policy: str) -> list[tuple[int, str]]:
    """(events pulled from the upstream, reasoning text) for every chunk the client gets."""
    ex = build_exchange("chat", {"model": "qwen3", "stream": True,
                                 "messages": [{"role": "user", "content": "What is 2 + 3?"}],
                                 "tracestop": {"policy": policy}},
                        [], default_policy="none", model_family=None, tagger=RuleTagger())
    up = _Upstream(deltas)

    async def run() -> list[tuple[int, str]]:
        out = []
        async for c in relay.drive(up, ex, _Resp(), 16):  # type: ignore[arg-type]
            d = (c.get("choices") or [{}])[0].get("delta") or {}
            out.append((up.fed, d.get("reasoning_content") or ""))
        return out

    return asyncio.run(run())


def test_a_long_step_streams_before_it_ends() -> None:
    """Text of the step being written is relayed at once: one long paragraph with no step
    boundary is not held back until its end."""
    words = [f"word{i} " for i in range(300)]
    got = _drive(words, "none")
    first = next(fed for fed, text in got if text)
    assert first == 1
    assert "".join(t for _f, t in got) == "".join(words)


def test_the_next_step_waits_for_the_decision() -> None:
    """What follows a step boundary waits until the step before it is decided, then goes."""
    step = "Checking the sum again: two plus three gives five, clearly."
    deltas = [step, "\n\n", "Checking", " the sum", " once more: five.", "\n\n", "Done."]
    got = _drive(deltas, "none")
    # "Checking" (after the first boundary) is not relayed when it arrives (event 3): the
    # first step is final only once the next fragment has min_chars characters (event 5)
    when = {text: fed for fed, text in got if text}
    assert when[step] == 1
    assert when["Checking"] >= 5
    assert "".join(t for _f, t in got) == "".join(deltas)

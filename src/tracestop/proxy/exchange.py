"""One handled request: its options, its Monitor, and what the upstream stream showed.

``Exchange.feed`` gives choice 0 of each upstream chunk to the Monitor (the thinking from a
reasoning field, or inline before the end marker); ``report`` is the response's ``tracestop``
object.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tracestop.monitor import Monitor
from tracestop.proxy.schema import TracestopOptions
from tracestop.templates import OPEN_MARKERS

__all__ = ["REASONING_FIELDS", "AnswerSource", "Exchange", "Kind"]

#: reasoning fields, in the order they are read (one per delta: vLLM may send two aliases)
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")

Kind = Literal["chat", "completions"]
AnswerSource = Literal["model", "best_candidate", "none"]


@dataclass
class Exchange:
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
    answer_tokens: int | None = None  # the answer request's usage.completion_tokens
    answer_prompt_tokens: int | None = None  # … and its usage.prompt_tokens
    forced_answer: str | None = None  # the answer parsed from the forced text
    default_family: str | None = None  # --model-family
    default_path: str = "completions"  # the --engine's answer path
    upstream_usage: dict[str, Any] | None = None  # a usage object the thinking stream sent
    upstream_status: int | None = None
    sent_thinking: int = 0  # raw thinking characters relayed to the client so far
    started: float = field(default_factory=time.monotonic)
    monitor_seconds: float = 0.0  # time spent feeding the Monitor
    hold_seconds: float = 0.0  # the longest a chunk waited for its step to be decided
    answer_seconds: float = 0.0  # the answer request after a stop
    on_done: Callable[[Exchange, str, str | None], None] | None = None  # (ex, outcome, error)
    _done: bool = False

    def done(self, outcome: str, error: str | None = None) -> None:
        """Report the request once (log line, metrics): ``completed``, ``stopped``, ``error``."""
        if not self._done and self.on_done is not None:
            self._done = True
            self.on_done(self, outcome, error)
    _inline_len: int = 0  # inline characters fed before the end marker
    _reasoning_len: int = 0  # len(monitor.thinking_text) once a reasoning field was seen
    _inline_thinking_at_close: int = 0  # raw thinking characters, once the marker was seen

    def remember(self, chunk: dict[str, Any]) -> None:
        if not self.id:
            self.id = str(chunk.get("id") or f"tracestop-{uuid.uuid4().hex[:24]}")
            self.model = str(chunk.get("model") or self.body.get("model") or "")
            created = chunk.get("created")
            self.created = created if isinstance(created, int) else int(time.time())

    def feed(self, chunk: dict[str, Any]) -> int:
        """Feed choice 0 of an upstream chunk to the Monitor; returns how many characters of
        raw thinking (a reasoning field's text, or inline text before the end marker) it
        carried."""
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.upstream_usage = usage
        before = self.raw_thinking_len
        self._feed(chunk)
        # the states-answer head reads each step as it completes (in this call, so off the
        # loop when the relay offloads a heavy chunk), not all at once in the final report
        self.monitor.read_states()
        return self.raw_thinking_len - before

    @property
    def raw_thinking_len(self) -> int:
        """Characters of raw thinking received: the reasoning field's text, or the inline
        output up to the end marker (with its opening marker)."""
        if self.reasoning_field is not None:
            return self._reasoning_len  # kept by _feed: thinking_text joins all the text
        if self.monitor.thinking_closed:
            return self._inline_thinking_at_close
        return self._inline_len

    def _feed(self, chunk: dict[str, Any]) -> None:
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
                    m = self.monitor
                    if self.reasoning_field is None:
                        self.reasoning_field = name
                        self._reasoning_len = len(m.thinking_text)
                    if not (m.stopped or m.thinking_closed):  # else feed_thinking ignores it
                        self._reasoning_len += len(value)
                    m.feed_thinking(value)
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
        closed = self.monitor.thinking_closed
        self.monitor.feed(text)
        if not closed:
            self._inline_len += len(text)
            if self.monitor.thinking_closed:
                # the raw thinking ends where the Monitor's thinking text does
                self._inline_thinking_at_close = len(self.open_prefix) + len(
                    self.monitor.thinking_text)

    @property
    def kept_raw(self) -> str:
        """The raw thinking the client gets after a stop: the opening marker, if the output
        began with one, and the thinking up to the end of the stop step."""
        return self.open_prefix + self.monitor.truncated_thinking

    def usage(self) -> dict[str, int] | None:
        """``usage`` after a stop, as if one generation had written the response.

        * ``completion_tokens``: the thinking the server generated before it was aborted, by
          the Monitor's token counter (the server never reports it: the stream was closed),
          plus the answer request's ``completion_tokens``;
        * ``prompt_tokens``: the thinking request's own figure when the server sent one;
          else the answer request's ``prompt_tokens`` less the kept thinking and the cue, by
          the same counter (exact when the counter is the model's tokenizer).

        ``None`` when the answer request reported no usage.
        """
        if self.answer_tokens is None:
            return None
        m = self.monitor
        thinking = m.count_tokens(self.raw_thinking)
        prompt = (self.upstream_usage or {}).get("prompt_tokens")
        if not isinstance(prompt, int):
            if self.answer_prompt_tokens is None:
                return None
            prompt = max(0, self.answer_prompt_tokens
                         - m.count_tokens(self.kept_raw + m.forcing_suffix))
        completion = thinking + self.answer_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    @property
    def raw_thinking(self) -> str:
        """All raw thinking received (with the opening marker when it was inline)."""
        return self.open_prefix + self.monitor.thinking_text

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
        if self.monitor.stopped:
            prompt = (self.upstream_usage or {}).get("prompt_tokens")
            out["usage_prompt_tokens_from"] = (
                "server" if isinstance(prompt, int) else "answer request less counted")
            out["candidate"] = out["answer"]  # the Monitor's candidate at the stop
            if self.forced_answer is not None:
                out["answer"] = self.forced_answer
        out["thinking_tokens_received"] = self.monitor.count_tokens(self.monitor.thinking_text)
        if self.monitor.observe:
            out["thinking_tokens_after_would_stop"] = self._after_would_stop()
        out["answer_source"] = self.answer_source
        out["thinking_field"] = self.reasoning_field or "inline"
        if self.answer_error:
            out["answer_error"] = self.answer_error
        return out

    def _after_would_stop(self) -> int | None:
        """Observe mode: thinking tokens received after the would-stop step (what a stop there
        would have saved, by the Monitor's counter)."""
        m = self.monitor
        d = m.decision
        if d is not None and d.step is not None and m.records:
            return m.records[-1].tokens_cum - m.records[d.step].tokens_cum
        return None

"""One handled request: its options, its Monitor, and what the upstream stream showed.

``Exchange.feed`` gives choice 0 of each upstream chunk to the Monitor (the thinking from a
reasoning field, or inline before the end marker); ``report`` is the response's ``tracestop``
object.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
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
    answer_tokens: int | None = None

    def remember(self, chunk: dict[str, Any]) -> None:
        if not self.id:
            self.id = str(chunk.get("id") or f"tracestop-{uuid.uuid4().hex[:24]}")
            self.model = str(chunk.get("model") or self.body.get("model") or "")
            created = chunk.get("created")
            self.created = created if isinstance(created, int) else int(time.time())

    def feed(self, chunk: dict[str, Any]) -> None:
        """Feed choice 0 of an upstream chunk to the Monitor."""
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
                    self.reasoning_field = self.reasoning_field or name
                    self.monitor.feed_thinking(value)
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
        self.monitor.feed(text)

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
        out["thinking_tokens_saved_estimate"] = self._saved()
        out["answer_source"] = self.answer_source
        out["thinking_field"] = self.reasoning_field or "inline"
        if self.answer_error:
            out["answer_error"] = self.answer_error
        return out

    def _saved(self) -> int | None:
        """Thinking tokens saved, estimated (see docs/serving.md).

        Stopped: the generation budget the request allowed (``max_tokens`` or
        ``max_completion_tokens``) minus what was generated (all thinking received, by the
        Monitor's counter, plus the answer), an upper bound; ``None`` when the request set
        no budget. Observe mode: the thinking received after the would-stop step, exact up
        to the counter. Not stopped: 0.
        """
        m = self.monitor
        if m.stopped:
            budget = self.body.get("max_tokens") or self.body.get("max_completion_tokens")
            if not isinstance(budget, int):
                return None
            used = m.count_tokens(m.thinking_text)
            answer = self.answer_tokens if self.answer_tokens is not None else (
                m.count_tokens(self.spliced))
            return max(0, budget - used - answer)
        d = m.decision
        if m.observe and d is not None and d.step is not None and m.records:
            return m.records[-1].tokens_cum - m.records[d.step].tokens_cum
        return 0

"""Incremental, linear-time segmentation of a model's output into thinking steps.

Two small state machines:

- ``ThinkingSplitter`` separates the thinking part from the answer part of raw output
  (``<think> … </think> answer`` or Gemma's ``<|channel>thought … <channel|>answer``);
  markers may be split across deltas.
- ``Segmenter`` cuts the thinking text into steps at blank lines (a line break, any
  whitespace, a line break). A fragment shorter than ``min_chars`` characters (stripped of
  surrounding whitespace) is appended to the previous step, joined by a blank line. A step is
  emitted as soon as it is final: when the fragment after it has reached ``min_chars``
  characters, or at ``end()``. So the same steps come out whatever the chunking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracestop._types import Step
from tracestop.errors import ConfigError, StateError
from tracestop.templates import CLOSE_MARKERS, OPEN_MARKERS, thinking_start

__all__ = ["Segmenter", "SegmenterConfig", "ThinkingSplitter", "segment", "split_thinking"]

_BOUNDARY = re.compile(r"\n\s*\n")
_NON_SPACE = re.compile(r"\S")
_TRAILING_BOUNDARY = re.compile(r"\n\s*\n\s*\Z")


@dataclass(frozen=True, slots=True)
class SegmenterConfig:
    """``min_chars``: fragments shorter than this (stripped) merge into the previous step."""

    min_chars: int = 20

    def __post_init__(self) -> None:
        if self.min_chars < 0:
            raise ConfigError(f"min_chars must be >= 0, got {self.min_chars}")


@dataclass(slots=True)
class _Held:
    """A step's text and offsets while short fragments may still merge into it."""

    text: str
    start: int
    end: int


class Segmenter:
    """Cuts streamed thinking text into ``Step``s. ``feed(delta)`` and ``end()`` return new steps."""

    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        self.config = config
        self._tail = ""  # text after the last final boundary
        self._tail_start = 0  # offset of _tail in the whole text
        self._scan = 0  # where in _tail the next boundary search starts
        self._held: _Held | None = None  # the last step, not yet emitted
        self._held_released = False  # the fragment after _held is long enough: _held is final
        self._index = 0
        self._ended = False

    @property
    def length(self) -> int:
        """Characters of thinking text seen so far."""
        return self._tail_start + len(self._tail)

    def feed(self, delta: str) -> list[Step]:
        if self._ended:
            raise StateError("Segmenter.feed() after end(): create a new Segmenter per request")
        if not delta:
            return []
        out: list[Step] = []
        tail = self._tail + delta
        pos = self._scan
        start = 0  # where the current fragment starts in tail
        while True:
            m = _BOUNDARY.search(tail, pos)
            if m is None:
                # a boundary can only begin inside the trailing whitespace
                i = len(tail)
                while i > start and tail[i - 1].isspace():
                    i -= 1
                pos = i
                break
            # A boundary is final only once non-space text follows it.
            if _NON_SPACE.search(tail, m.end()) is None:
                pos = m.start()
                break
            self._fragment(tail[start : m.start()], self._tail_start + start, out)
            start = pos = m.end()
        if start:
            tail = tail[start:]
            self._tail_start += start
            pos -= start
        self._tail = tail
        self._scan = pos
        if self._held is not None and not self._held_released and self._long(tail):
            out.append(self._emit())
            self._held_released = True
        return out

    def end(self) -> list[Step]:
        """Flush: the rest of the text is the last fragment."""
        if self._ended:
            return []
        self._ended = True
        out: list[Step] = []
        # a blank line at the very end is a boundary with nothing after it
        m = _TRAILING_BOUNDARY.search(self._tail)
        rest = self._tail[: m.start()] if m else self._tail
        if rest.strip():
            self._fragment(rest, self._tail_start, out)
        if self._held is not None:
            out.append(self._emit())
        return out

    def _long(self, text: str) -> bool:
        n = self.config.min_chars
        head = text[:4096]
        return len(head.strip()) >= n or (len(text) > 4096 and len(text.strip()) >= n)

    def _fragment(self, text: str, start: int, out: list[Step]) -> None:
        end = start + len(text)
        held = self._held
        if held is not None and not self._held_released and not self._long(text):
            held.text = f"{held.text}\n\n{text}"
            held.end = end
            return
        if held is not None and not self._held_released:
            out.append(self._emit())
        if not text.strip() and held is None and self._index == 0:
            return  # leading whitespace-only fragment: nothing to merge into
        self._held = _Held(text, start, end)
        self._held_released = False

    def _emit(self) -> Step:
        assert self._held is not None
        h = self._held
        step = Step(self._index, h.text, h.start, h.end)
        self._index += 1
        self._held = None
        return step


class ThinkingSplitter:
    """Splits raw streamed output into its thinking part and its answer part.

    A leading open marker (``<think>``, ``<|channel>thought``) is dropped; the first close
    marker (``</think>``, ``<channel|>``) ends the thinking. Output with no close marker is
    all thinking. Text that could be the start of a marker is held back until it is known.
    """

    def __init__(
        self,
        open_markers: tuple[str, ...] = OPEN_MARKERS,
        close_markers: tuple[str, ...] = CLOSE_MARKERS,
    ) -> None:
        self._open = open_markers
        self._close = close_markers
        self._hold = max(len(m) for m in close_markers) - 1
        self._marker_chars = frozenset("".join(close_markers))
        self._buf = ""
        self._started = False
        self.closed = False
        self.close_marker: str | None = None

    def feed(self, delta: str) -> tuple[str, str]:
        """Returns ``(thinking, answer)`` text released by this delta."""
        if self.closed:
            return "", delta
        buf = self._buf + delta
        if not self._started:
            stripped = buf.lstrip()
            if any(m.startswith(stripped) for m in self._open) and len(stripped) < max(
                len(m) for m in self._open
            ):
                self._buf = buf
                return "", ""
            buf = buf[thinking_start(buf, self._open) :]
            self._started = True
        # buf is the held-back partial marker (short) plus this delta: O(len(delta))
        best = -1
        marker = ""
        for m in self._close:
            i = buf.find(m)
            if i >= 0 and (best < 0 or i < best):
                best, marker = i, m
        if best >= 0:
            self.closed = True
            self.close_marker = marker
            self._buf = ""
            return buf[:best], buf[best + len(marker) :]
        keep = self._partial_suffix(buf)
        self._buf = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], ""

    def end(self) -> tuple[str, str]:
        """Flush held-back text at the end of the stream."""
        buf, self._buf = self._buf, ""
        if self.closed:
            return "", buf
        self._started = True
        return buf, ""

    def _partial_suffix(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of a close marker."""
        if not buf or buf[-1] not in self._marker_chars:
            return 0  # what a marker's prefix ends with: most deltas end otherwise
        best = 0
        for m in self._close:
            for k in range(min(len(m) - 1, len(buf)), 0, -1):
                if k > best and buf.endswith(m[:k]):
                    best = k
                    break
        return best


def split_thinking(text: str) -> tuple[str, str | None]:
    """Whole-text version of ``ThinkingSplitter``: ``(thinking, answer)``; answer is None
    when the thinking was never closed (for example cut off by a token limit)."""
    sp = ThinkingSplitter()
    think, answer = sp.feed(text)
    t2, a2 = sp.end()
    return think + t2, (answer + a2) if sp.closed else None


def segment(thinking: str, config: SegmenterConfig = SegmenterConfig()) -> list[Step]:
    """Whole-text segmentation of a thinking part."""
    seg = Segmenter(config)
    return seg.feed(thinking) + seg.end()

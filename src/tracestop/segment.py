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
    """A step's text (as pieces joined by blank lines) and offsets while short fragments may
    still merge into it."""

    parts: list[str]
    start: int
    end: int


class Segmenter:
    """Cuts streamed thinking text into ``Step``s. ``feed(delta)`` and ``end()`` return new steps.

    The text after the last final boundary (the tail) is kept as pieces: ``_done``, text no
    boundary can start in, and ``_live``, the trailing whitespace where one can (always
    whitespace only between calls). Each delta is searched once, with the whitespace before it,
    so a step of any length costs time linear in its length, however it is chunked."""

    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        self.config = config
        self._done: list[str] = []  # the tail before the scan position
        self._done_len = 0
        self._live: list[str] = []  # the tail from the scan position: whitespace only
        self._live_len = 0
        self._tail_start = 0  # offset of the tail in the whole text
        self._held: _Held | None = None  # the last step, not yet emitted
        self._held_released = False  # the fragment after _held is long enough: _held is final
        self._index = 0
        self._ended = False

    @property
    def length(self) -> int:
        """Characters of thinking text seen so far."""
        return self._tail_start + self._done_len + self._live_len

    def feed(self, delta: str) -> list[Step]:
        if self._ended:
            raise StateError("Segmenter.feed() after end(): create a new Segmenter per request")
        if not delta:
            return []
        if delta.isspace():
            # whitespace after whitespace: no boundary becomes final, the tail's stripped
            # length does not change, so nothing can be emitted
            self._live.append(delta)
            self._live_len += len(delta)
            return []
        parts = self._live
        prev = (parts[0] if len(parts) == 1 else "".join(parts)) if parts else ""
        live = prev + delta if prev else delta
        if "\n" not in delta:  # ``in``, not ``count``: a few times faster on a short delta
            no_boundary = "\n" not in prev or prev.count("\n") < 2
        else:
            no_boundary = delta.count("\n") + prev.count("\n") < 2
        if no_boundary:
            # no boundary (most deltas): the text up to its trailing whitespace joins
            # _done; only the held step's release can change
            body = live.rstrip()  # the same whitespace as ``\s`` and ``str.isspace``
            self._done.append(body)
            self._done_len += len(body)
            rest_len = len(live) - len(body)
            self._live = [live[len(body) :]] if rest_len else []
            self._live_len = rest_len
            # the tail holds all of delta, so its stripped length is at least delta's
            if self._held is not None and not self._held_released and (
                len(delta.strip()) >= self.config.min_chars or self._long_tail()
            ):
                self._held_released = True
                return [self._emit()]
            return []
        out: list[Step] = []
        pos = 0
        start = 0  # where the current fragment starts in live; before it: _done
        cut = False  # a fragment was cut: _done is consumed
        while True:
            m = _BOUNDARY.search(live, pos)
            if m is None:
                # a boundary can only begin inside the trailing whitespace
                pos = max(start, len(live.rstrip()))
                break
            # A boundary is final only once non-space text follows it.
            if _NON_SPACE.search(live, m.end()) is None:
                pos = m.start()
                break
            if cut:
                self._fragment(live[start : m.start()], self._tail_start + start, out)
            else:
                done = self._done
                done.append(live[: m.start()])
                self._fragment("".join(done), self._tail_start, out)  # one copy of the step
                self._tail_start += self._done_len
                self._done, self._done_len, cut = [], 0, True
            start = pos = m.end()
        if start:
            self._tail_start += start
        if pos > start:
            self._done.append(live[start:pos])
            self._done_len += pos - start
        rest = live[pos:]
        self._live, self._live_len = ([rest] if rest else []), len(rest)
        # after a cut the tail is live[start:], already one string
        if self._held is not None and not self._held_released and (
            self._long(live[start:]) if cut else self._long_tail()
        ):
            out.append(self._emit())
            self._held_released = True
        return out

    def _tail(self) -> str:
        return "".join(self._done) + "".join(self._live)

    def end(self) -> list[Step]:
        """Flush: the rest of the text is the last fragment."""
        if self._ended:
            return []
        self._ended = True
        out: list[Step] = []
        tail = self._tail()
        # a blank line at the very end is a boundary with nothing after it
        m = _TRAILING_BOUNDARY.search(tail)
        rest = tail[: m.start()] if m else tail
        if rest.strip():
            self._fragment(rest, self._tail_start, out)
        if self._held is not None:
            out.append(self._emit())
        return out

    def _long_tail(self) -> bool:
        """``_long`` of the tail, joining only its first 4096 characters where that decides."""
        head: list[str] = []
        n = 0
        for piece in (*self._done, *self._live):
            head.append(piece)
            n += len(piece)
            if n > 4096:
                break
        text = "".join(head)
        if len(text) <= 4096 or len(text[:4096].strip()) >= self.config.min_chars:
            return self._long(text)
        return self._long(self._tail())

    def _long(self, text: str) -> bool:
        n = self.config.min_chars
        head = text[:4096]
        return len(head.strip()) >= n or (len(text) > 4096 and len(text.strip()) >= n)

    def _fragment(self, text: str, start: int, out: list[Step]) -> None:
        end = start + len(text)
        held = self._held
        if held is not None and not self._held_released and not self._long(text):
            held.parts.append(text)
            held.end = end
            return
        if held is not None and not self._held_released:
            out.append(self._emit())
        if not text.strip() and held is None and self._index == 0:
            return  # leading whitespace-only fragment: nothing to merge into
        self._held = _Held([text], start, end)
        self._held_released = False

    def _emit(self) -> Step:
        assert self._held is not None
        h = self._held
        step = Step(self._index, "\n\n".join(h.parts), h.start, h.end)
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
        self._marker_firsts = frozenset(m[0] for m in close_markers if m)
        self._firsts = tuple(self._marker_firsts) if all(close_markers) else None
        self._buf = ""
        self._started = False
        self.closed = False
        self.close_marker: str | None = None

    def feed(self, delta: str) -> tuple[str, str]:
        """Returns ``(thinking, answer)`` text released by this delta."""
        if self.closed:
            return "", delta
        firsts = self._firsts  # None where an empty marker closes at once
        if firsts is not None and self._started and not self._buf:
            for c in firsts:
                if c in delta:
                    break
            else:
                return delta, ""  # no close marker can start in delta: most deltas
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
        end = buf[-self._hold :] if self._hold > 0 else ""
        for c in self._marker_firsts:
            if c in end:
                break
        else:
            return 0  # no marker can start this close to the end: most deltas
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

"""Hostile text cannot make the Monitor slow (issue 18): answer extraction and segmentation do
bounded, linear work, whatever a model in a loop writes and however it is chunked.

Each Monitor call is timed against a generous limit (CI machines are slow and shared); the fast
paths are compared with slow reference implementations where there is one.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracestop.answers.extract import MAX_VALUE, _clean, extract_candidates
from tracestop.answers.scorer import _occurrences
from tracestop.monitor import Monitor
from tracestop.segment import Segmenter, segment

LIMIT_S = 2.0  # per Monitor call; the bar is < 1 s on a quiet machine

QUESTION = "What is 12-5?"


def _timed_monitor(text: str, chunk: int | None = None, question: str = QUESTION) -> float:
    """Feed ``text`` (in ``chunk``-character deltas, or whole), then end: the slowest call."""
    m = Monitor("default", question=question)
    worst = 0.0
    pieces = [text] if chunk is None else [text[i : i + chunk] for i in range(0, len(text), chunk)]
    for piece in pieces:
        t = time.perf_counter()
        m.feed(piece)
        worst = max(worst, time.perf_counter() - t)
    t = time.perf_counter()
    m.end()
    return max(worst, time.perf_counter() - t)


# --- the cases the issue names ---------------------------------------------------------------

DEGENERATE = {
    "4000 open boxes": "<think>" + "\\boxed{" * 4000 + "\n\nok</think>",
    "8000 nested boxes": "<think>" + "\\boxed{" * 8000 + "7" + "}" * 8000 + "\n\nok</think>",
    "2000 unclosed answer-is boxes": "<think>" + "So the answer is \\boxed{7 " * 2000 + "\n\nok</think>",
    "1 MB of digits": "<think>So the answer is " + "7" * 1_000_000 + "\n\nok</think>",
    "1 MB step, no blank line": "<think>" + ("So x is 12 and then 3 = 3. " * 40_000)[:1_000_000] + "</think>",
    "repeated closed boxes": "<think>" + "\\boxed{7} " * 50_000 + "\n\nok</think>",
    "1 MB of spaces": "<think>" + " " * 1_000_000 + "x</think>",
    "short fragments": "<think>" + "x\n\n" * 100_000 + "</think>",
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_text_is_fast_whole(name: str) -> None:
    assert _timed_monitor(DEGENERATE[name]) < LIMIT_S


@pytest.mark.parametrize("name", ["1 MB step, no blank line", "4000 open boxes", "1 MB of spaces"])
def test_degenerate_text_is_fast_in_deltas(name: str) -> None:
    assert _timed_monitor(DEGENERATE[name], chunk=40) < LIMIT_S


def test_unclosed_boxes_are_not_answers_but_closed_ones_still_are() -> None:
    m = Monitor("none", question=QUESTION)
    m.feed("<think>" + "\\boxed{" * 4000 + "\n\nSo the answer is \\boxed{7}.\n\nok</think>")
    m.end()
    assert m.answer.current == "7"


def test_a_value_too_long_is_not_an_answer() -> None:
    assert extract_candidates("\\boxed{" + "1" * (MAX_VALUE + 1) + "}") == []
    assert extract_candidates("\\boxed{" + "1" * MAX_VALUE + "}") == [("1" * MAX_VALUE, "boxed")]


# --- adversarial generators ------------------------------------------------------------------

_PIECES = st.sampled_from([
    "\\boxed{", "\\fbox{", "{", "}", "7", "12", "\\frac{1}{2}", "So the answer is ", "**Final Answer** ",
    "Therefore, x = ", "The answer is ", ". ", "\n", "\n\n", " ", "$", "=", "A", "(B) is correct",
    "1,000", "mod 7", "?",
])
_HOSTILE = st.lists(st.tuples(_PIECES, st.integers(1, 3000)), min_size=1, max_size=6).map(
    lambda parts: "".join(p * n for p, n in parts)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_HOSTILE, chunk=st.sampled_from([None, 1, 40, 997]), fmt=st.sampled_from(["math", "choice"]))
def test_hostile_text_keeps_each_call_fast(text: str, chunk: int | None, fmt: str) -> None:
    question = QUESTION if fmt == "math" else "Which? A. one B. two C. three D. four"
    if chunk == 1:
        text = text[:20_000]  # one character a call: bounded by the number of calls, not the work
    assert _timed_monitor("<think>" + text + "</think>", chunk, question) < LIMIT_S


# --- fast paths against slow references ------------------------------------------------------


def _reference_boxes(text: str) -> list[str]:
    """Boxed values the slow way: rescan from every ``\\boxed{`` to its closing brace."""
    out: list[str] = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth = 0
        for i in range(m.end() - 1, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    content = text[m.end() : i]
                    if content.strip() and len(content) <= MAX_VALUE:
                        out.append(_clean(content))
                    break
    return out


_BOX_TEXT = st.lists(st.sampled_from(["\\boxed{", "\\fbox {", "{", "}", "7", "x", " ", "."]), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_BOX_TEXT)
def test_boxed_values_match_the_slow_reference(text: str) -> None:
    got = extract_candidates(text)
    boxed = [v for v, k in got if k == "boxed"]
    ref = _reference_boxes(text)
    # adjacent boxes ("\\boxed{1}, \\boxed{2}") are one answer with parts: compare the parts
    assert [p for v in boxed for p in v.split(", ")] == [p for v in ref for p in v.split(", ")]


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.sampled_from("12.3,a٣ "), max_size=16), value=st.text(st.sampled_from("12.3"), min_size=1, max_size=3))
def test_occurrences_match_the_regex(text: str, value: str) -> None:
    pattern = r"(?<![\d.])" + re.escape(value) + r"(?![\d])"
    assert list(_occurrences(text, value)) == [m.start() for m in re.finditer(pattern, text)]


_SEG_TEXT = st.lists(st.sampled_from(["a", "word ", " ", "\n", "\t", "\n\n", " \n \n", "x" * 25]), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_SEG_TEXT, cuts=st.lists(st.integers(0, 400), max_size=8), min_chars=st.sampled_from([0, 3, 20]))
def test_segmenter_chunking_does_not_change_steps(text: str, cuts: list[int], min_chars: int) -> None:
    from tracestop.segment import SegmenterConfig

    cfg = SegmenterConfig(min_chars)
    seg = Segmenter(cfg)
    got = []
    prev = 0
    for c in [*sorted(min(c, len(text)) for c in cuts), len(text)]:
        got += seg.feed(text[prev:c])
        prev = c
    got += seg.end()
    assert got == segment(text, cfg)
    for s in got:  # offsets point at the text (short fragments join with a blank line)
        assert text[s.start : s.end].split() == s.text.split()


_RAW = st.lists(st.sampled_from(["<think>", "</think>", "<", "</", "</thi", "<channel|>", "<|channel>thought",
                                 "think", "k>", "a", " ", "\n\n", "answer"]), max_size=20).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_RAW, cuts=st.lists(st.integers(0, 200), max_size=8))
def test_splitter_chunking_does_not_change_the_split(text: str, cuts: list[int]) -> None:
    from tracestop.segment import ThinkingSplitter, split_thinking

    sp = ThinkingSplitter()
    think, answer = "", ""
    prev = 0
    for c in [*sorted(min(c, len(text)) for c in cuts), len(text)]:
        t, a = sp.feed(text[prev:c])
        think, answer, prev = think + t, answer + a, c
    t, a = sp.end()
    whole_think, whole_answer = split_thinking(text)
    assert (think + t, (answer + a) if sp.closed else None) == (whole_think, whole_answer)

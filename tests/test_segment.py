from __future__ import annotations

import json
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import chunk
from tracestop.errors import ConfigError
from tracestop.segment import Segmenter, SegmenterConfig, ThinkingSplitter, segment, split_thinking


def texts(steps):
    return [s.text for s in steps]


@pytest.mark.parametrize(
    "thinking,expected",
    [
        pytest.param("First paragraph is long enough.\n\nSecond paragraph is long too.",
                     ["First paragraph is long enough.", "Second paragraph is long too."], id="two-steps"),
        pytest.param("First paragraph is long enough.\n\nWait.\n\nSecond paragraph is long too.",
                     ["First paragraph is long enough.\n\nWait.", "Second paragraph is long too."],
                     id="short-merges-into-previous"),
        pytest.param("First paragraph is long enough.\n   \t\nSecond paragraph is long too.",
                     ["First paragraph is long enough.", "Second paragraph is long too."],
                     id="whitespace-only-line-is-a-boundary"),
        pytest.param("First paragraph is long enough.\n\n\n\n  Second paragraph is long too.",
                     ["First paragraph is long enough.", "  Second paragraph is long too."],
                     id="several-blank-lines-one-boundary"),
        pytest.param("Hm.\n\nSecond paragraph is long enough.", ["Hm.", "Second paragraph is long enough."],
                     id="short-first-fragment-stays"),
        pytest.param("Line one of a step\nline two of the same step", ["Line one of a step\nline two of the same step"],
                     id="single-newline-is-not-a-boundary"),
        pytest.param("A long enough final paragraph.\n\n", ["A long enough final paragraph."], id="trailing-blank"),
        pytest.param("A long enough final paragraph.\n", ["A long enough final paragraph.\n"], id="trailing-newline-kept"),
        pytest.param("", [], id="empty"),
    ],
)
def test_segment_cases(thinking, expected):
    assert texts(segment(thinking)) == expected


def test_offsets_point_into_the_text():
    t = "First paragraph is long enough.\n\nWait.\n\nSecond paragraph is long too."
    for s in segment(t):
        assert t[s.start : s.end].replace("\n\n", "") .startswith(s.text.split("\n\n")[0])
    steps = segment(t)
    assert t[: steps[0].end].endswith("Wait.")


def test_min_chars_validated():
    with pytest.raises(ConfigError, match="min_chars"):
        SegmenterConfig(min_chars=-1)


def test_feed_after_end_is_an_error():
    s = Segmenter()
    s.end()
    with pytest.raises(RuntimeError, match="new Segmenter"):
        s.feed("more")


@pytest.mark.parametrize(
    "raw,thinking,answer",
    [
        pytest.param("<think>\nabc</think>ans", "\nabc", "ans", id="r1-with-open"),
        pytest.param("abc\n</think>\n\nans", "abc\n", "\n\nans", id="r1-open-in-prompt"),
        pytest.param("<|channel>thought\nxyz<channel|>B", "\nxyz", "B", id="gemma"),
        pytest.param("no marker at all", "no marker at all", None, id="never-closed"),
        pytest.param("  <think>a</think>b", "a", "b", id="leading-space-before-open"),
    ],
)
def test_split_thinking(raw, thinking, answer):
    assert split_thinking(raw) == (thinking, answer)


@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=40))
def test_splitter_markers_split_across_deltas(cuts):
    raw = "<think>\nreasoning here\n\nmore reasoning</think>the answer"
    parts, i = [], 0
    for c in cuts:
        parts.append(raw[i : i + c])
        i += c
    parts.append(raw[i:])
    sp = ThinkingSplitter()
    think = answer = ""
    for p in parts:
        t, a = sp.feed(p)
        think += t
        answer += a
    t, a = sp.end()
    think += t
    answer += a
    assert (think, answer) == split_thinking(raw)


def _stream_steps(text: str, parts: list[str]):
    seg = Segmenter()
    steps = []
    for p in parts:
        steps += seg.feed(p)
    return steps + seg.end()


def test_labels_are_reproduced(data_root):
    """The shared labels were cut with the canonical rule: every labelled step comes out."""
    labels = [json.loads(line) for line in (data_root / "labels" / "reasontype-dev.jsonl").read_text().splitlines()]
    traces = {}
    for path in (data_root / "traces").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            traces[r["id"]] = r["trace"]
    cache = {}
    for lab in labels:
        tid = lab["trace_id"]
        if tid not in cache:
            cache[tid] = texts(segment(split_thinking(traces[tid])[0]))
        assert cache[tid][lab["index"]] == lab["text"], (tid, lab["index"])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), max_len=st.sampled_from([1, 3, 17, 64, 500]))
def test_random_chunkings_give_the_same_steps(sample_traces, seed, max_len):
    rng = random.Random(seed)
    for rec in rng.sample(sample_traces, 6):
        thinking, _ = split_thinking(rec["trace"])
        whole = segment(thinking)
        assert _stream_steps(thinking, chunk(thinking, rng, max_len)) == whole


def test_long_fragment_fed_char_by_char_is_one_step():
    text = "x" * 20000 + "\n\n" + "y" * 30
    steps = _stream_steps(text, list(text))
    assert [len(s.text) for s in steps] == [20000, 30]


def _reference_steps(text: str, min_chars: int) -> list[tuple[str, int, int]]:
    """The documented rule, non-incrementally and slowly: cut at every blank line that has
    non-space text after it, drop a blank line at the very end, merge each fragment shorter
    than ``min_chars`` (stripped) into the step before it, drop a leading blank fragment."""
    frags, pos = [], 0
    for m in re.finditer(r"\n\s*\n", text):
        if not text[m.end() :].strip():
            break
        frags.append((text[pos : m.start()], pos))
        pos = m.end()
    rest = text[pos:]
    trailing = re.search(r"\n\s*\n\s*\Z", rest)
    rest = rest[: trailing.start()] if trailing else rest
    if rest.strip():
        frags.append((rest, pos))
    steps: list[list] = []  # [parts, start, end]
    for t, s in frags:
        if steps and len(t.strip()) < min_chars:
            steps[-1][0].append(t)
            steps[-1][2] = s + len(t)
        elif steps or t.strip():
            steps.append([[t], s, s + len(t)])
    return [("\n\n".join(p), s, e) for p, s, e in steps]


# line breaks, Unicode whitespace that ``\s`` and ``str.isspace`` both count (NBSP, U+001C),
# and line separators that are not ``\n`` (no boundary)
_PIECES = ["a", "bc", "word ", "x" * 23, " ", "\t", "\n", "\n", "\n\n", "\r\n", "\u00a0", "\x1c",
           "\u2028", "\x85", "<", "</think>"]


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=40), seed=st.integers(0, 10**6),
       min_chars=st.sampled_from([0, 1, 5, 20]), max_len=st.sampled_from([1, 2, 5, 40, 1000]))
def test_streamed_steps_follow_the_rule_whatever_the_chunking(pieces, seed, min_chars, max_len):
    """Deltas with fewer than two line breaks take a shortcut in ``Segmenter.feed``; steps,
    offsets and ``length`` stay those of the rule for any chunking and whitespace."""
    text = "".join(pieces)
    seg = Segmenter(SegmenterConfig(min_chars))
    steps, seen = [], 0
    for part in chunk(text, random.Random(seed), max_len):
        steps += seg.feed(part)
        seen += len(part)
        assert seg.length == seen
    steps += seg.end()
    assert [(s.text, s.start, s.end) for s in steps] == _reference_steps(text, min_chars)
    assert [s.index for s in steps] == list(range(len(steps)))


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.sampled_from(["<think>", "</think>", "<channel|>", "<", "</", "</th", "x", " ",
                                        "\n\n", "<|channel>thought"]), max_size=20),
       seed=st.integers(0, 10**6), max_len=st.sampled_from([1, 3, 8, 100]))
def test_splitter_any_chunking_matches_whole_text(pieces, seed, max_len):
    """Deltas with no character a close marker starts with skip the marker search: the split
    is still that of the whole text."""
    raw = "".join(pieces)
    sp = ThinkingSplitter()
    think = answer = ""
    for part in chunk(raw, random.Random(seed), max_len):
        t, a = sp.feed(part)
        think += t
        answer += a
    t, a = sp.end()
    want_think, want_answer = split_thinking(raw)
    assert (think + t, (answer + a) if sp.closed else None) == (want_think, want_answer)

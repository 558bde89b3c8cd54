from __future__ import annotations

import json
import random

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

"""Per-step tagging latency of the default tagger against the rule tagger, on one core.

    python bench/bench_tagger.py [--data ../shared/data] [--limit N]

Segments every trace of ``data/traces`` (thinking part: text before ``</think>`` or
``<channel|>``, leading ``<think>`` / ``<|channel>thought`` removed; split at blank lines,
fragments under 20 non-space characters merged into the previous step), then times
``tag()`` per step for both taggers in the same run (process pinned to one CPU where the OS
allows) and prints p50/p90/mean in microseconds and the ratio default/rules.
``--evidence`` also times ``tag(...).evidence`` (the linear tagger formats its evidence on
first read; the Monitor never reads it).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from tracestop._types import StepType
from tracestop.tag import DEFAULT_TAGGER, TagContext, get_tagger

ROOT = Path(__file__).resolve().parents[1]
_BLANK = re.compile(r"\n[ \t]*\n")
_END = re.compile(r"</think>|<channel\|>")
_START = re.compile(r"^\s*(?:<think>|<\|channel>thought)")


def steps_of(trace: str) -> list[str]:
    m = _END.search(trace)
    thinking = trace[: m.start()] if m else trace
    thinking = _START.sub("", thinking, count=1)
    out: list[str] = []
    for part in _BLANK.split(thinking):
        if len(re.sub(r"\s", "", part)) < 20 and out:
            out[-1] += "\n\n" + part
        elif part.strip():
            out.append(part)
    return out


def load_steps(traces_dir: Path, limit: int | None) -> list[tuple[str, str, int]]:
    """(question, step text, index) for every step of every trace."""
    items: list[tuple[str, str, int]] = []
    for f in sorted(traces_dir.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            q = str(r.get("question") or "")
            items += [(q, s, i) for i, s in enumerate(steps_of(str(r["trace"])))]
            if limit and len(items) >= limit:
                return items[:limit]
    return items


def time_tagger(name: str, items: list[tuple[str, str, int]],
                evidence: bool = False) -> np.ndarray:
    tagger = get_tagger(name)
    tagger.tag("warm up", TagContext())
    out = np.empty(len(items), dtype=np.float64)
    prev: StepType | None = None
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for k, (q, text, i) in enumerate(items):
            ctx = TagContext(index=i, previous=prev if i else None, question=q)
            t0 = clock()
            tag = tagger.tag(text, ctx)
            if evidence:
                tag.evidence  # noqa: B018 - formatted on first read
            out[k] = clock() - t0
            prev = tag.type
    finally:
        gc.enable()
    return out / 1000.0


def time_states(items: list[tuple[str, str, int]]) -> np.ndarray:
    """Per-step time of ``StatesHead.read`` (math format, the question's facts, the previous
    step's text; the reader's fields empty: their features cost the same either way). The
    step's ``value_sentences`` is computed before the clock starts: in the Monitor the answer
    reader has just memoised it (math, ``candidates="scored"``, the default)."""
    from tracestop.answers.extract import value_sentences
    from tracestop.answers.question import QuestionFacts
    from tracestop.tag.states import StatesHead, states_context

    head = StatesHead()
    head.read("warm up", states_context(0, "math", False, "", None, QuestionFacts(), ""))
    out = np.empty(len(items), dtype=np.float64)
    facts: dict[str, QuestionFacts] = {}
    prev = ""
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for k, (q, text, i) in enumerate(items):
            f = facts.get(q)
            if f is None:
                f = facts[q] = QuestionFacts.read(q, "math")
            value_sentences(text)
            t0 = clock()
            head.read(text, states_context(i, "math", False, "", None, f, prev if i else ""))
            out[k] = clock() - t0
            prev = text
    finally:
        gc.enable()
    return out / 1000.0


def main(argv: list[str] | None = None) -> int:
    default_data = Path(os.environ.get("TRACESTOP_DATA", ROOT / ".." / "shared" / "data"))
    ap = argparse.ArgumentParser(description="tagger latency per step")
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("--limit", type=int, default=None, help="only the first N steps")
    ap.add_argument("--evidence", action="store_true",
                    help="also time tag() plus reading .evidence")
    ap.add_argument("--states", action="store_true",
                    help="also time the states-answer head (tracestop.tag.states)")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    items = load_steps(args.data / "traces", args.limit)
    print(f"{len(items)} steps from {args.data / 'traces'}; default tagger = {DEFAULT_TAGGER}")
    names = ["rules"] + ([DEFAULT_TAGGER] if DEFAULT_TAGGER != "rules" else [])
    names += [n for n in ("linear",) if n not in names]
    p50 = {}
    for name in names:
        us = time_tagger(name, items)
        p50[name] = float(np.percentile(us, 50))
        print(f"{name:>7}: p50 {p50[name]:7.1f} us  p90 {np.percentile(us, 90):7.1f} us  "
              f"mean {us.mean():7.1f} us  max {us.max():8.1f} us")
    if args.evidence:
        for name in names:
            us = time_tagger(name, items, evidence=True)
            print(f"{name + '+ev':>10}: p50 {np.percentile(us, 50):7.1f} us  "
                  f"p90 {np.percentile(us, 90):7.1f} us  mean {us.mean():7.1f} us")
    print(f"ratio p50 default({DEFAULT_TAGGER})/rules: {p50[DEFAULT_TAGGER] / p50['rules']:.2f}"
          f"  (linear/rules: {p50['linear'] / p50['rules']:.2f})")
    if args.states:
        us = time_states(items)
        print(f"{'states':>7}: p50 {np.percentile(us, 50):7.1f} us  p90 {np.percentile(us, 90):7.1f}"
              f" us  mean {us.mean():7.1f} us  (the states-answer head, StatesHead.read; "
              f"value_sentences memoised first, as the Monitor's reader has)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

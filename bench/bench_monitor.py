"""Monitor throughput on real reasoning text, against a baseline measured in the same run.

    python bench/bench_monitor.py [--data DIR] [--mb 1.0] [--delta 40] [--repeat 3] [--profile]

Takes about ``--mb`` MB of recorded traces (the dev split, a fixed shuffle of all benchmarks and models), feeds each one to
a fresh ``Monitor("none", question=...)`` in ``--delta``-character deltas, and prints MB/s. The
baseline is the same text, chunked the same way, through the ``ThinkingSplitter`` and the
``Segmenter`` alone (what the Monitor cannot avoid): the ratio says how much the tagger, the
answer reader and the policy cost on top of cutting steps. Times are CPU time of this process
(one core), so other work on a shared machine disturbs them less than wall time. ``--profile`` prints the top of a
cProfile of the Monitor pass. A second pass over the same traces, with Math-Verify's caches
full, shows the Monitor's own work apart from parsing new values with sympy; it and the
segmenter baseline take the fastest of ``--repeat`` passes (a shared machine's noise only
slows a pass down). The first pass cannot be repeated: its new values are what it measures.
Before it, ``tracestop.monitor.warm_up()`` loads the weights and Math-Verify, as ``tracestop
serve`` does at startup. A last line reads the states-answer head's verdicts after every
delta, as the proxy does.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from collections.abc import Callable

from tracestop.evaluate.data import data_dir, load_traces
from tracestop.monitor import Monitor, warm_up
from tracestop.segment import Segmenter, ThinkingSplitter


def pick(data: str | None, mb: float) -> list[tuple[str, str, str]]:
    """(question, benchmark, trace) for dev traces until about ``mb`` MB of text."""
    ts = load_traces(data_dir(data), split="dev")
    out: list[tuple[str, str, str]] = []
    total = 0
    order = sorted(ts.traces, key=lambda t: t.id)
    random.Random(0).shuffle(order)  # a fixed mix of benchmarks and models
    for t in order:
        if total >= mb * 1e6:
            break
        out.append((t.question, t.benchmark, t.trace))
        total += len(t.trace.encode("utf-8"))
    return out


def run_monitor(traces: list[tuple[str, str, str]], delta: int) -> None:
    for q, bench, text in traces:
        m = Monitor("none", question=q, benchmark=bench)
        for i in range(0, len(text), delta):
            m.feed(text[i : i + delta])
        m.end()


def run_monitor_states(traces: list[tuple[str, str, str]], delta: int) -> None:
    """``run_monitor`` with the states-answer head's verdicts read after every delta, as the
    proxy reads them (the head runs on each step as it completes)."""
    for q, bench, text in traces:
        m = Monitor("none", question=q, benchmark=bench)
        for i in range(0, len(text), delta):
            m.feed(text[i : i + delta])
            m.read_states()
        m.end()
        m.read_states()


def run_segmenter(traces: list[tuple[str, str, str]], delta: int) -> None:
    for _, _, text in traces:
        sp, seg = ThinkingSplitter(), Segmenter()
        for i in range(0, len(text), delta):
            think, _ = sp.feed(text[i : i + delta])
            if think:
                seg.feed(think)
        think, _ = sp.end()
        if think:
            seg.feed(think)
        seg.end()


def _timed(run: Callable[[list[tuple[str, str, str]], int], None],
           traces: list[tuple[str, str, str]], delta: int) -> float:
    t0 = time.process_time()
    run(traces, delta)
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--delta", type=int, default=40)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--repeat", type=int, default=3,
                    help="passes of the segmenter and of the cached Monitor; the fastest counts")
    args = ap.parse_args()

    traces = pick(args.data, args.mb)
    mb = sum(len(t.encode("utf-8")) for _, _, t in traces) / 1e6
    # warm up, as a long-running server is: tagger and scorer weights, Math-Verify's first call
    run_monitor(traces[:2], args.delta)
    warm_up()  # Math-Verify and sympy's first symbolic comparison, as `tracestop serve` does

    t_seg = min(_timed(run_segmenter, traces, args.delta) for _ in range(max(1, args.repeat)))

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    t0 = time.process_time()
    run_monitor(traces, args.delta)
    t_mon = time.process_time() - t0
    if args.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)

    # the same traces again: Math-Verify's caches now hold every value (its cost is per new
    # value, parsed with sympy), so this is the Monitor's own per-step work
    t_warm = min(_timed(run_monitor, traces, args.delta) for _ in range(max(1, args.repeat)))
    t_states = min(_timed(run_monitor_states, traces, args.delta)
                   for _ in range(max(1, args.repeat)))

    print(f"{len(traces)} traces, {mb:.2f} MB, {args.delta}-character deltas, policy none")
    print(f"segmenter alone:              {mb / t_seg:8.2f} MB/s ({t_seg:.2f} s)")
    print(f"Monitor:                      {mb / t_mon:8.2f} MB/s ({t_mon:.2f} s)")
    print(f"Monitor, Math-Verify cached:  {mb / t_warm:8.2f} MB/s ({t_warm:.2f} s)")
    print(f"  + states-answer head read:  {mb / t_states:8.2f} MB/s ({t_states:.2f} s, cached)")
    print(f"Monitor / segmenter time: {t_mon / t_seg:.1f}x (cached: {t_warm / t_seg:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

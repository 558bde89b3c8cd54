"""Segmentation is linear in the length of the thinking, however it is chunked.

    python bench/bench_segment.py [--repeat 3]

Feeds a real-looking thinking text of N, 2N, 4N and 8N characters one character at a time (the
worst chunking), in 40-character deltas (what a server streams; most hold no blank line) and as
one piece, and prints the time per character and the ratio to the smallest size: flat ratios
mean linear time. The baseline is the same text measured in the same run with `re.split` on
blank lines (what a non-incremental cutter costs). Times are CPU time of this process, the
fastest of ``--repeat`` runs (a shared machine's noise only slows a run down).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from tracestop.segment import Segmenter

PARA = ("Let me check that again: 12 - 5 = 7, and 7 + 5 = 12, so the answer holds.\n\n"
        "Wait.\n\n"
        "Next, the total is 3 * 7 = 21 apples, which matches what we found before.\n\n")


def feed(text: str, step: int) -> int:
    seg = Segmenter()
    n = 0
    for i in range(0, len(text), step):
        n += len(seg.feed(text[i : i + step]))
    return n + len(seg.end())


def _best(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        run()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    repeat = max(1, ap.parse_args().repeat)
    base_len = 20_000
    rows = []
    for mult in (1, 2, 4, 8):
        text = (PARA * (base_len * mult // len(PARA) + 1))[: base_len * mult]
        t_split = _best(lambda t=text: re.split(r"\n\s*\n", t), repeat)
        steps = feed(text, 1)
        t_char = _best(lambda t=text: feed(t, 1), repeat)
        t_40 = _best(lambda t=text: feed(t, 40), repeat)
        t_whole = _best(lambda t=text: feed(t, len(t)), repeat)
        rows.append((len(text), steps, t_char, t_40, t_whole, t_split))
    first = rows[0]
    print(f"{'chars':>8} {'steps':>6} {'1-char feed ns/char':>20} {'ratio':>6} {'40-char ns/char':>16} "
          f"{'ratio':>6} {'whole ns/char':>14} {'ratio':>6} {'re.split ns/char':>17}")
    for n, steps, tc, t4, tw, ts in rows:
        print(f"{n:8d} {steps:6d} {1e9 * tc / n:20.0f} {(tc / n) / (first[2] / first[0]):6.2f} "
              f"{1e9 * t4 / n:16.0f} {(t4 / n) / (first[3] / first[0]):6.2f} "
              f"{1e9 * tw / n:14.0f} {(tw / n) / (first[4] / first[0]):6.2f} {1e9 * ts / n:17.0f}")


if __name__ == "__main__":
    main()

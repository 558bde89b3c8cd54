"""Segmentation is linear in the length of the thinking, however it is chunked.

    python bench/bench_segment.py

Feeds a real-looking thinking text of N, 2N, 4N and 8N characters one character at a time (the
worst chunking) and as one piece, and prints the time per character and the ratio to the
smallest size: flat ratios mean linear time. The baseline is the same text measured in the same
run with `str.split` on blank lines (what a non-incremental cutter costs).
"""

from __future__ import annotations

import re
import time

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


def main() -> None:
    base_len = 20_000
    rows = []
    for mult in (1, 2, 4, 8):
        text = (PARA * (base_len * mult // len(PARA) + 1))[: base_len * mult]
        t0 = time.perf_counter()
        re.split(r"\n\s*\n", text)
        t_split = time.perf_counter() - t0
        t0 = time.perf_counter()
        steps = feed(text, 1)
        t_char = time.perf_counter() - t0
        t0 = time.perf_counter()
        feed(text, len(text))
        t_whole = time.perf_counter() - t0
        rows.append((len(text), steps, t_char, t_whole, t_split))
    first = rows[0]
    print(f"{'chars':>8} {'steps':>6} {'1-char feed ns/char':>20} {'ratio':>6} "
          f"{'whole ns/char':>14} {'ratio':>6} {'re.split ns/char':>17}")
    for n, steps, tc, tw, ts in rows:
        print(f"{n:8d} {steps:6d} {1e9 * tc / n:20.0f} {(tc / n) / (first[2] / first[0]):6.2f} "
              f"{1e9 * tw / n:14.0f} {(tw / n) / (first[3] / first[0]):6.2f} {1e9 * ts / n:17.0f}")


if __name__ == "__main__":
    main()

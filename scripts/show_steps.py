"""Print the steps of recorded traces, cut exactly as the labels are, for hand-labelling.

    python scripts/show_steps.py TRACE_ID [--first N | --last N] [--data DIR]

Each step is printed with its index. The labels in labels/*.jsonl refer to steps by
(trace_id, index) and never copy the text, which stays in the shared data.
"""

from __future__ import annotations

import argparse
import json

from tracestop.evaluate.data import data_dir
from tracestop.segment import segment, split_thinking


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trace_id")
    ap.add_argument("--first", type=int, default=None)
    ap.add_argument("--last", type=int, default=None)
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    for path in sorted((data_dir(a.data) / "traces").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            r = json.loads(line)
            if r["id"] != a.trace_id:
                continue
            steps = segment(split_thinking(r["trace"])[0])
            lo, hi = 0, len(steps)
            if a.first:
                hi = min(hi, a.first)
            if a.last:
                lo = max(0, hi - a.last)
            print(f"# {r['id']}  benchmark={r['benchmark']}  gold={r['gold']}  steps={len(steps)}")
            print(f"# QUESTION: {r['question']}\n")
            for s in steps[lo:hi]:
                print(f"----- step {s.index} -----\n{s.text}\n")
            return
    raise SystemExit(f"no trace {a.trace_id!r}")


if __name__ == "__main__":
    main()

"""How long `tracestop eval --split all` takes on this machine, against a baseline measured in
the same run: the cost of just reading and segmenting every trace.

    python bench/bench_eval.py [--data DIR] [--workers N] [--json]

Prints wall time for (a) the baseline: load + split + segment every trace, and (b) the full
eval (default preset, plus none and oracle), with the ratio b/a and traces per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tracestop.cli.evaluate import run_eval
from tracestop.evaluate.data import data_dir, load_traces
from tracestop.segment import segment, split_thinking


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--policy", action="append", default=[])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ts = load_traces(data_dir(args.data))
    steps = 0
    for t in ts.traces:
        thinking, _ = split_thinking(t.trace)
        steps += len(segment(thinking))
    base = time.perf_counter() - t0

    t0 = time.perf_counter()
    doc, _ = run_eval(args.data, "all", tuple(args.policy), (), (), workers=args.workers,
                            show_progress=False)
    full = time.perf_counter() - t0
    out = {
        "traces": len(ts.traces),
        "steps": steps,
        "baseline_load_and_segment_s": round(base, 2),
        "eval_split_all_s": round(full, 2),
        "ratio": round(full / base, 1),
        "traces_per_s": round(len(ts.traces) / full, 1),
        "policies": list(doc["policies"]),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:30s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

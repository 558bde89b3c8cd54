"""Dump what the Monitor says about every step of N dev traces, for comparing two revisions.

    PYTHONPATH=/path/to/base/src python scripts/monitor_steps_dump.py 200 /tmp/base.jsonl
    PYTHONPATH=src               python scripts/monitor_steps_dump.py 200 /tmp/new.jsonl
    cmp /tmp/base.jsonl /tmp/new.jsonl

Each trace (a fixed shuffle of the dev split) is fed to ``Monitor("none", ...)`` in
40-character deltas; one JSON line per trace holds every step's tag (type, role, the
confidence's repr, the evidence) and ``report()``. A refactor of the tagger or the Monitor
that claims the same behaviour must leave the files byte-identical.
"""

from __future__ import annotations

import argparse
import json
import random

from tracestop.evaluate.data import data_dir, load_traces
from tracestop.monitor import Monitor


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("n", type=int, help="traces to feed")
    ap.add_argument("out", help="JSONL file to write")
    ap.add_argument("--data", default=None)
    ap.add_argument("--delta", type=int, default=40)
    args = ap.parse_args(argv)
    ts = load_traces(data_dir(args.data), split="dev")
    order = sorted(ts.traces, key=lambda t: t.id)
    random.Random(1).shuffle(order)
    with open(args.out, "w", encoding="utf-8") as out:
        for t in order[: args.n]:
            m = Monitor("none", question=t.question, benchmark=t.benchmark)
            for i in range(0, len(t.trace), args.delta):
                m.feed(t.trace[i : i + args.delta])
            m.end()
            steps = [(s.tag.type.value, s.tag.role.value, repr(s.tag.confidence), s.tag.evidence)
                     for s in m.steps]
            out.write(json.dumps({"id": t.id, "steps": steps, "report": m.report()},
                                 sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dump every states-answer verdict and logit, for comparing two revisions of the head.

    PYTHONPATH=/path/to/base/src python scripts/states_dump.py 300 /tmp/base.jsonl
    PYTHONPATH=src               python scripts/states_dump.py 300 /tmp/new.jsonl
    cmp /tmp/base.jsonl /tmp/new.jsonl

Each of N dev traces (a fixed shuffle of the dev split, as ``monitor_steps_dump.py``) is fed to
``Monitor("none", ...)`` in 40-character deltas, the head's verdicts read after every delta (as
the proxy does); one JSON line per trace holds every step's verdict (flag, ``repr(p)``,
evidence). With ``--rows``, one more line per labelled step: the logit's ``repr`` and the
verdict on its run-time context (``tracestop.lab.honest.states_rows``). A refactor of the head
that claims the same verdicts must leave the files byte-identical.
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
    ap.add_argument("--rows", action="store_true",
                    help="also every labelled step's logit on its run-time context")
    ap.add_argument("--extra", default="labels", help="extra label sets (as lab.honest)")
    args = ap.parse_args(argv)
    ts = load_traces(data_dir(args.data), split="dev")
    order = sorted(ts.traces, key=lambda t: t.id)
    random.Random(1).shuffle(order)
    with open(args.out, "w", encoding="utf-8") as out:
        for t in order[: args.n]:
            m = Monitor("none", question=t.question, benchmark=t.benchmark)
            for i in range(0, len(t.trace), args.delta):
                m.feed(t.trace[i : i + args.delta])
                m.read_states()
            m.end()
            states = [(v.flag, repr(v.p), v.evidence) for v in m.read_states()]
            out.write(json.dumps({"id": t.id, "states": states}) + "\n")
        if args.rows:
            from tracestop.lab.honest import load_runtime_examples, states_rows
            from tracestop.tag.states import StatesHead

            examples, traces = load_runtime_examples(data_dir(args.data), args.extra)
            head = StatesHead()
            for tid, text, ctx, _gold, _strong in states_rows(examples, traces):
                v = head.read(text, ctx)
                out.write(json.dumps({"id": tid, "z": repr(head.weights.z(text, ctx)),
                                      "v": (v.flag, repr(v.p), v.evidence)}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dump what the Monitor says about every step of N dev traces, for comparing two revisions.

    PYTHONPATH=/path/to/base/src python scripts/monitor_steps_dump.py 200 /tmp/base.jsonl
    PYTHONPATH=src               python scripts/monitor_steps_dump.py 200 /tmp/new.jsonl
    cmp /tmp/base.jsonl /tmp/new.jsonl

Each trace (a fixed shuffle of the dev split) is fed to ``Monitor("none", ...)`` in
40-character deltas; one JSON line per trace holds every step's tag (type, role, the
confidence's repr, the evidence) and ``report()``. ``--states`` reads the states-answer head's
verdicts after every delta, as the proxy does, and adds each one's flag, ``repr(p)`` and
evidence; ``--rows`` adds one line per labelled step: the head's logit (``repr``) and verdict
on its run-time context (``tracestop.lab.honest.states_rows``). A refactor of the tagger, the
states-answer head or the Monitor that claims the same behaviour must leave the files
byte-identical.
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
    ap.add_argument("--states", action="store_true",
                    help="read the states-answer verdicts after every delta and dump them")
    ap.add_argument("--rows", action="store_true",
                    help="also every labelled step's states-answer logit on its run-time context")
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
                if args.states:
                    m.read_states()
            m.end()
            steps = [(s.tag.type.value, s.tag.role.value, repr(s.tag.confidence), s.tag.evidence)
                     for s in m.steps]
            line: dict[str, object] = {"id": t.id, "steps": steps}
            if args.states:
                line["states"] = [(v.flag, repr(v.p), v.evidence) for v in m.read_states()]
            line["report"] = m.report()
            out.write(json.dumps(line, sort_keys=True) + "\n")
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

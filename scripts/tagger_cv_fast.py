"""The fast "scratch harness" of docs/tagger.md: `python -m tracestop.lab.honest`'s linear-tagger
cross-validation (same folds, training steps and Monitor replay) with the solvers stopped at
lbfgs ``tol`` 1e-4 instead of 1e-6, about 1-1.5 minutes per scheme instead of 12-18. It ranks
candidate features as the full command does (to the second or third decimal); quote the full
command's figures for anything shipped.

    python scripts/tagger_cv_fast.py [--scheme problem|family] [--by-labeller] [--json]

``--by-labeller`` also splits the steps by who labelled them: the shared labels' careful
annotators (``data/labels/reasontype-dev.jsonl``) or this project's label sets (``labels/``).

``--self-train TAU,W,N,PER_SOURCE`` (docs/tagger.md, "Self-training"): in each fold, the fitted
tagger tags unlabelled dev traces through a Monitor (run-time contexts), at most PER_SOURCE
traces per model x benchmark drawn with seed 0, none of a test trace's problem (and, by
family, none of its family); its steps tagged with confidence >= TAU join the training steps
with weight W (at most N of them) for a second fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAST_TOL = 1e-4


def fast_solver() -> None:
    """Make ``tracestop.lab.train.fit`` use lbfgs with ``tol`` = ``FAST_TOL``."""
    from tracestop.lab import train

    logreg = train._sklearn()

    class Fast(logreg):  # type: ignore[misc, valid-type]
        def __init__(self, **kw: Any) -> None:
            kw["tol"] = FAST_TOL
            super().__init__(**kw)

    train._sklearn = lambda: Fast


class _Recorder:
    """A tagger that tags with another and keeps each step's text, context and tag."""

    name = "recorder"

    def __init__(self, tagger: Any) -> None:
        self.tagger = tagger
        self.seen: list[tuple[str, Any, Any]] = []

    def tag(self, text: str, ctx: Any) -> Any:
        got = self.tagger.tag(text, ctx)
        self.seen.append((text, ctx, got))
        return got


def labelled_traces(data: Path) -> set[str]:
    """The trace ids of every labelled step (the shared labels and ``labels/*.jsonl``), read
    from the label files alone."""
    files = [data / "labels" / "reasontype-dev.jsonl", *sorted((ROOT / "labels").glob("*.jsonl"))]
    return {json.loads(line)["trace_id"] for f in files
            for line in f.open(encoding="utf-8") if line.strip()}


def self_training(data: Path, scheme: str, labelled: set[str], tau: float, weight: float,
                  cap: int, per_source: int) -> Any:
    """The ``augment`` hook of ``honest_cv`` for ``--self-train``."""
    import random

    from tracestop.answers import infer_format
    from tracestop.evaluate.data import load_traces
    from tracestop.lab import honest
    from tracestop.lab.labels import Example
    from tracestop.monitor import Monitor
    from tracestop.policies import Never

    dev = [t for t in load_traces(data, split="dev", require_gold=False).traces
           if t.id not in labelled]

    def augment(tagger: Any, test: set[str]) -> list[Example]:
        probs = {honest.problem_of(t) for t in test}
        fams = {honest.family_of(t) for t in test} if scheme == "family" else set()
        pool = [t for t in dev if honest.problem_of(t.id) not in probs
                and honest.family_of(t.id) not in fams]
        rng = random.Random(0)
        rng.shuffle(pool)
        taken: dict[str, int] = defaultdict(int)
        out: list[Example] = []
        for t in pool:
            src = honest.source_of(t.id)
            if taken[src] >= per_source:
                continue
            taken[src] += 1
            rec = _Recorder(tagger)
            fmt = infer_format(t.question, t.benchmark)
            m = Monitor(Never(), tagger=rec, question=honest._runtime_question(t, fmt),
                        answer_format=fmt, model=t.model)
            m.feed(t.trace)
            m.end()
            out += [Example(text, tag.type, ctx, t.id, weight, sa_label=ctx.states_answer)
                    for text, ctx, tag in rec.seen if tag.confidence >= tau]
        rng.shuffle(out)
        return out[:cap]

    return augment


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scheme", choices=("problem", "family"), default="problem")
    ap.add_argument("--data", default=None, help="data directory (default: $TRACESTOP_DATA)")
    ap.add_argument("--by-labeller", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--self-train", metavar="TAU,W,N,PER_SOURCE", default=None)
    args = ap.parse_args(argv)

    from tracestop.evaluate.data import data_dir
    from tracestop.lab import honest

    data = data_dir(args.data)
    fast_solver()
    if args.by_labeller:
        shared_file = data / "labels" / "reasontype-dev.jsonl"
        shared = {json.loads(line)["trace_id"] for line in shared_file.open(encoding="utf-8")}
        source = honest.source_of
        honest.source_of = lambda tid: ("shared:" if tid in shared else "ours:") + source(tid)
    augment = None
    if args.self_train:
        tau, weight, cap, per_source = args.self_train.split(",")
        augment = self_training(data, args.scheme, labelled_traces(data), float(tau), float(weight),
                                int(cap), int(per_source))
    report = honest.honest_cv(data, ROOT / "labels", scheme=args.scheme, taggers=("linear",),
                              augment=augment)
    rows: dict[str, dict[str, Any]] = report["taggers"]["linear"]
    groups: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for key, row in rows.items():
        if key != "all":
            g = groups[key.split(":")[0] if args.by_labeller else "macro"]
            g[0] += row["n"]
            g[1] += row["type_acc"] * row["n"] if args.by_labeller else row["type_acc"]
            g[2] += row["role_acc"] * row["n"] if args.by_labeller else row["role_acc"]
    n_src = sum(1 for k in rows if k != "all")
    summary = {"scheme": args.scheme, "n_steps": rows["all"]["n"],
               "type_acc": rows["all"]["type_acc"], "role_acc": rows["all"]["role_acc"]}
    if args.by_labeller:
        summary["by_labeller"] = {k: {"n": int(v[0]), "type_acc": v[1] / v[0],
                                      "role_acc": v[2] / v[0]} for k, v in groups.items()}
    else:
        summary["macro_type_acc"] = groups["macro"][1] / n_src
        summary["macro_role_acc"] = groups["macro"][2] / n_src
    if args.json:
        print(json.dumps({**summary, "sources": rows}, indent=1, sort_keys=True))
        return 0
    print(f"scheme {args.scheme}, {summary['n_steps']} steps, lbfgs tol {FAST_TOL}: "
          f"type {summary['type_acc']:.4f}, role {summary['role_acc']:.4f}")
    if args.by_labeller:
        for k, v in summary["by_labeller"].items():
            print(f"  {k:7s} {v['n']:5d} steps: type {v['type_acc']:.3f}, role {v['role_acc']:.3f}")
    else:
        print(f"  macro over {n_src} sources: type {summary['macro_type_acc']:.4f}, "
              f"role {summary['macro_role_acc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How much thinking a policy that loses at most L traces under *stated* answers can save on the
MATH500 dev traces that have forced points: the conflict between the issue's stated-answer loss
bar and its forced-answer saving bar (docs/forced.md, "Two bars that conflict on MATH500").

Under stated grading a stop is right only if the candidate current at the cut is right (none
before the first stated candidate: ``Prepared.is_correct(None)`` is False). So, per trace:

- right at full length: the most a stop saves without a regret is the stated oracle's saving
  (the first step whose current candidate is right); any stop saves at most the earliest
  boundary's saving, with a regret otherwise;
- wrong at full length: a stop at the stated oracle is a rescue; any other stop saves at most
  the earliest boundary's saving, with no change.

The most tokens any policy saves with net stated loss (regrets - rescues) at most L is then a
unit-weight knapsack solved exactly by trying every number R of rescues (the cheapest first)
and taking the L + R largest regret gains. Dev split only.

    PYTHONPATH=src TRACESTOP_DATA=/work/shared/data python scripts/forced_bar.py [--cache FILE]
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from tracestop.evaluate.data import data_dir, load_traces
from tracestop.evaluate.forced import load_forced
from tracestop.evaluate.replay import apply_policy, prepare_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", help="the prepared dev traces `tracestop calibrate --cache` wrote")
    ap.add_argument("--benchmark", default="math500")
    ap.add_argument("--bar", type=float, default=30.0, help="the forced saving bar, percent")
    args = ap.parse_args()
    root = data_dir(None)
    forced = load_forced(root)
    if args.cache and Path(args.cache).is_file():
        with open(args.cache, "rb") as f:
            preps = list(pickle.load(f)[1])  # a file `tracestop calibrate --cache` wrote
    else:
        ts = load_traces(root, benchmarks=(args.benchmark,), split="dev")
        preps = prepare_many(list(ts.traces), workers=1)
    preps = [p for p in preps if p.result.benchmark == args.benchmark and p.result.split == "dev"
             and not p.result.excluded and p.result.id in forced]
    for p in preps:
        p.forced = forced[p.result.id]
    full = sum(p.result.tokens_full for p in preps)
    base = 0  # saving each trace gets with no change of its stated grade
    regret_gain: list[int] = []  # right at full length: extra saving bought by one regret
    rescue_cost: list[int] = []  # wrong at full length, a right candidate stated: saving given up for a rescue
    rescue_free = 0
    no_candidate_before_forced = 0
    for p in preps:
        r = p.result
        o = apply_policy(p, "oracle")
        first = apply_policy(p, "budget:tokens=1")  # stops at the first boundary a policy decides on
        s_or = r.tokens_full - o.tokens if o.stopped else 0
        s_max = max(r.tokens_full - first.tokens, 0) if first.stopped else 0
        fo = apply_policy(p, "oracle", answer="forced")
        cand = next((k for k in range(p.n_decided) if p.records[k].answer.current is not None), None)
        if fo.stopped and fo.step is not None and (cand is None or cand + 1 > fo.step):
            no_candidate_before_forced += 1
        if r.correct_full:
            base += s_or
            regret_gain.append(max(s_max - s_or, 0))
        elif o.stopped:
            if first.correct:
                rescue_free += 1
                base += s_max
            else:
                base += s_max
                rescue_cost.append(s_max - s_or)
        else:
            base += s_max
    regret_gain.sort(reverse=True)
    rescue_cost.sort()
    print(f"{args.benchmark} dev traces with forced points: {len(preps)}; thinking tokens {full:,}")
    print(f"right at full length: {sum(p.result.correct_full for p in preps)}; "
          f"traces whose forced oracle comes before any stated candidate: {no_candidate_before_forced}")
    so = sum(p.result.tokens_full - apply_policy(p, "oracle").tokens for p in preps)
    sf = sum(p.result.tokens_full - apply_policy(p, "oracle", answer="forced").tokens for p in preps)
    print(f"stated oracle saves {100 * so / full:.1f}%; forced oracle {100 * sf / full:.1f}%")
    print(f"{'net stated loss L (traces)':>27s}  most any policy saves")
    for L in range(6):
        best = 0
        for R in range(len(rescue_cost) + 1):
            allowed = L + R + rescue_free
            got = base - sum(rescue_cost[:R]) + sum(regret_gain[:max(allowed, 0)])
            best = max(best, got)
        print(f"{L:27d}  {100 * best / full:5.1f}%" + ("  (below the forced bar)" if 100 * best / full < args.bar else ""))


if __name__ == "__main__":
    main()

"""A rough upper limit for answer extraction: stop right after the first step whose text
contains the gold value anywhere (as a number, not inside a longer one).

    python scripts/rough_oracle.py [--split dev] [--data DIR]

Next to the replayed ``oracle`` policy (which stops after the first step whose *extracted*
candidate is correct; dev traces are scored by the out-of-fold answer scorer, as everywhere
in replay), it shows how much an answer extractor that missed
nothing could unlock. Math answers only (a gold of "A" or "YES" appears in most steps); traces wrong at full
length are never stopped, as for the oracle. Thinking tokens per benchmark, models pooled.

The ``no lag`` column is the oracle with a value stated in prose credited to the step that
states it rather than to the next step boundary, where the Monitor can first judge it (it
needs the step after the value): what judging prose values without waiting for the next step
could add at most, if that judgement were as good.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    ap.add_argument("--data", default=None)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.replay import apply_policy, prepare_many

    ts = load_traces(data_dir(a.data), split=a.split)
    # dev traces are scored by the answer scorer's out-of-fold models (cross-fitting)
    preps = [p for p in prepare_many(ts.traces, workers=a.workers) if not p.result.excluded]
    full: dict[str, int] = defaultdict(int)
    rough: dict[str, int] = defaultdict(int)
    oracle: dict[str, int] = defaultdict(int)
    no_lag: dict[str, int] = defaultdict(int)
    n: dict[str, int] = defaultdict(int)
    for p in preps:
        r = p.result
        if r.answer_format != "math":
            continue
        b = r.benchmark
        n[b] += 1
        full[b] += r.tokens_full
        oracle[b] += apply_policy(p, "oracle").tokens
        first = next((rec.tagged.candidate for rec in p.records[: p.n_decided]
                      if rec.tagged.candidate and p.is_correct(rec.tagged.candidate.value)), None)
        no_lag[b] += (p.records[first.step].tokens_cum + p.cue_tokens) if first else r.tokens_full
        gold = r.gold.replace(",", "").strip()
        pat = re.compile(r"(?<![\d.])" + re.escape(gold) + r"(?![\d]|\.\d)")
        at = next((i for i, rec in enumerate(p.records[: p.n_decided])
                   if pat.search(rec.tagged.step.text.replace(",", ""))), None)
        stop = at is not None and r.correct_full
        rough[b] += p.records[at].tokens_cum + p.cue_tokens if stop else r.tokens_full  # type: ignore[index]
    print(f"split: {a.split}; thinking tokens saved (models pooled)")
    print(f"{'benchmark':12s} {'n':>5s} {'oracle':>7s} {'no lag':>7s} {'rough':>7s}")
    for b in sorted(n):
        print(f"{b:12s} {n[b]:5d} {1 - oracle[b] / full[b]:7.1%} {1 - no_lag[b] / full[b]:7.1%} "
              f"{1 - rough[b] / full[b]:7.1%}")


if __name__ == "__main__":
    main()

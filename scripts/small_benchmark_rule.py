"""How well a small benchmark's configuration holds on traces it was not checked on (dev only).

    python scripts/small_benchmark_rule.py [--data DIR] [--benchmark math500] [--size 79] [--draws 200]

A benchmark with too few dev traces for the regret bound (AIME has 79) gets its configuration
from its answer format (``tracestop.evaluate.calibrate.adopt_format_choice``). This script
makes pseudo-benchmarks of that size out of a large benchmark's dev traces. Each draw takes
``--size`` traces as the small benchmark and keeps the rest of the benchmark as held-out traces.
It then compares three rules by their held-out accuracy loss and tokens saved:

- ``search`` (the rule before this release): the format's admissible configurations, most
  tokens saved first; the first that loses at most 1 point, or one trace, on the small set,
  with no more regret there than that;
- ``format choice``: the format's choice if it passes that test on the small set, else ``none``;
- ``format choice, no regret`` (``adopt_format_choice``): the format's choice if it also has
  no early-stop regret on the small set, else ``none``.

The format's choice and ranking come from ``calibrate(..., by="format")`` over all dev traces
of the format (the held-out traces included, as for a real small benchmark, whose format
group includes it). Dev traces are scored by the out-of-fold answer scorer, as everywhere in
replay.
"""

from __future__ import annotations

import argparse
import random
import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracestop.evaluate.calibrate import Score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--benchmark", action="append", default=None,
                    help="large benchmark(s) to draw pseudo-benchmarks from (default: math500, gsm8k)")
    ap.add_argument("--size", type=int, default=79, help="traces in a pseudo-benchmark (AIME dev: 79)")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()
    from tracestop.evaluate.calibrate import adopt_format_choice, calibrate, score_outcomes
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.replay import apply_policy, prepare_many

    ts = load_traces(data_dir(a.data), split="dev")
    preps = [p for p in prepare_many(ts.traces, workers=a.workers)
             if not p.result.excluded and p.result.answer_format == "math"]
    choices, scores = calibrate(preps, 1.0, by="format", workers=a.workers)
    fmt = next(c for c in choices if c.group == "math")
    ranked = sorted((s for s in scores["math"] if s.admissible(1.0, fmt.bound_applied)),
                    key=lambda s: (-round(s.saved, 6), s.loss_pts))
    specs = [s.spec for s in ranked]
    print(f"math format choice: {fmt.spec} ({len(specs)} admissible configurations)")
    print(f"pseudo-benchmarks of {a.size} dev traces, {a.draws} draws each; held-out: the rest")
    print(f"{'benchmark':10s} {'rule':26s} {'loss':>7s} {'>1 pt':>6s} {'saved':>6s} {'none':>5s}")
    allowance = max(1.0, a.size / 100)  # traces: 1 point, or one trace

    def within(s: Score) -> bool:  # the previous small-group test: loss and regret within it
        return s.loss_pts * s.n / 100 <= allowance + 1e-9 and s.regret_within(1.0)

    for bench in a.benchmark or ["math500", "gsm8k"]:
        pool = [p for p in preps if p.result.benchmark == bench]
        # per configuration and trace: right when stopped, right at full length, tokens used, full
        rows = {sp: [(o.correct, p.result.correct_full, o.tokens, p.result.tokens_full)
                     for p in pool for o in [apply_policy(p, sp)]] for sp in [*specs, "none"]}
        rng = random.Random(0)
        results: dict[str, list[tuple[float, float, str]]] = {}
        for _ in range(a.draws):
            idx = list(range(len(pool)))
            rng.shuffle(idx)
            small, held = idx[: a.size], idx[a.size :]
            own = {sp: score_outcomes(sp, [r[i] for i in small]) for sp, r in rows.items()}
            picks = {
                "search": next((sp for sp in specs if within(own[sp])), "none"),
                "format choice": fmt.spec if within(own[fmt.spec]) else "none",
                "format choice, no regret": adopt_format_choice(bench, list(own.values()), fmt, 1.0).spec,
            }
            for rule, sp in picks.items():
                s = score_outcomes(sp, [rows[sp][i] for i in held])
                results.setdefault(rule, []).append((s.loss_pts, s.saved, sp))
        for rule, res in results.items():
            losses = [x[0] for x in res]
            print(f"{bench:10s} {rule:26s} {statistics.mean(losses):+6.2f}p "
                  f"{sum(x > 1.0 for x in losses) / len(res):6.0%} "
                  f"{statistics.mean(x[1] for x in res):6.1%} {sum(x[2] == 'none' for x in res) / len(res):5.0%}")


if __name__ == "__main__":
    main()

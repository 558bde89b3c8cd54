"""Stop rules aimed at convergence, judged by forced answers and by stated answers (dev only).

    python scripts/forced_explore.py [--data DIR] [--cache /tmp/forced_dev.pkl] [--max-loss 1.0]
                                     [--delta 0.1] [--alpha 1.0]

Replays every dev-split trace that has forced points (``DATA/forced/*.jsonl``) once through the
Monitor (policy ``none``, as ``eval`` does: dev traces scored by the out-of-fold answer
scorer), then walks the step records with simple, explainable rules built from what runs live:
the current candidate answer and how often it was restated, how many steps / tokens since the
last *new* candidate, how many of those steps were evaluative (verification, final
conclusion), and the evaluative share of the last few steps.

For every rule and group it prints thinking tokens saved and the NET accuracy change under
forced answers (the answer forcing gives at the cut, FORMAT.md's reading rule) and under stated
answers (the last candidate stated before the cut): regrets (right at full length, wrong when
stopped), rescues (wrong at full length, right when stopped), net loss = regrets - rescues.
A trace that is not stopped keeps its recorded final answer in both modes.

Groups are answer formats (``math``: R1-32B MATH500; ``choice``: Gemma GPQA-Diamond +
MMLU-Pro) and benchmarks. Rows: the oracles, ``consistency:k=2,3,4``, the default preset as
``eval`` applies it (by benchmark) and as a live request gets it (its answer-format entry), and
per rule family the rule that saves the most forced-answer tokens with a net loss of at most
``--max-loss`` points or one trace (in-sample, on dev). Then a held-out check (pick on one half
of the dev problems, measure on the other, both ways) and a Learn-then-Test p-value for each
pick (``ltt_pvalue``: Clopper-Pearson upper bound on the regret rate and lower bound on the
rescue rate, each at delta/2).
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracestop.evaluate.replay import Prepared


# --- per-trace features, precomputed once ---------------------------------------------------


@dataclass
class Feats:
    """What each step's record says, as plain lists (k = 0-based step)."""

    id: str
    benchmark: str
    fmt: str
    question: str
    n_decided: int
    cur: list[str | None]
    since: list[int | None]
    first: list[int | None]
    count: list[int]
    changes: list[int]
    has_cand: list[bool]
    ev_cum: list[int]
    tok: list[int]
    cue: int
    full_tokens: int
    correct_full: bool
    forced_ok: list[bool]
    stated_ok: list[bool]
    forced_oracle: int | None
    stated_oracle: int | None
    policy_stop: dict[str, int | None]  # spec -> 0-based stop step via replay.apply_policy


def features(prep: Prepared, rec: Any, specs: Sequence[str]) -> Feats:
    from tracestop.evaluate.forced import forced_correct, forced_oracle
    from tracestop.evaluate.replay import apply_policy

    recs = prep.records
    fo = forced_correct(prep, rec)
    so = [prep.is_correct(r.answer.current) for r in recs]
    stated_oracle = next((k for k in range(prep.n_decided)
                          if recs[k].tagged.candidate is not None and so[k]), None)
    stops: dict[str, int | None] = {}
    for s in specs:
        o = apply_policy(prep, s)
        stops[s] = (o.step - 1) if o.stopped and o.step is not None else None
    r = prep.result
    return Feats(
        r.id, r.benchmark, r.answer_format, "", prep.n_decided,
        [x.answer.current for x in recs], [x.answer.since for x in recs],
        [x.answer.first_step for x in recs], [x.answer.count for x in recs],
        [x.answer.changes for x in recs], [x.tagged.candidate is not None for x in recs],
        [x.evaluative_cum for x in recs], [x.tokens_cum for x in recs], prep.cue_tokens,
        r.tokens_full, r.correct_full, fo, so, forced_oracle(prep, rec), stated_oracle, stops,
    )


# --- rules ----------------------------------------------------------------------------------

Rule = Callable[[Feats, int], bool]


def consistency(k_agree: int) -> Rule:
    def f(t: Feats, k: int) -> bool:
        return t.cur[k] is not None and t.count[k] >= k_agree and t.has_cand[k]
    return f


def settle(s: int, m: int, c: int) -> Rule:
    """s steps since the current answer appeared with no new answer, >= m of them evaluative,
    the answer stated >= c times."""
    def f(t: Feats, k: int) -> bool:
        since = t.since[k]
        if t.cur[k] is None or since is None or t.count[k] < c or k - since < s:
            return False
        return t.ev_cum[k] - t.ev_cum[since] >= m
    return f


def patience(tokens: int, c: int) -> Rule:
    """``tokens`` thinking tokens since the current answer appeared, no new answer, stated >= c."""
    def f(t: Feats, k: int) -> bool:
        since = t.since[k]
        if t.cur[k] is None or since is None or t.count[k] < c:
            return False
        return t.tok[k] - t.tok[since] >= tokens
    return f


def agree_evaluative(c: int, w: int, d: float) -> Rule:
    """consistency:k=c at this step and >= d of the last w steps evaluative."""
    cons = consistency(c)

    def f(t: Feats, k: int) -> bool:
        if not cons(t, k) or k + 1 < w:
            return False
        before = t.ev_cum[k - w] if k - w >= 0 else 0
        return t.ev_cum[k] - before >= d * w - 1e-9
    return f


def eval_run(w: int, d: float, t_min: int) -> Rule:
    """>= d of the last w steps evaluative, at least ``t_min`` thinking tokens in; no stated
    answer needed (live, answer forcing supplies it): aimed at checking loops."""
    def f(t: Feats, k: int) -> bool:
        if k + 1 < w or t.tok[k] < t_min:
            return False
        before = t.ev_cum[k - w] if k - w >= 0 else 0
        return t.ev_cum[k] - before >= d * w - 1e-9
    return f


def eval_total(m: int, t_min: int) -> Rule:
    """>= m evaluative steps so far, at least ``t_min`` thinking tokens in; no stated answer
    needed."""
    def f(t: Feats, k: int) -> bool:
        return t.tok[k] >= t_min and t.ev_cum[k] >= m
    return f


def budget(t_min: int) -> Rule:
    """Baseline with no signal at all: the first step boundary at or past ``t_min`` tokens."""
    def f(t: Feats, k: int) -> bool:
        return t.tok[k] >= t_min
    return f


def families() -> dict[str, list[tuple[str, Rule]]]:
    fam: dict[str, list[tuple[str, Rule]]] = {
        "budget": [(f"budget:tokens={n}", budget(n))
                   for n in (1, 250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000)],
        "settle": [(f"settle:s={s},m={m},c={c}", settle(s, m, c))
                   for s in (1, 2, 3, 4, 6, 8, 12, 16, 24) for m in (0, 1, 2, 3, 4, 6) for c in (1, 2, 3)
                   if m <= s],
        "patience": [(f"patience:tokens={n},c={c}", patience(n, c))
                     for n in (100, 200, 400, 800, 1200, 1600, 2400, 3200, 4800) for c in (1, 2, 3)],
        "agree-eval": [(f"agree-eval:c={c},w={w},d={d}", agree_evaluative(c, w, d))
                       for c in (1, 2, 3) for w in (2, 4, 6, 8) for d in (0.25, 0.5, 0.75, 1.0)],
        "eval-run": [(f"eval-run:w={w},d={d},tmin={n}", eval_run(w, d, n))
                     for w in (2, 3, 4, 6, 8) for d in (0.5, 0.75, 1.0)
                     for n in (0, 500, 1000, 2000, 3000, 4000)],
        "eval-total": [(f"eval-total:m={m},tmin={n}", eval_total(m, n))
                       for m in (1, 2, 3, 4, 6, 8, 12, 16, 24) for n in (0, 500, 1000, 2000, 3000, 4000)],
    }
    return fam


# --- scoring --------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    n: int
    saved: float
    forced: tuple[int, int]  # regrets, rescues
    stated: tuple[int, int]
    stopped: int

    def net(self, mode: str) -> int:
        r, s = self.forced if mode == "forced" else self.stated
        return r - s


def first_stop(t: Feats, rule: Rule) -> int | None:
    return next((k for k in range(t.n_decided) if rule(t, k)), None)


def score(name: str, ts: Sequence[Feats], stop_of: Callable[[Feats], int | None]) -> Row:
    used = full = stopped = 0
    fr = fs = sr = ss = 0
    for t in ts:
        k = stop_of(t)
        full += t.full_tokens
        if k is None:
            used += t.full_tokens
            continue
        stopped += 1
        used += t.tok[k] + t.cue
        fr += t.correct_full and not t.forced_ok[k]
        fs += (not t.correct_full) and t.forced_ok[k]
        sr += t.correct_full and not t.stated_ok[k]
        ss += (not t.correct_full) and t.stated_ok[k]
    return Row(name, len(ts), 1 - used / full if full else 0.0, (fr, fs), (sr, ss), stopped)


def allowed(row: Row, max_loss: float) -> float:
    return max(1.0, max_loss * row.n / 100)


def best_of(rules: Iterable[tuple[str, Rule]], ts: Sequence[Feats], max_loss: float,
            mode: str = "forced") -> tuple[str, Rule, Row] | None:
    best: tuple[str, Rule, Row] | None = None
    for name, rule in rules:
        row = score(name, ts, lambda t, r=rule: first_stop(t, r))  # type: ignore[misc]
        modes = ("forced", "stated") if mode == "both" else (mode,)
        if any(row.net(m) > allowed(row, max_loss) + 1e-9 for m in modes):
            continue
        if best is None or row.saved > best[2].saved + 1e-12:
            best = (name, rule, row)
    return best


def ltt_pvalue(regrets: int, rescues: int, n: int, alpha: float) -> float:
    """``tracestop.evaluate.ltt.net_loss_pvalue``: H0 "net loss rate > alpha"."""
    from tracestop.evaluate.ltt import net_loss_pvalue
    return net_loss_pvalue(regrets, rescues, n, alpha)


# --- main -----------------------------------------------------------------------------------


def fmt_row(row: Row, label: str | None = None, ltt: float | None = None) -> str:
    fr, fs = row.forced
    sr, ss = row.stated
    dpf = 100 * (fs - fr) / row.n
    dps = 100 * (ss - sr) / row.n
    p = "" if ltt is None else f" {ltt:7.3f}"
    return (f"  {label or row.name:<44} {row.n:4d} {row.stopped:4d} {100 * row.saved:6.1f}% "
            f"| {fr:3d} {fs:3d} {dpf:+6.1f} | {sr:3d} {ss:3d} {dps:+6.1f}{p}")


HEAD = (f"  {'rule':<44} {'n':>4} {'stop':>4} {'saved':>7} | {'forced: reg res Δpt':>19} "
        f"| {'stated: reg res Δpt':>19} {'LTT p':>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--cache", default=None, help="pickle of the prepared features (made if missing)")
    ap.add_argument("--max-loss", type=float, default=1.0, help="net loss allowed, points (or one trace)")
    ap.add_argument("--alpha", type=float, default=1.0, help="LTT risk level, net loss in points")
    ap.add_argument("--delta", type=float, default=0.1, help="LTT error probability")
    a = ap.parse_args()

    from tracestop.evaluate.data import data_dir, fold_of, load_traces
    from tracestop.evaluate.forced import load_forced
    from tracestop.policies import PRESETS

    default = PRESETS["default"]
    assert isinstance(default, dict)
    specs = ["consistency:k=2", "consistency:k=3", "consistency:k=4", "default",
             *(f"fmt:{f}" for f in ("math", "choice"))]
    replay_specs = {s: (default[s[4:]] if s.startswith("fmt:") else s) for s in specs}

    root = data_dir(a.data)
    cache = Path(a.cache) if a.cache else None
    feats: list[Feats]
    if cache and cache.is_file():
        feats = pickle.loads(cache.read_bytes())
    else:
        from tracestop.evaluate.replay import prepare

        forced = load_forced(root)
        ts = load_traces(root, split="dev")  # dev only: never the test split
        dev = [t for t in ts.traces if t.id in forced]
        print(f"dev traces with forced points: {len(dev)} (of {len(forced)} forced records)")
        feats = []
        excluded = 0
        for t in dev:
            p = prepare(t)
            if p.result.excluded or p.n_decided == 0:
                excluded += 1
                continue
            f = features(p, forced[t.id], list(replay_specs.values()))
            f.question = t.question
            f.policy_stop = {s: f.policy_stop[replay_specs[s]] for s in specs}
            feats.append(f)
        print(f"excluded (thinking cut off / empty): {excluded}")
        if cache:
            cache.write_bytes(pickle.dumps(feats))

    # sanity: the script's consistency matches replay's
    for t in feats:
        for kk in (2, 3, 4):
            assert first_stop(t, consistency(kk)) == t.policy_stop[f"consistency:k={kk}"], t.id

    groups: dict[str, list[Feats]] = {}
    for t in feats:
        groups.setdefault(f"format {t.fmt}", []).append(t)
        groups.setdefault(f"benchmark {t.benchmark}", []).append(t)
        if t.id.startswith("lco:"):  # Gemma: answer-reversal reruns vs cohort-balanced controls
            groups.setdefault(f"gemma selection {t.id.split(':')[3]}", []).append(t)
    fam = families()

    def ltt(row: Row) -> float:
        return ltt_pvalue(row.forced[0], row.forced[1], row.n, a.alpha / 100)

    print(f"net loss allowed: max({a.max_loss:g} pt, 1 trace); LTT: alpha={a.alpha:g} pt, delta={a.delta:g}")
    for g, ts in groups.items():
        nq = len({t.question for t in ts})
        acc = 100 * sum(t.correct_full for t in ts) / len(ts)
        print(f"\n== {g}: {len(ts)} dev traces, {nq} problems, accuracy at full length {acc:.1f}%")
        first = [next((k for k in range(t.n_decided) if t.cur[k] is not None), None) for t in ts]
        early = sum(1 for t, f in zip(ts, first, strict=True)
                    if t.forced_oracle is not None and (f is None or t.forced_oracle < f))
        print(f"   no candidate at any step a policy decides on: {sum(f is None for f in first)}; "
              f"forced oracle before the first candidate: {early}; forced answer right at some "
              f"cut: {sum(t.forced_oracle is not None for t in ts)}")
        print(HEAD)

        for name, fn in (("oracle (forced)", lambda t: t.forced_oracle),
                         ("oracle (stated)", lambda t: t.stated_oracle)):
            print(fmt_row(score(name, ts, fn)))
        for s in specs:
            if s.startswith("fmt:") and f"format {s[4:]}" not in {f"format {t.fmt}" for t in ts}:
                continue
            label = f"default, live ({s[4:]} entry)" if s.startswith("fmt:") else (
                "default, eval (by benchmark)" if s == "default" else s)
            row = score(s, ts, lambda t, s=s: t.policy_stop[s])  # type: ignore[misc]
            print(fmt_row(row, label, ltt(row)))
        for fname, rules in fam.items():
            for mode in ("forced", "stated", "both"):
                b = best_of(rules, ts, a.max_loss, mode)
                if b is None:
                    print(f"  best {fname} ({mode}): none within the loss")
                    continue
                print(fmt_row(b[2], f"{mode[:4]}: {b[0]}", ltt(b[2])))

    # the proposed criteria as Learn-then-Test paths (most cautious first), per format
    from tracestop.evaluate.ltt import LTTConfig, learn_then_test

    paths: dict[str, list[tuple[str, Rule]]] = {
        "format choice": [(f"agree-eval:c={c},w={w},d=0.25", agree_evaluative(c, w, 0.25))
                          for c in (3, 2, 1) for w in (2, 4)],
        "format math": [(f"patience:tokens={n},c=1", patience(n, 1))
                        for n in (4800, 3200, 2400, 1600, 1200, 800, 400)],
    }
    for g, path in paths.items():
        ts = groups.get(g, [])
        if not ts:
            continue
        print(f"\n== {g}: Learn-then-Test path (most cautious first), net loss under forced answers, "
              f"alpha={a.alpha:g} pt, delta={a.delta:g}")
        print(HEAD)
        cfgs = []
        for name, rule in path:
            row = score(name, ts, lambda t, r=rule: first_stop(t, r))  # type: ignore[misc]
            cfgs.append(LTTConfig(name, row.forced[0], row.forced[1], row.n, row.saved))
            print(fmt_row(row, None, ltt(row)))
        res = learn_then_test(cfgs, a.alpha / 100, a.delta)
        print(f"    certified: {len(res.certified)} of {len(cfgs)}; choice: "
              f"{res.choice.spec if res.choice else 'none (do not stop)'}")

    # held-out: choose on one half of the problems, measure on the other, both ways
    print("\n== held-out: the best rule of all families (budget excluded) chosen on one half of "
          "the dev problems (fold_of % 2), measured on the other; both halves pooled")
    print(HEAD)
    every = [r for name, rules in fam.items() if name != "budget" for r in rules]
    for g in ("format math", "format choice"):
        ts = groups.get(g, [])
        for mode in ("forced", "both"):
            rows: list[Row] = []
            picks = []
            for h in (0, 1):
                pick_on = [t for t in ts if fold_of(t.question) % 2 != h]
                test_on = [t for t in ts if fold_of(t.question) % 2 == h]
                b = best_of(every, pick_on, a.max_loss, mode)
                if b is None or not test_on:
                    continue
                picks.append(b[0])
                rows.append(score(b[0], test_on, lambda t, r=b[1]: first_stop(t, r)))  # type: ignore[misc]
            if not rows:
                continue
            n = sum(r.n for r in rows)
            full = sum(sum(t.full_tokens for t in ts if fold_of(t.question) % 2 == h) for h in (0, 1))
            used = sum((1 - r.saved) * sum(t.full_tokens for t in ts if fold_of(t.question) % 2 == h)
                       for h, r in enumerate(rows))
            pooled = Row(g, n, 1 - used / full,
                         (sum(r.forced[0] for r in rows), sum(r.forced[1] for r in rows)),
                         (sum(r.stated[0] for r in rows), sum(r.stated[1] for r in rows)),
                         sum(r.stopped for r in rows))
            print(fmt_row(pooled, f"{g}, chosen on {mode}"))
            print(f"    picks: {' ; '.join(picks)}")

if __name__ == "__main__":
    main()

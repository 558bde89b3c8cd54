"""Choose policy parameters on the ``dev`` split under an accuracy budget.

For each group of traces (by answer format by default, so the chosen preset depends on the
question text alone), every configuration of a grid is replayed; a configuration is
*admissible* when

- its accuracy loss against full generation is at most ``max_loss`` points, and
- the one-sided Clopper–Pearson upper bound (95% by default: ``confidence``) on its early-stop
  regret rate (traces right at full length but wrong when stopped) is at most ``max_loss``
  points — applied only where the group is large enough for a regret-free policy to pass it
  (n ≥ ln(1 − confidence)/ln(1 − max_loss/100), about 300 traces for 1 point at 95%);
  smaller groups fall back to the point estimates — the loss, and the regret itself (not
  offset by traces a stop happens to rescue) within ``max_loss`` points or one trace — and
  are flagged.

Among admissible configurations the one that saves the most thinking tokens wins; ``none`` is
always admissible.

A benchmark too small for the bound (``--by benchmark``) does not get a pick of its own (a
per-benchmark pick on a few dozen traces overfits). It gets its answer format's choice (made
over more traces) if that loses at most ``max_loss`` points — or one trace, whichever is
larger — on the benchmark's own dev traces, with no early-stop regret there; else ``none``
(``adopt_format_choice``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from tracestop.errors import ConfigError
from tracestop.evaluate.ltt import (
    LTTConfig,
    clopper_pearson_upper,
    learn_then_test,
    net_loss_pvalue,
    split_learn_then_test,
)
from tracestop.evaluate.pool import pool_map
from tracestop.evaluate.replay import Prepared, apply_policy
from tracestop.evaluate.tally import Tally, saved_share
from tracestop.policies import Preset

__all__ = [
    "BenchLoss",
    "Choice",
    "NetChoice",
    "NetScore",
    "Score",
    "adopt_format_choice",
    "calibrate",
    "calibrate_net",
    "clopper_pearson_upper",
    "default_grid",
    "half_of",
    "net_grid",
    "regret_frontier",
    "score",
    "score_outcomes",
    "uncertified_ok",
]

GroupBy = Literal["format", "benchmark", "pooled"]


def bound_applies(n: int, max_loss: float, alpha: float = 0.05) -> bool:
    """Whether a regret-free policy could pass the upper-bound test on n traces."""
    if max_loss <= 0:
        return False
    if max_loss >= 100:
        return True
    return n >= math.log(alpha) / math.log(1 - max_loss / 100)


@dataclass(frozen=True)
class Score:
    """One configuration on one group of traces."""

    spec: str
    n: int
    accuracy: float
    accuracy_full: float
    loss_pts: float
    saved: float
    regret: int
    regret_ucb_pts: float
    oracle_saved: float

    def admissible(self, max_loss: float, use_bound: bool) -> bool:
        if self.loss_pts > max_loss + 1e-9:
            return False
        if use_bound:
            return self.regret_ucb_pts <= max_loss + 1e-9 or self.saved == 0
        return self.regret_within(max_loss)

    def regret_within(self, max_loss: float) -> bool:
        """Where no bound applies: the regret itself (not offset by traces a stop happens to
        rescue) is at most ``max_loss`` points, or one trace."""
        return self.regret <= self._traces(max_loss) + 1e-9

    def holds_on_few(self, max_loss: float) -> bool:
        """On a group too small for the bound, checking a configuration chosen elsewhere: it
        loses at most ``max_loss`` points, or one trace, and no trace right at full length is
        wrong when stopped (``scripts/small_benchmark_rule.py``: allowing one regret on 79
        traces lets through configurations that lose over a point on the others)."""
        return self.loss_pts * self.n / 100 <= self._traces(max_loss) + 1e-9 and self.regret == 0

    def _traces(self, max_loss: float) -> float:
        return max(1.0, max_loss * self.n / 100)


def score(preps: Sequence[Prepared], spec: str, presets: Mapping[str, Preset] | None = None,
          oracle_tokens: int | None = None, confidence: float = 0.95) -> Score:
    outcomes = ((o.correct, p.result.correct_full, o.tokens, p.result.tokens_full)
                for p in preps for o in [apply_policy(p, spec, presets)])
    return score_outcomes(spec, outcomes, oracle_tokens, confidence)


def score_outcomes(spec: str, outcomes: Iterable[tuple[bool, bool, int, int]],
                   oracle_tokens: int | None = None, confidence: float = 0.95) -> Score:
    """A configuration's ``Score`` from its per-trace outcomes: (right when stopped, right at
    full length, thinking tokens used, thinking tokens at full length)."""
    t = Tally.of(outcomes)
    return Score(
        spec, t.n, t.accuracy, t.accuracy_full, 100 * (t.right_full - t.right) / t.n, t.saved, t.regret,
        100 * clopper_pearson_upper(t.regret, t.n, 1 - confidence),
        saved_share(oracle_tokens, t.full) if oracle_tokens is not None else 0.0,
    )


def default_grid(budget_caps: bool = False) -> list[str]:
    """The configurations calibration searches: both TRACES criteria over their parameters,
    alone and combined with "the answer was restated" (consistency) or "the answer was stated
    with confidence at least p" (confident), and either of a criterion or "the answer was
    restated three times"; optionally capped by a thinking budget."""
    grid: list[str] = ["none"]
    for w in (2, 3, 4, 5, 6, 8):
        for d in (0.5, 0.6, 0.67, 0.75, 0.8, 1.0):
            if d * w < 1:
                continue
            for mc in (1, 2, 3):
                grid.append(f"traces-shift:window={w},delta={d},min_count={mc}")
    for k in (1, 2, 3, 4, 5, 6, 8):
        for types in ("verification+meta_cognition", "verification",
                      "verification+meta_cognition+final_conclusion"):
            grid.append(f"traces-count:k={k},types={types}")
            grid.append(f"traces-count:k={k},types={types} & consistency:k=2")
    # each criterion also gated on how surely the answer was stated (the answer scorer's
    # probability for a value stated in prose; explicit statements count 1.0)
    gated = [g for g in grid if g.startswith("traces-count") or g.endswith("min_count=1")]
    grid += [f"{g} & confident:p={p}" for p in (0.7, 0.8) for g in gated]
    # either signal: the TRACES criterion, or the answer restated three times in a row (a
    # model that keeps re-deriving the same value while its step mix has not shifted yet)
    grid += [f"{g} | consistency:k=3" for g in grid if g != "none" and "consistency" not in g]
    # a long trace is often a wrong one, and stopping a wrong trace costs no accuracy: with
    # budget_caps each criterion is also tried capped by a thinking budget. Off by default: on
    # the small AIME/GPQA sets what a cap costs differs a lot between splits
    capped = [g for g in grid if g.startswith(("traces-shift:window=2,", "traces-shift:window=4,delta=0.75",
                                                "traces-count:k=1,", "traces-count:k=2,types=verification+meta_cognition"))]
    for g in capped if budget_caps else []:
        if "&" in g:
            continue
        for t in (4000, 8000, 12000, 16000):
            grid.append(f"{g} | budget:tokens={t}")
    # the budget and consistency baselines alone are not searched: they are what the chosen
    # preset is compared against (`tracestop compare`)
    return list(dict.fromkeys(grid))


@dataclass(frozen=True)
class Choice:
    """The configuration chosen for one group, with its dev-split evidence."""

    group: str
    spec: str
    score: Score
    bound_applied: bool
    admissible: int
    tried: int

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = asdict(self.score)
        return d


def group_key(p: Prepared, by: GroupBy) -> str:
    if by == "pooled":
        return "*"
    return p.result.answer_format if by == "format" else p.result.benchmark


def calibrate(
    preps: Iterable[Prepared],
    max_loss: float,
    *,
    by: GroupBy = "format",
    grid: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int | None = 1,
    confidence: float = 0.95,
) -> tuple[list[Choice], dict[str, list[Score]]]:
    """Pick, per group, the admissible configuration that saves the most thinking tokens.
    Returns the choices and every score (the frontier), per group. ``workers`` > 1 (None: all
    cores) scores configurations in forked worker processes; the result is the same.
    ``confidence`` is the level of the regret bound."""
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"confidence must be in [0.5, 1), got {confidence}")
    groups: dict[str, list[Prepared]] = defaultdict(list)
    for p in preps:
        if not p.result.excluded:
            groups[group_key(p, by)].append(p)
    grid = list(grid or default_grid())
    choices: list[Choice] = []
    frontier: dict[str, list[Score]] = {}
    oracle = {g: sum(apply_policy(p, "oracle").tokens for p in ps) for g, ps in groups.items()}
    tasks = [(g, spec) for g in sorted(groups) for spec in grid]
    scored = dict(zip(tasks, _score_all(groups, tasks, oracle, workers, progress, confidence), strict=True))
    for g in sorted(groups):
        ps = groups[g]
        scores = [scored[g, spec] for spec in grid]
        frontier[g] = scores
        use_bound = bound_applies(len(ps), max_loss, 1 - confidence)
        ok = [s for s in scores if s.admissible(max_loss, use_bound)]
        best = max(ok, key=lambda s: (round(s.saved, 6), -s.loss_pts, s.spec == "none"))
        choices.append(Choice(g, best.spec, best, use_bound, len(ok), len(scores)))
    return choices, frontier


_GROUPS: dict[str, list[Prepared]] = {}


def _score_task(task: tuple[str, str, int, float]) -> Score:
    g, spec, oracle, confidence = task
    return score(_GROUPS[g], spec, oracle_tokens=oracle, confidence=confidence)


def _score_all(groups: Mapping[str, list[Prepared]], tasks: Sequence[tuple[str, str]],
               oracle: Mapping[str, int], workers: int | None,
               progress: Callable[[int], None] | None, confidence: float = 0.95) -> Iterable[Score]:
    """Score every (group, configuration) task, in order; in forked workers when asked (the
    prepared traces reach them by fork, not by pickling)."""
    jobs = [(g, spec, oracle[g], confidence) for g, spec in tasks]
    _GROUPS.clear()
    _GROUPS.update(groups)  # inherited by forked workers, not pickled
    try:
        for sc in pool_map(_score_task, jobs, workers=workers, fork=True, chunksize=4):
            yield sc
            if progress:
                progress(1)
    finally:
        _GROUPS.clear()


def regret_frontier(scores: Iterable[Score]) -> list[Score]:
    """The configurations that save the most thinking tokens for their number of early-stop
    regrets, fewest regrets first, each saving more than every one before it: what each extra
    regret buys (``tracestop calibrate --frontier``)."""
    best: dict[int, Score] = {}
    for sc in scores:
        cur = best.get(sc.regret)
        if cur is None or (round(sc.saved, 6), -sc.loss_pts) > (round(cur.saved, 6), -cur.loss_pts):
            best[sc.regret] = sc
    out: list[Score] = []
    for r in sorted(best):
        if not out or best[r].saved > out[-1].saved:
            out.append(best[r])
    return out


def adopt_format_choice(group: str, scores: Sequence[Score], format_choice: Choice,
                        max_loss: float) -> Choice:
    """The configuration for a group too small for the regret bound: its answer format's
    choice (made over more traces) if that loses at most ``max_loss`` points, or one trace, on
    the group's own traces, with no early-stop regret there (``Score.holds_on_few``); else
    ``none``.

    The group's traces only check the format's choice; they do not pick among configurations.
    Searching down the format's ranking for the first configuration that passes on a few dozen
    traces picks one that looked good there by chance (on AIME, 1 regret in 79 dev traces, and
    7 in 102 on test)."""
    own = {sc.spec: sc for sc in scores}
    held = sum(sc.holds_on_few(max_loss) for sc in scores)
    mine = own.get(format_choice.spec)
    if mine is not None and mine.holds_on_few(max_loss):
        return Choice(group, mine.spec, mine, False, held, len(scores))
    if "none" not in own:
        raise ConfigError(f"group {group!r}: the format's choice does not hold; add 'none' to the grid")
    return Choice(group, "none", own["none"], False, held, len(scores))


# --- net accuracy, per answer format, with the Learn-then-Test guarantee -----------------------


@dataclass(frozen=True)
class NetScore:
    """One configuration on one answer-format group: under the calibration's answer mode, on
    the traces that mode can grade (``n``), its regrets (right at full length, wrong when
    stopped), rescues (the reverse) and thinking tokens saved; and under stated answers on every
    dev trace of the group (``*_stated``), the check a choice must also pass. ``pvalue``: the
    Learn-then-Test p-value of H0 "net loss rate > alpha" (``ltt.net_loss_pvalue``)."""

    spec: str
    n: int
    saved: float
    regrets: int
    rescues: int
    n_stated: int
    saved_stated: float
    regrets_stated: int
    rescues_stated: int
    pvalue: float = 1.0
    n_forced: int = 0
    regrets_forced: int = 0
    rescues_forced: int = 0
    #: per dev benchmark of the group (calibration's robustness check; never used live)
    benchmarks: tuple[BenchLoss, ...] = ()
    #: position in the Learn-then-Test sequence (0 first; -1: ``none``, not on it); the first
    #: ``NetChoice.n_certified`` are certified. ``pvalue`` is on the traces tested
    rank: int = -1
    #: with the split-half sequence: the p-value on the ordering half (half 0), which fixed the
    #: order (``ltt.order_by_half``); -1 without the split
    pvalue_order: float = -1.0

    def benchmarks_ok(self, max_loss: float, net: bool = False) -> bool:
        """On every dev benchmark of the group, the regrets (``net``: regrets - rescues) are at
        most ``max_loss`` points or one trace, under stated answers and under forced answers
        where recorded (``BenchLoss.ok``): the per-benchmark bar, checked on dev
        sub-populations."""
        return all(b.ok(max_loss, net) for b in self.benchmarks)

    @property
    def net_pts(self) -> float:
        return 100 * (self.regrets - self.rescues) / self.n if self.n else 0.0

    @property
    def net_stated_pts(self) -> float:
        return 100 * (self.regrets_stated - self.rescues_stated) / self.n_stated if self.n_stated else 0.0

    def stated_ok(self, max_loss: float) -> bool:
        """Under stated answers on the group's dev traces, the net loss (regrets − rescues) is
        at most ``max_loss`` points or one trace, whichever is more."""
        return self.regrets_stated - self.rescues_stated <= max(1.0, max_loss * self.n_stated / 100) + 1e-9

    def forced_ok(self, max_loss: float) -> bool:
        """The same check under forced answers on the group's traces with forced points (none:
        nothing to check)."""
        return self.regrets_forced - self.rescues_forced <= max(1.0, max_loss * self.n_forced / 100) + 1e-9

    def mode_ok(self, max_loss: float) -> bool:
        """Point estimate under the calibration's answer mode: net loss at most ``max_loss``
        points or one trace."""
        return self.regrets - self.rescues <= max(1.0, max_loss * self.n / 100) + 1e-9


@dataclass(frozen=True)
class NetChoice:
    """The configuration chosen for one answer format, with the evidence: the answer mode the
    guarantee is about, Learn-then-Test's alpha (points) and delta, how many configurations of
    the fixed path were certified, and whether the choice is certified (``none`` always is: it
    never stops, so it changes nothing)."""

    group: str
    answer: str
    spec: str
    score: NetScore
    certified: bool
    n_certified: int
    tried: int
    alpha_pts: float
    delta: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = asdict(self.score)
        return d


def net_grid() -> list[str]:
    """The configurations the net-loss calibration searches: the answer-repetition baselines,
    the convergence criterion ``agree-eval`` over its parameters, the TRACES criteria, and
    "either": a criterion or the answer restated ``k`` times."""
    grid = ["none"] + [f"consistency:k={k}" for k in (2, 3, 4, 5)]
    grid += [f"agree-eval:c={c},w={w},d={d}" for c in (1, 2, 3) for w in (2, 4, 6, 8)
             for d in (0.25, 0.5, 0.75, 1.0) if d * w >= 1]
    grid += [f"traces-shift:window={w},delta={d},min_count={m}" for w in (3, 4, 6, 8)
             for d in (0.5, 0.75, 1.0) for m in (1, 2)]
    ev = "verification+meta_cognition+final_conclusion"
    for k in (1, 2, 3, 5):
        for types in ("verification+meta_cognition", ev):
            grid += [f"traces-count:k={k},types={types}", f"traces-count:k={k},types={types} & consistency:k=2"]
    either = ["agree-eval:c=1,w=4,d=0.25", "agree-eval:c=1,w=4,d=0.5", "agree-eval:c=2,w=4,d=0.5",
              "agree-eval:c=1,w=8,d=0.5", "agree-eval:c=2,w=8,d=0.5", "agree-eval:c=1,w=8,d=0.75",
              "traces-shift:window=4,delta=0.5,min_count=2", "traces-shift:window=3,delta=0.5,min_count=2",
              f"traces-count:k=5,types={ev} & consistency:k=2", f"traces-count:k=2,types={ev} & consistency:k=2"]
    grid += [f"{x} | consistency:k={k}" for k in (3, 4) for x in either]
    # convergence read from the step tags: restatements that count only inside checks, and a
    # check followed by steps with no new answer (policies.CheckedConsistency, QuietAfterCheck)
    checked = [f"checked-consistency:k={k}" for k in (1, 2, 3)]
    checked += [f"quiet:n={n},c={c}" for n in (1, 2, 3, 4, 6) for c in (2, 3)]
    grid += checked
    grid += [f"{x} | consistency:k={k}" for k in (3, 4)
             for x in ("checked-consistency:k=1", "checked-consistency:k=2", "quiet:n=2,c=2", "quiet:n=4,c=2")]
    grid += [f"checked-consistency:k={k} | agree-eval:c=3,w=4,d=0.5" for k in (1, 2)]
    # answer consistency whose restatements include checks: the last k statements agree and
    # j of the restatements were made in evaluative steps
    grid += [f"consistency:k={k} & checked-consistency:k={j}" for k in (3, 4, 5) for j in (1, 2)]
    grid += [f"quiet:n={n},c=2 | agree-eval:c=3,w=4,d=0.5" for n in (2, 4)]
    return list(dict.fromkeys(grid))


@dataclass(frozen=True)
class BenchLoss:
    """One configuration on the dev traces of one benchmark inside an answer-format group:
    traces, regrets and rescues under stated answers, and under forced answers on the traces
    with forced points. Benchmark names are used only here, in calibration, as a robustness
    check across sub-populations; a live request never has one."""

    benchmark: str
    n: int
    regrets: int
    rescues: int
    n_forced: int = 0
    regrets_forced: int = 0
    rescues_forced: int = 0
    #: share of the thinking tokens saved on the benchmark's traces of the group
    saved: float = 0.0

    def ok(self, max_loss: float, net: bool = False) -> bool:
        """Early-stop regrets at most ``max_loss`` points or one trace, whichever is more, under
        stated answers and under forced answers where recorded. Rescues are not credited
        against regrets unless ``net``: on a benchmark of a few dozen traces a rescue is as
        likely luck as a regret (AIME dev: the old default had 2 regrets in 79 traces; on test
        it lost 4 in 102)."""
        def within(reg: int, res: int, n: int) -> bool:
            return n == 0 or reg - (res if net else 0) <= max(1.0, max_loss * n / 100) + 1e-9
        return within(self.regrets, self.rescues, self.n) and \
            within(self.regrets_forced, self.rescues_forced, self.n_forced)


@dataclass
class _Walk:
    """Per-trace outcomes of one configuration (one policy walk per trace)."""

    half: list[int]
    mode_counted: list[bool]
    mode_reg: list[bool]
    mode_res: list[bool]
    used: list[int]
    full: list[int]
    stated_reg: list[bool]
    stated_res: list[bool]
    bench: list[str]
    forced: list[tuple[bool, bool] | None]


def _walk(preps: Sequence[Prepared], spec: str, answer: str, presets: Mapping[str, Preset] | None,
          half: Mapping[str, int] | None) -> _Walk:
    from tracestop.evaluate.replay import forced_outcome

    w = _Walk([], [], [], [], [], [], [], [], [], [])
    for p in preps:
        o = apply_policy(p, spec, presets)
        cf = p.result.correct_full
        f: tuple[bool, bool] | None = None
        if p.forced is not None:
            of = forced_outcome(p, o, p.forced)
            f = (cf and not of.correct, (not cf) and of.correct)
        w.half.append(half.get(p.result.id, 0) if half is not None else 0)
        w.stated_reg.append(cf and not o.correct)
        w.stated_res.append((not cf) and o.correct)
        w.used.append(o.tokens)
        w.full.append(p.result.tokens_full)
        w.bench.append(p.result.benchmark)
        w.forced.append(f)
        if answer == "forced":
            w.mode_counted.append(f is not None)
            w.mode_reg.append(f is not None and f[0])
            w.mode_res.append(f is not None and f[1])
        else:
            w.mode_counted.append(True)
            w.mode_reg.append(w.stated_reg[-1])
            w.mode_res.append(w.stated_res[-1])
    return w


def _mode_ltt(w: _Walk, spec: str, keep: Callable[[int], bool]) -> LTTConfig:
    """The configuration's regrets, rescues, traces and tokens saved under the answer mode, on
    the traces ``keep`` selects (by index)."""
    idx = [i for i in range(len(w.half)) if keep(i) and w.mode_counted[i]]
    return LTTConfig(spec, sum(w.mode_reg[i] for i in idx), sum(w.mode_res[i] for i in idx), len(idx),
                     saved_share(sum(w.used[i] for i in idx), sum(w.full[i] for i in idx)))


def _on_half(w: _Walk, spec: str, h: int) -> LTTConfig:
    return _mode_ltt(w, spec, lambda i: w.half[i] == h)


def _net_score(w: _Walk, spec: str) -> NetScore:
    m = _mode_ltt(w, spec, lambda i: True)
    fi = [f for f in w.forced if f is not None]
    benches: dict[str, list[int]] = defaultdict(lambda: [0] * 8)
    for i, b in enumerate(w.bench):
        r = benches[b]
        r[6] += w.used[i]
        r[7] += w.full[i]
        r[0] += 1
        r[1] += w.stated_reg[i]
        r[2] += w.stated_res[i]
        f = w.forced[i]
        if f is not None:
            r[3] += 1
            r[4] += f[0]
            r[5] += f[1]
    return NetScore(spec, m.n, m.saved, m.regrets, m.rescues, len(w.half), saved_share(sum(w.used), sum(w.full)),
                    sum(w.stated_reg), sum(w.stated_res), 1.0, len(fi), sum(f[0] for f in fi),
                    sum(f[1] for f in fi), tuple(BenchLoss(b, r[0], r[1], r[2], r[3], r[4], r[5], saved_share(r[6], r[7]))
                          for b, r in sorted(benches.items())))


def half_of(question: str) -> int:
    """Which half of the dev problems a question belongs to (0 or 1), by a stable hash of the
    normalised question text (a byte of the hash that neither ``split_of`` nor ``fold_of``
    uses), so every model's trace of a problem lands in the same half."""
    import hashlib

    from tracestop.evaluate.data import normalise_question

    return hashlib.sha256(normalise_question(question).encode("utf-8")).digest()[2] % 2


def uncertified_ok(r: NetScore) -> bool:
    """Whether a configuration may be chosen for a format too small to certify: no early-stop
    regret on its dev traces under stated answers, nor under forced answers where recorded
    (rescues are not netted against regrets without the guarantee)."""
    return r.regrets == 0 and r.regrets_stated == 0 and r.regrets_forced == 0


def certifiable_n(alpha_pts: float, delta: float) -> int:
    """The fewest traces on which a configuration with no regret and no rescue gets a
    Learn-then-Test p-value at most ``delta`` at net loss ``alpha_pts`` points (the
    Clopper-Pearson upper bound at ``delta / 2`` on 0 of n within alpha)."""
    a = alpha_pts / 100
    if a <= 0:
        return 10**9
    if a >= 1:
        return 1
    return math.ceil(math.log(delta / 2) / math.log(1 - a))


def calibrate_net(
    preps: Iterable[Prepared],
    *,
    answer: str = "forced",
    alpha_pts: float = 1.0,
    delta: float = 0.1,
    max_stated_loss: float = 1.0,
    grid: Sequence[str] | None = None,
    presets: Mapping[str, Preset] | None = None,
    progress: Callable[[int], None] | None = None,
    half: Mapping[str, int] | None = None,
    per_benchmark: str = "regrets",
) -> tuple[list[NetChoice], dict[str, list[NetScore]]]:
    """Per answer format a live request gets (``TraceResult.format_live``, from the question
    text alone; never the benchmark), the configuration that saves the most thinking tokens
    among those Learn-then-Test certifies, under the answer mode ``answer``, to have a net loss
    rate (regrets − rescues) of at most ``alpha_pts`` points at family-wise level ``delta``, and
    that also lose at most ``max_stated_loss`` points (or one trace) under stated answers on the
    group's dev traces, and under forced answers on those with forced points; with
    ``per_benchmark`` ``"regrets"`` (or ``"net"``), also with regrets (regrets - rescues) at most
    ``max_stated_loss`` points or one trace on the dev traces of every benchmark inside the
    group (``NetScore.benchmarks_ok``; ``"off"``: no such check). Benchmark names check
    robustness across sub-populations in calibration only; the preset never names one. A group too small for any stop to be certified
    (``certifiable_n``) is chosen on point estimates and flagged ``certified=False``.

    The Learn-then-Test sequence is fixed before the traces it is tested on are looked at.
    With ``half`` (trace id → 0 or 1, by problem: ``half_of``), where half 1 alone is large
    enough to certify a stop: the sequence is ordered on half 0 (``ordered_path``) and tested
    on half 1 only, so the guarantee is about half 1's traces. Else: ordered by the thinking
    tokens each configuration saves on all the group's traces (a label-free order), most
    cautious first, and tested on all of them. ``none`` is always admissible and is the choice
    when nothing is certified. A group with no forced points (answer mode ``forced``) is
    calibrated on stated answers, and says so."""
    if answer not in ("stated", "forced"):
        raise ConfigError(f"answer mode must be stated or forced, got {answer!r}")
    if per_benchmark not in ("regrets", "net", "off"):
        raise ConfigError(f"per_benchmark must be regrets, net or off, got {per_benchmark!r}")
    groups: dict[str, list[Prepared]] = defaultdict(list)
    for p in preps:
        if not p.result.excluded:
            groups[p.result.format_live].append(p)
    grid = list(dict.fromkeys(grid or net_grid()))
    choices: list[NetChoice] = []
    scores: dict[str, list[NetScore]] = {}
    alpha = alpha_pts / 100
    need = certifiable_n(alpha_pts, delta)
    for g in sorted(groups):
        ps = groups[g]
        mode = answer if answer == "stated" or any(p.forced is not None for p in ps) else "stated"
        walks: dict[str, _Walk] = {}
        for spec in grid:
            walks[spec] = _walk(ps, spec, mode, presets, half)
            if progress:
                progress(1)
        rows = {spec: _net_score(w, spec) for spec, w in walks.items()}
        specs = [sp for sp in grid if sp != "none"]
        n_mode = rows[specs[0]].n if specs else len(ps)
        w0 = walks[specs[0]] if specs else None
        n_test = sum(1 for i in range(len(ps)) if w0 and w0.mode_counted[i] and w0.half[i] == 1)
        split = half is not None and n_test >= need
        order_pv: dict[str, float] = {}
        if split:
            halves = [[_on_half(walks[sp], sp, h) for sp in specs] for h in (0, 1)]
            order_pv = {c.spec: net_loss_pvalue(c.regrets, c.rescues, c.n, alpha) for c in halves[0]}
            cert = split_learn_then_test(halves[0], halves[1], alpha, delta)
            path = list(cert.path)
            how = (f"Learn-then-Test sequence ordered on half 0 of the problems, tested on half 1 "
                   f"({n_test} traces)")
        else:
            path = sorted((_mode_ltt(walks[sp], sp, lambda i: True) for sp in specs), key=lambda c: (c.saved, c.spec))
            how = f"Learn-then-Test sequence ordered by tokens saved (label-free), tested on all {n_mode} traces"
            cert = learn_then_test(path, alpha, delta)
        pv = {c.spec: p for c, p in zip(path, cert.pvalues, strict=True)}
        rank = {c.spec: i for i, c in enumerate(path)}
        out = [replace(rows[sp], pvalue=pv.get(sp, 0.0), rank=rank.get(sp, -1),
                       pvalue_order=order_pv.get(sp, -1.0)) for sp in grid]
        scores[g] = out
        by_spec = {r.spec: r for r in out}

        def holds(r: NetScore) -> bool:
            return r.stated_ok(max_stated_loss) and r.forced_ok(max_stated_loss) and \
                (per_benchmark == "off" or r.benchmarks_ok(max_stated_loss, net=per_benchmark == "net"))

        notes = [] if mode == answer else ["no forced points for this format: calibrated on stated answers"]
        certifiable = need <= n_mode
        if certifiable:
            notes.append(how)
            ok = [by_spec[c.spec] for c in cert.certified if holds(by_spec[c.spec])]
        else:
            # too few traces for Learn-then-Test to certify even a configuration with no regret:
            # point estimates, flagged (the guarantee does not hold for this format). Without the
            # guarantee, rescues are not credited against regrets (on few traces they are as
            # likely luck, and the recorded choice traces were selected for answers that flip):
            # a stop must have no regret at all on the format's dev traces, in either mode.
            ok = [r for r in out if r.spec != "none" and uncertified_ok(r) and holds(r)]
            notes.append(f"not certified: {n_mode} traces, Learn-then-Test needs at least "
                         f"{need} to certify any stop at alpha = {alpha_pts:g} pt; "
                         "chosen on point estimates: no early-stop regret in either answer mode")
        none = by_spec.get("none") or NetScore("none", len(ps), 0.0, 0, 0, len(ps), 0.0, 0, 0, 0.0)
        best = max(ok, key=lambda r: (round(r.saved, 6), r.spec)) if ok else none
        if not ok:
            notes.append("nothing admissible that also holds in both answer modes"
                         + ("" if per_benchmark == "off" else " and on every dev benchmark") + ": none")
        choices.append(NetChoice(g, mode, best.spec, best, certifiable or best.spec == "none",
                                 len(cert.certified), len(path), alpha_pts, delta, "; ".join(notes)))
    return choices, scores

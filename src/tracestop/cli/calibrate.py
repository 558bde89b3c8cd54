"""``tracestop calibrate``: choose policy parameters on dev under an accuracy budget."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracestop.cli._common import (
    benchmark_option,
    check_out_file,
    data_option,
    errors_to_click,
    model_option,
    progress_bar,
    tagger_option,
    warn,
    workers_option,
)
from tracestop.cli.evaluate import answer_option
from tracestop.errors import ConfigError

if TYPE_CHECKING:
    from tracestop.evaluate.calibrate import GroupBy
    from tracestop.evaluate.replay import AnswerMode, Prepared
    from tracestop.policies import Preset


#: bumped when what a cache holds changes shape (2: StepRecord gained checked_cum, last_checked)
_CACHE_FORMAT = 2


def _prepared(traces: list[Any], tagger: str | None, workers: int | None, cache: str | None) -> list[Prepared]:
    """Every dev trace after one Monitor pass; with ``cache``, read from / written to that
    pickle (keyed by the trace ids and the tagger: delete it after retraining a model)."""
    import pickle

    from tracestop.evaluate.replay import prepare_many

    key = (tagger, tuple(t.id for t in traces), _CACHE_FORMAT)
    if cache and Path(cache).is_file():
        with open(cache, "rb") as f:
            got = pickle.load(f)  # a file this command wrote
        if isinstance(got, tuple) and len(got) == 2 and got[0] == key:
            warn(f"read the prepared dev traces from {cache}")
            return list(got[1])
        warn(f"{cache} was written for other traces, another tagger or an older tracestop: "
             "preparing again")
    with progress_bar(len(traces), "tagging dev traces") as advance:
        preps = prepare_many(traces, tagger=tagger, workers=workers, progress=advance)
    if cache:
        with open(cache, "wb") as f:
            pickle.dump((key, preps), f)
    return preps


def write_preset(name: str, value: Preset, meta: dict[str, Any], presets_file: str | None,
                 extra: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Save the chosen preset with how it was chosen (``_meta``), and the JSON document both
    methods print: the preset, where it went, the metadata and ``extra`` (scores, frontier)."""
    from tracestop.presets import save_preset

    path = save_preset(name, value, meta, presets_file)
    return path, {"preset": name, "value": value, "written_to": str(path), **meta, **extra}


def calibrate_ltt(data: str | None, benchmarks: tuple[str, ...], models: tuple[str, ...],
                  answer: AnswerMode, alpha: float, delta: float, max_loss: float, grid: tuple[str, ...],
                  name: str, presets_file: str | None, tagger: str | None, workers: int | None,
                  cache: str | None, as_json: bool, split_half: bool = True,
                  per_benchmark: str = "regrets") -> None:
    """Net-loss calibration per answer format with the Learn-then-Test guarantee."""
    from tracestop.evaluate.calibrate import calibrate_net, certifiable_n, half_of, net_grid
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.forced import load_forced
    from tracestop.evaluate.oracle import parse_eval_policy
    from tracestop.evaluate.replay import cross_fitting

    if not 0 < delta < 1:
        raise ConfigError(f"--delta must be in (0, 1), got {delta}")
    if not 0 < alpha <= 100:
        raise ConfigError(f"--alpha must be in (0, 100] points, got {alpha}")
    specs = list(grid) or net_grid()
    for s in specs:
        parse_eval_policy(s)
    root = data_dir(data)
    ts = load_traces(root, benchmarks=benchmarks, models=models, split="dev")
    preps = _prepared(list(ts.traces), tagger, workers, cache)
    forced = load_forced(root, required=answer == "forced")
    for p in preps:
        p.forced = forced.get(p.result.id)
    n_groups = len({p.result.format_live for p in preps if not p.result.excluded})
    half = {t.id: half_of(t.question) for t in ts.traces} if split_half else None
    with progress_bar(len(specs) * n_groups, "searching configurations",
                      unit="configurations") as advance:
        choices, scores = calibrate_net(preps, answer=answer, alpha_pts=alpha, delta=delta,
                                        max_stated_loss=max_loss, grid=specs, progress=advance,
                                        half=half, per_benchmark=per_benchmark)
    value: dict[str, str] = {c.group: c.spec for c in choices}
    value["*"] = "none"
    meta = {
        "chosen_on": "dev split",
        "method": "Learn-then-Test on net loss (regrets - rescues), per answer format a live "
                  "request gets (from the question text alone)",
        "answer": answer,
        "alpha_pts": alpha,
        "delta": delta,
        "certifiable_n": certifiable_n(alpha, delta),
        "check_pts": max_loss,
        "check": "net loss at most max(check_pts, one trace) under stated answers, and under "
                 "forced answers where the format has forced points"
                 + ("" if per_benchmark == "off" else
                    f"; and on each dev benchmark of the format, {per_benchmark} at most max(check_pts, one trace)"),
        "split_half": split_half,
        "per_benchmark": per_benchmark,
        "answer_scorer": "cross-fitted (out-of-fold per problem)" if cross_fitting() else "shipped (in-sample on dev)",
        "date": _dt.date.today().isoformat(),
        "groups": [c.to_json() for c in choices],
    }
    path, doc = write_preset(name, value, meta, presets_file,
                             {"scores": {g: [asdict(r) for r in rs] for g, rs in scores.items()}})
    if as_json:
        click.echo(json.dumps(doc))
        return
    click.echo(f"{'format':7s} {'mode':6s} {'n':>5s} {'saved':>7s} {'reg':>4s} {'res':>4s} "
               f"{'stated n':>8s} {'reg':>4s} {'res':>4s} {'forced n':>8s} {'reg':>4s} {'res':>4s} "
               f"{'cert':>4s}  chosen configuration")
    for c in choices:
        r = c.score
        click.echo(f"{c.group:7s} {c.answer:6s} {r.n:5d} {100 * r.saved:6.1f}% {r.regrets:4d} {r.rescues:4d} "
                   f"{r.n_stated:8d} {r.regrets_stated:4d} {r.rescues_stated:4d} {r.n_forced:8d} "
                   f"{r.regrets_forced:4d} {r.rescues_forced:4d} {c.n_certified:4d}  {c.spec}"
                   + (f"\n        ({c.note})" if c.note else ""))
    click.echo(f"\nwrote preset {name!r} to {path}; use it with: tracestop eval --policy {name}")
    order = ("ordered on half 0 of the problems and tested on half 1 where that half can certify, "
             "else ordered by tokens saved" if split_half else "ordered by tokens saved")
    warn(f"guarantee: Learn-then-Test (fixed sequence {order}; each format's note says which), "
         f"net loss rate <= {alpha:g} pt at delta = {delta:g}, answers {answer}")


@click.command("calibrate")
@click.option("--max-loss", "max_loss", type=float, required=True, metavar="PTS",
              help="Accuracy loss allowed against full generation, in points (e.g. 1.0). With "
                   "--method ltt: the check a choice must pass in every answer mode (net loss "
                   "at most max(PTS, one trace)).")
@click.option("--method", type=click.Choice(["ltt", "regret"]), default="ltt", show_default=True,
              help="ltt: per answer format, the most tokens saved among the configurations "
                   "Learn-then-Test certifies to a net loss (regrets - rescues) of at most "
                   "--alpha at level --delta, under --answer. regret: the previous rule (a "
                   "Clopper-Pearson bound on early-stop regret alone, --by, --confidence).")
@answer_option
@click.option("--alpha", type=float, default=1.0, show_default=True, metavar="PTS",
              help="--method ltt: the net loss rate certified, in points.")
@click.option("--delta", type=float, default=0.1, show_default=True,
              help="--method ltt: Learn-then-Test's error level (the guarantee holds with "
                   "probability at least 1 - delta over the dev traces).")
@click.option("--cache", type=click.Path(dir_okay=False), default=None,
              help="--method ltt: keep the prepared dev traces in this pickle between runs "
                   "(delete it after retraining the tagger or the answer scorer).")
@click.option("--split/--no-split", "split_half", default=True, show_default=True,
              help="--method ltt: order the Learn-then-Test sequence on one half of the dev "
                   "problems (by problem hash) and test it on the other, where that half alone "
                   "can certify a stop; --no-split: order by tokens saved and test on all.")
@click.option("--per-benchmark", "per_benchmark", type=click.Choice(["regrets", "net", "off"]),
              default="regrets", show_default=True,
              help="--method ltt: a choice must also have at most max(--max-loss, one trace) "
                   "early-stop regrets (net: regrets - rescues) on the dev traces of every "
                   "benchmark in the format, in each answer mode (a robustness check across "
                   "sub-populations; the preset never names a benchmark). off: no such check.")
@data_option
@benchmark_option
@model_option
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True,
              help="Confidence level of the one-sided Clopper-Pearson upper bound on the "
                   "early-stop regret rate, which must stay within --max-loss. Lower levels "
                   "admit more aggressive presets.")
@click.option("--by", type=click.Choice(["format", "benchmark", "pooled"]), default="format",
              show_default=True,
              help="One configuration per answer format (chosen from the question text alone), "
                   "per benchmark, or one for everything.")
@click.option("--grid", "grid", multiple=True, metavar="SPEC",
              help="Configurations to search (repeatable; default: the built-in grid).")
@click.option("--budget-caps", is_flag=True,
              help="Also try each criterion capped by a thinking budget (risky on small sets).")
@click.option("--name", default="calibrated", show_default=True, help="Preset name to write.")
@click.option("--presets-file", type=click.Path(dir_okay=False), default=None,
              help="Where to write the preset (default: $TRACESTOP_PRESETS, else "
                   "$XDG_CONFIG_HOME/tracestop/presets.json, i.e. ~/.config/tracestop/presets.json; "
                   "where every command reads presets from).")
@tagger_option
@workers_option
@click.option("--frontier", "show_frontier", is_flag=True,
              help="Also print, per group, the most tokens each number of early-stop regrets "
                   "buys (the configurations behind the choice; always in --json).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def calibrate_command(max_loss: float, method: str, answer: AnswerMode, alpha: float, delta: float,
                      cache: str | None, split_half: bool, per_benchmark: str, data: str | None, benchmarks: tuple[str, ...],
                      models: tuple[str, ...], confidence: float, by: GroupBy, grid: tuple[str, ...],
                      budget_caps: bool, name: str,
                      presets_file: str | None, tagger: str | None, workers: int | None,
                      show_frontier: bool, as_json: bool) -> None:
    """Search policy parameters on the dev split and write the configuration that saves the
    most thinking tokens within the accuracy budget as a named preset (usable as
    `tracestop eval --policy NAME`). The default method chooses per answer format (the
    format a live request's question text gives) with the Learn-then-Test guarantee on the net
    loss; --answer forced grades stops by the recorded forced answers."""
    from tracestop.presets import presets_path

    # where the preset goes is checked before any work (a calibration takes minutes)
    check_out_file(presets_path(presets_file), "--presets-file" if presets_file else
                   "the presets file ($TRACESTOP_PRESETS or the default)")
    with errors_to_click("`tracestop calibrate`"):
        from tracestop.evaluate.oracle import EVAL_POLICIES

        if not 0 <= max_loss <= 100:
            raise ConfigError(f"--max-loss must be between 0 and 100 points, got {max_loss}")
        if name in EVAL_POLICIES:
            raise ConfigError(f"--name {name!r} is a policy name; choose another preset name")
    if method == "ltt":
        with errors_to_click():
            if by != "format":
                raise ConfigError("--method ltt calibrates per answer format (what a live request "
                                  "has), never per benchmark; --by applies to --method regret")
            calibrate_ltt(data, benchmarks, models, answer, alpha, delta, max_loss, grid, name,
                          presets_file, tagger, workers, cache, as_json, split_half, per_benchmark)
        return
    from tracestop.evaluate.calibrate import (
        Choice,
        Score,
        adopt_format_choice,
        calibrate,
        default_grid,
        regret_frontier,
    )
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.oracle import parse_eval_policy
    from tracestop.evaluate.replay import cross_fitting, prepare_many

    bound_level = f"{100 * confidence:g}%"
    with errors_to_click("`tracestop calibrate`"):
        specs = list(grid) or default_grid(budget_caps)
        for s in specs:
            parse_eval_policy(s)
        ts = load_traces(data_dir(data), benchmarks=benchmarks, models=models, split="dev")
        with progress_bar(len(ts.traces), "calibrate: tagging dev traces") as advance:
            # dev traces are scored by the answer scorer's out-of-fold models (cross-fitting)
            preps = prepare_many(ts.traces, tagger=tagger, workers=workers, progress=advance)
        cross_fitted = cross_fitting()
        if not cross_fitted:
            warn("the answer scorer's out-of-fold weights (answer_scorer.fold*.npz) are missing: "
                 "calibrating on in-sample scorer confidences, which favour early stops; "
                 "run scripts/train_answer_scorer.py to write them")
        n_groups = len({p.result.answer_format if by == "format" else p.result.benchmark
                        for p in preps if not p.result.excluded}) if by != "pooled" else 1
        with progress_bar(len(specs) * n_groups, "calibrate: searching",
                          unit="configurations") as advance:
            choices, frontier = calibrate(preps, max_loss, by=by, grid=specs,
                                          progress=advance, workers=workers, confidence=confidence)
        value: str | dict[str, str]
        fallback: list[Choice] = []
        fmt_frontier: dict[str, list[Score]] = {}
        if by == "benchmark":
            # questions from other benchmarks (or live traffic) fall back to their format
            with progress_bar(len(specs) * 3, "calibrate: searching per format",
                              unit="configurations") as advance:
                fallback, fmt_frontier = calibrate(preps, max_loss, by="format", grid=specs,
                                                   progress=advance, workers=workers,
                                                   confidence=confidence)
            # a benchmark too small for the regret bound gets its format's choice (made over more
            # traces) if that holds on its own dev traces, else none
            fmt_of = {p.result.benchmark: p.result.answer_format for p in preps if not p.result.excluded}
            by_fmt = {c.group: c for c in fallback}
            choices = [c if c.bound_applied else
                       adopt_format_choice(c.group, frontier[c.group], by_fmt[fmt_of[c.group]], max_loss)
                       for c in choices]
        prefix = "benchmark:" if by == "benchmark" else ""  # preset keys: benchmark:NAME, or the format
        if by == "pooled":
            value = choices[0].spec
        else:
            value = {f"{prefix}{c.group}": c.spec for c in choices}
            value.update({c.group: c.spec for c in fallback})
            value["*"] = "none"
        meta = {
            "chosen_on": "dev split",
            "max_loss_pts": max_loss,
            "by": by,
            "bound": f"one-sided {bound_level} Clopper-Pearson upper bound on early-stop regret",
            "confidence": confidence,
            "answer_scorer": "cross-fitted (out-of-fold per problem)" if cross_fitted else "shipped (in-sample on dev)",
            "date": _dt.date.today().isoformat(),
            "groups": [c.to_json() for c in [*choices, *fallback]],
        }
        fronts: dict[str, list[Score]] = {f"{prefix}{g}": regret_frontier(scs) for g, scs in frontier.items()}
        fronts.update({g: regret_frontier(scs) for g, scs in fmt_frontier.items()})
        path, doc = write_preset(name, value, meta, presets_file,
                                 {"frontier": {g: [asdict(sc) for sc in f] for g, f in fronts.items()}})
    if as_json:
        click.echo(json.dumps(doc))
        return
    click.echo(f"{'group':10s} {'n':>5s} {'saved':>7s} {'loss':>7s} {'regret':>6s} "
               f"{'ucb':>6s} {'oracle':>7s}  chosen configuration")
    for c in [*choices, *fallback]:
        sc = c.score
        flag = "" if c.bound_applied else "  (small group: point estimate only)"
        if by == "benchmark" and not c.bound_applied and c in choices:
            flag = ("  (too small for the bound: the format's choice, which loses at most "
                    "max(PTS, one trace) here, with no regret)" if c.spec != "none" else
                    "  (too small for the bound: the format's choice has a regret here, or loses "
                    "more than max(PTS, one trace))")
        click.echo(f"{c.group:10s} {sc.n:5d} {100 * sc.saved:6.1f}% {sc.loss_pts:+6.2f}p {sc.regret:6d} "
                   f"{sc.regret_ucb_pts:5.2f}p {100 * sc.oracle_saved:6.1f}%  {c.spec}{flag}")
    if show_frontier:
        for g, f in fronts.items():
            click.echo(f"\n{g}: the most thinking tokens saved for each number of early-stop regrets (dev)")
            click.echo(f"{'regret':>6s} {'ucb':>6s} {'loss':>7s} {'saved':>7s}  configuration")
            for sc in f:
                click.echo(f"{sc.regret:6d} {sc.regret_ucb_pts:5.2f}p {sc.loss_pts:+6.2f}p "
                           f"{100 * sc.saved:6.1f}%  {sc.spec}")
    click.echo(f"\nwrote preset {name!r} to {path}; use it with: tracestop eval --policy {name}")
    warn(f"bound: one-sided {bound_level} Clopper-Pearson upper bound on the early-stop regret rate")

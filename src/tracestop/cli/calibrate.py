"""``tracestop calibrate``: choose policy parameters on dev under an accuracy budget."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict
from typing import TYPE_CHECKING

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
from tracestop.errors import ConfigError

if TYPE_CHECKING:
    from tracestop.evaluate.calibrate import GroupBy


@click.command("calibrate")
@click.option("--max-loss", "max_loss", type=float, required=True, metavar="PTS",
              help="Accuracy loss allowed against full generation, in points (e.g. 1.0).")
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
def calibrate_command(max_loss: float, data: str | None, benchmarks: tuple[str, ...],
                      models: tuple[str, ...], confidence: float, by: GroupBy, grid: tuple[str, ...],
                      budget_caps: bool, name: str,
                      presets_file: str | None, tagger: str | None, workers: int | None,
                      show_frontier: bool, as_json: bool) -> None:
    """Search policy parameters on the dev split and write the configuration that saves the
    most thinking tokens while losing at most --max-loss accuracy points as a named preset
    (usable as `tracestop eval --policy NAME`)."""
    from tracestop.evaluate.calibrate import (
        Choice,
        Score,
        adopt_format_choice,
        calibrate,
        default_grid,
        regret_frontier,
    )
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.oracle import EVAL_POLICIES, parse_eval_policy
    from tracestop.evaluate.replay import cross_fitting, prepare_many
    from tracestop.presets import presets_path, save_preset

    bound_level = f"{100 * confidence:g}%"
    # where the preset goes is checked before any work (a calibration takes minutes)
    check_out_file(presets_path(presets_file), "--presets-file" if presets_file else
                   "the presets file ($TRACESTOP_PRESETS or the default)")
    with errors_to_click("`tracestop calibrate`"):
        if not 0 <= max_loss <= 100:
            raise ConfigError(f"--max-loss must be between 0 and 100 points, got {max_loss}")
        if name in EVAL_POLICIES:
            raise ConfigError(f"--name {name!r} is a policy name; choose another preset name")
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
        path = save_preset(name, value, meta, presets_file)
        fronts: dict[str, list[Score]] = {f"{prefix}{g}": regret_frontier(scs) for g, scs in frontier.items()}
        fronts.update({g: regret_frontier(scs) for g, scs in fmt_frontier.items()})
    doc = {"preset": name, "value": value, "written_to": str(path), **meta,
           "frontier": {g: [asdict(sc) for sc in f] for g, f in fronts.items()}}
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

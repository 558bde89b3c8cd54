"""``tracestop report``: a static HTML report of the replayed traces (and the behaviour shift)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import click

from tracestop.cli._common import (
    benchmark_option,
    check_out_dir,
    check_out_file,
    data_option,
    errors_to_click,
    model_option,
    progress_bar,
    require,
    tagger_option,
    warn,
    workers_option,
)
from tracestop.evaluate.data import Split, Trace, data_dir, load_traces
from tracestop.evaluate.forced import load_forced
from tracestop.report.shift import SHIFT_GROUPS


def _limit(traces: list[Trace], limit: int | None) -> list[Trace]:
    """The first ``limit`` traces (by id) of each benchmark × model."""
    if not limit:
        return traces
    groups: dict[tuple[str, str], list[Trace]] = defaultdict(list)
    for t in sorted(traces, key=lambda t: t.id):
        if len(groups[(t.benchmark, t.model)]) < limit:
            groups[(t.benchmark, t.model)].append(t)
    return [t for g in groups.values() for t in g]


@click.command("report")
@data_option
@click.option("--split", type=click.Choice(["dev", "test", "all"]), default="all", show_default=True,
              help="Which problems: dev, test or all.")
@click.option("--policy", "policies", multiple=True, metavar="SPEC",
              help="Policy spec to show (repeatable). Default: the 'default' preset. "
                   "'none' and 'oracle' are always added.")
@benchmark_option
@model_option
@click.option("--out", type=click.Path(file_okay=False), default="tracestop-report", show_default=True,
              help="Output folder for the HTML pages.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="At most N traces per benchmark × model (quick looks).")
@tagger_option
@workers_option
@click.option("--page-size", type=click.IntRange(min=1), default=200, show_default=True,
              help="Rows per page of the trace list.")
@click.option("--shift-only", is_flag=True,
              help="Only compute the behaviour-shift table (no HTML); print it.")
@click.option("--markdown", is_flag=True, help="With --shift-only: print the table as Markdown.")
@click.option("--figure", type=click.Path(dir_okay=False), default=None,
              help="With --shift-only: also write the behaviour-shift figure (PNG, or SVG by suffix).")
@click.option("--shift-by", type=click.Choice(SHIFT_GROUPS), default="family", show_default=True,
              help="With --shift-only: one column pair per model family or per benchmark.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (summary) at the end.")
def report_command(data: str | None, split: Split, policies: tuple[str, ...], benchmarks: tuple[str, ...],
                   models: tuple[str, ...], out: str, limit: int | None, tagger: str | None,
                   workers: int | None, page_size: int, shift_only: bool, markdown: bool,
                   figure: str | None, shift_by: str, as_json: bool) -> None:
    """Write a static HTML report (opens from disk, no network): per benchmark × model accuracy
    and tokens, a page per trace with coloured steps and stop markers, the accuracy–tokens
    frontier and the behaviour shift. Prints the path of index.html."""
    # optional dependencies and output paths are checked before any work
    if shift_only:
        if figure:
            require("`tracestop report --figure`", "matplotlib")
            check_out_file(figure, "--figure")
    else:
        require("`tracestop report`", "jinja2", "matplotlib")
        check_out_dir(out, "--out")
    from tracestop.evaluate.replay import policy_specs
    from tracestop.report.build import build_report
    from tracestop.report.build import shift_only as run_shift
    from tracestop.report.shift import plot_shift

    with errors_to_click("`tracestop report`"):
        policy_specs(list(policies) or ["default"])  # a bad spec fails before any work
        root = data_dir(data)
        ts = load_traces(root, benchmarks=benchmarks, models=models, split=split)
        for p in ts.problems[:10]:
            warn(f"warning: skipped {p}")
        traces = _limit(ts.traces, limit)
        with progress_bar(len(traces), "report") as advance:
            if shift_only:
                table = run_shift(traces, tagger=tagger, workers=workers, progress=advance, by=shift_by)
            else:
                # forced-answer points, read once for the whole report (none: nothing new shows)
                forced = load_forced(root, required=False)
                res = build_report(traces, out, policies, tagger=tagger, workers=workers,
                                   progress=advance, page_size=page_size, split=split,
                                   excluded=dict(ts.excluded), forced=forced)
    if shift_only:
        if figure:
            path = Path(figure)
            path.parent.mkdir(parents=True, exist_ok=True)
            with errors_to_click("`tracestop report --figure`"):
                data_ = plot_shift(table, fmt="svg" if path.suffix == ".svg" else "png")
            path.write_bytes(data_)
            warn(f"wrote {path}")
        if as_json:
            click.echo(json.dumps(table.to_json()))
        else:
            click.echo(table.to_markdown() if markdown else table.to_markdown().replace("**", ""))
        return
    if as_json:
        click.echo(json.dumps(res.to_json()))
    else:
        n = sum(1 for r in res.results if not r.excluded)
        warn(f"{n} traces reported ({len(res.results) - n} excluded), {res.pages} list page(s)")
        click.echo(str(res.index.resolve()))

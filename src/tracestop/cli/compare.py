"""``tracestop compare``: a preset against the best baseline settings at the same accuracy."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import click

from tracestop.cli._common import (
    benchmark_option,
    data_option,
    errors_to_click,
    progress_bar,
    workers_option,
)
from tracestop.cli.evaluate import answer_option, forced_subset

if TYPE_CHECKING:
    from tracestop.evaluate.data import Split
    from tracestop.evaluate.replay import AnswerMode

BUDGETS = (250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000)
CONSISTENCY = (2, 3, 4, 5)


def compare(preps: list[Any], preset: str, presets: dict[str, Any],
            answer: AnswerMode = "stated") -> list[dict[str, Any]]:
    """Per benchmark (models pooled): the preset, and for ``budget`` and ``consistency`` the
    setting that saves the most thinking tokens with at least the preset's accuracy (chosen on
    the very traces reported, which favours the baselines). ``answer``: how stops are graded."""
    from tracestop.evaluate.replay import apply_policy
    from tracestop.evaluate.tally import Tally

    groups: dict[str, list[Any]] = defaultdict(list)
    for p in preps:
        if not p.result.excluded:
            groups[p.result.benchmark].append(p)
    rows = []
    for bench in sorted(groups):
        ps = groups[bench]
        acc_full = sum(p.result.correct_full for p in ps) / len(ps)

        def run(spec: str, ps: list[Any] = ps) -> tuple[float, float]:
            t = Tally.of((o.correct, p.result.correct_full, o.tokens, p.result.tokens_full)
                         for p in ps for o in [apply_policy(p, spec, presets, answer)])
            return t.accuracy, t.saved

        acc, saved = run(preset)
        oracle = run("oracle")[1]
        row: dict[str, Any] = {
            "benchmark": bench, "n": len(ps), "accuracy_full": acc_full,
            "preset": preset, "accuracy": acc, "saved": saved, "oracle_saved": oracle,
            "oracle_captured": saved / oracle if oracle > 0 else None,
        }
        for family, specs in (("budget", [f"budget:tokens={t}" for t in BUDGETS]),
                              ("consistency", [f"consistency:k={k}" for k in CONSISTENCY])):
            best = None
            for spec in specs:
                a, s = run(spec)
                if a >= acc - 1e-9 and (best is None or s > best[2]):
                    best = (spec, a, s)
            row[family] = None if best is None else {"spec": best[0], "accuracy": best[1], "saved": best[2]}
        rows.append(row)
    return rows


@click.command("compare")
@data_option
@click.option("--split", type=click.Choice(["dev", "test", "all"]), default="test", show_default=True)
@click.option("--policy", "preset", default="default", show_default=True, metavar="SPEC",
              help="The policy or preset to compare.")
@benchmark_option
@workers_option
@answer_option
@click.option("--json", "as_json", is_flag=True)
def compare_command(data: str | None, split: Split, preset: str, benchmarks: tuple[str, ...],
                    workers: int | None, answer: AnswerMode, as_json: bool) -> None:
    """Thinking tokens saved by a preset against the best budget and the best consistency
    setting that reach at least its accuracy, per benchmark (models pooled)."""
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.replay import policy_specs, prepare_many
    from tracestop.presets import load_presets

    with errors_to_click():
        presets = load_presets()
        policy_specs([preset], presets)
        root = data_dir(data)
        ts = load_traces(root, benchmarks=benchmarks, split=split)
        traces = list(ts.traces)
        forced_info = None
        if answer == "forced":
            forced, traces, forced_info = forced_subset(root, traces)
        with progress_bar(len(traces), "compare") as advance:
            preps = prepare_many(traces, workers=workers, progress=advance)
        if answer == "forced":
            for p in preps:
                p.forced = forced.get(p.result.id)
        rows = compare(preps, preset, presets, answer)
    if as_json:
        click.echo(json.dumps({"split": split, "answer": answer, "forced": forced_info, "rows": rows}))
        return

    def cell(b: dict[str, Any] | None) -> str:
        return "none reaches it" if b is None else f"{100 * b['saved']:5.1f}% ({b['spec']}, acc {b['accuracy']:.3f})"

    left = f", {forced_info['left_out']} traces without forced points left out" if forced_info else ""
    click.echo(f"split: {split}; answers: {answer}{left}; thinking tokens saved at the preset's "
               "accuracy or better (models pooled)\n")
    click.echo("| benchmark | n | acc full | " + preset + " acc | " + preset
               + " saved | oracle saved | captured | best budget | best consistency |")
    click.echo("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cap = "-" if r["oracle_captured"] is None else f"{100 * r['oracle_captured']:.0f}%"
        click.echo(f"| {r['benchmark']} | {r['n']} | {r['accuracy_full']:.3f} | {r['accuracy']:.3f} | "
                   f"{100 * r['saved']:.1f}% | {100 * r['oracle_saved']:.1f}% | {cap} | "
                   f"{cell(r['budget'])} | {cell(r['consistency'])} |")

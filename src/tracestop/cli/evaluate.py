"""``tracestop eval``: replay the recorded traces and report accuracy against tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tracestop.answers import CandidateMode
from tracestop.cli._common import (
    benchmark_option,
    check_out_dir,
    data_option,
    errors_to_click,
    model_option,
    progress_bar,
    tagger_option,
    warn,
    workers_option,
)
from tracestop.evaluate.data import Split, as_split, data_dir, load_traces
from tracestop.evaluate.replay import (
    ANSWER_MODES,
    AnswerMode,
    TraceResult,
    cross_fitting,
    policy_specs,
    replay_many,
)
from tracestop.evaluate.summary import summarise
from tracestop.monitor import MonitorConfig
from tracestop.tokens import counter_for

#: ``--answer``: how a stop is graded (shared by eval, compare and calibrate)
answer_option = click.option(
    "--answer", "answer", type=click.Choice(list(ANSWER_MODES)), default="stated", show_default=True,
    help="Grade a stop by the answer stated before the cut (stated), or by the answer forced "
         "from the prefix as recorded in DATA/forced/*.jsonl (forced: only traces with forced "
         "points; the oracle row is the forced oracle).")


def forced_subset(root: Path, traces: list[Any]) -> tuple[Any, list[Any], dict[str, Any]]:
    """The forced-answer points, the traces that have them, and what was left out (for the
    JSON document and the message)."""
    from tracestop.evaluate.forced import load_forced

    forced = load_forced(root)
    kept = [t for t in traces if t.id in forced]
    info = {"files": [Path(f).name for f in forced.files], "replayed": len(kept),
            "left_out": len(traces) - len(kept)}
    warn(f"answer mode forced: {len(kept)} traces with forced points replayed, "
         f"{len(traces) - len(kept)} without them left out")
    return forced, kept, info


def run_eval(
    data: str | None,
    split: str,
    policies: tuple[str, ...],
    benchmarks: tuple[str, ...],
    models: tuple[str, ...],
    tagger: str | None = None,
    workers: int | None = None,
    show_progress: bool | None = None,
    candidates: CandidateMode = "scored",
    answer: AnswerMode = "stated",
) -> tuple[dict[str, Any], list[TraceResult]]:
    """The eval job as a function: the JSON document and the per-trace results. ``answer``:
    how a stop is graded (``forced``: only traces with forced points are replayed)."""
    from tracestop.presets import load_presets

    presets = load_presets()
    specs = policy_specs(list(policies) or ["default"], presets)
    root = data_dir(data)
    ts = load_traces(root, benchmarks=benchmarks, models=models, split=as_split(split))
    for p in ts.problems[:10]:
        warn(f"warning: skipped {p}")
    if len(ts.problems) > 10:
        warn(f"warning: {len(ts.problems) - 10} more malformed lines skipped")
    traces = list(ts.traces)
    forced = None
    forced_info: dict[str, Any] | None = None
    if answer == "forced":
        forced, traces, forced_info = forced_subset(root, traces)
    with progress_bar(len(traces), "eval", show_progress) as advance:
        results = replay_many(traces, specs, tagger=tagger, workers=workers, progress=advance,
                              presets=presets, config=MonitorConfig(candidates=candidates),
                              answer=answer, forced=forced)
    excluded = dict(ts.excluded)
    for r in results:
        if r.excluded:
            excluded[r.excluded] = excluded.get(r.excluded, 0) + 1
    counter = counter_for(None)
    doc = {
        "tokenizer": f"{counter.name}: exact for Qwen-family models (R1-Distill-Qwen, QwQ); "
        "an approximation for Llama- and Gemma-based models",
        "split": split,
        "answer": answer,
        "candidates": candidates,
        "answer_scorer": "dev-split traces: out-of-fold models (the scorer is trained on dev); "
        "others: the shipped model" if cross_fitting() else "the shipped model",
        "policies": {s: presets.get(s, s) for s in specs},
        "excluded": dict(sorted(excluded.items())),
        "n_traces": sum(1 for r in results if not r.excluded),
        "results": summarise(results, specs),
    }
    if forced_info is not None:
        doc["forced"] = forced_info
    return doc, results


def write_decisions(results: list[TraceResult], out: Path) -> Path:
    """Per-trace decisions as JSONL, one line per trace × policy."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "decisions.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for r in results:
            if r.excluded:
                continue
            f.writelines(json.dumps({
                    "trace_id": r.id, "benchmark": r.benchmark, "model": r.model, "split": r.split,
                    "policy": o.policy, "stopped": o.stopped, "stop_step": o.step,
                    "n_steps": r.n_steps, "reason": o.reason, "predicted": o.predicted,
                    "gold": r.gold, "correct": o.correct, "correct_full": r.correct_full,
                    "tokens": o.tokens, "tokens_full": r.tokens_full,
                    "total_tokens": o.total_tokens,
                    "total_tokens_full": r.tokens_full + r.answer_tokens,
                }) + "\n" for o in r.outcomes.values())
    return path


def format_table(doc: dict[str, Any]) -> str:
    """A plain-text table, one row per benchmark × model × policy."""
    head = ("benchmark", "model", "policy", "n", "acc", "acc full", "Δ pts", "saved", "total saved",
            "oracle", "captured", "regret")
    rows = []
    for r in doc["results"]:
        cap = r["oracle_captured"]
        rows.append((
            r["benchmark"], r["model"], r["policy"], str(r["n"]), f"{r['accuracy']:.3f}",
            f"{r['accuracy_full']:.3f}", f"{r['delta_pts']:+.1f}", f"{100 * r['saved']:.1f}%",
            f"{100 * r['total_saved']:.1f}%", f"{100 * r['oracle_saved']:.1f}%",
            "-" if cap is None else f"{100 * cap:.0f}%", f"{100 * r['regret']:.1f}%",
        ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    ex = ", ".join(f"{k}: {v}" for k, v in doc["excluded"].items()) or "none"
    forced = doc.get("forced")
    left = (f"; answers: forced ({forced['left_out']} traces without forced points left out)"
            if forced else "; answers: stated (the last candidate stated before each stop)")
    lines += ["", f"split: {doc['split']}; traces: {doc['n_traces']}; excluded: {ex}{left}",
              f"tokens: {doc['tokenizer']}"]
    return "\n".join(lines)


@click.command("eval")
@data_option
@click.option("--split", type=click.Choice(["dev", "test", "all"]), default="test", show_default=True,
              help="Which problems: dev (tuning), test (reported numbers) or all.")
@click.option("--policy", "policies", multiple=True, metavar="SPEC",
              help="Policy spec, e.g. traces-shift:window=4,delta=0.75 (repeatable). "
                   "Default: the 'default' preset. 'none' and 'oracle' are always added.")
@benchmark_option
@model_option
@tagger_option
@workers_option
@click.option("--candidates", type=click.Choice(["scored", "tagged", "never", "always"]),
              default="scored", show_default=True,
              help="Which values stated in prose count as candidate answers: those the answer "
                   "scorer or the tagger vouches for, the tagger only, none, or all.")
@answer_option
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Also write per-trace decisions (decisions.jsonl) and the summary here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_command(data: str | None, split: Split, policies: tuple[str, ...], benchmarks: tuple[str, ...],
                 models: tuple[str, ...], tagger: str | None, workers: int | None,
                 candidates: CandidateMode, answer: AnswerMode, out: str | None, as_json: bool) -> None:
    """Replay the recorded traces and report accuracy against thinking tokens per
    benchmark × model × policy (with full generation and the oracle). Dev-split traces are
    scored by the answer scorer's out-of-fold models (it is trained on dev)."""
    if out:
        check_out_dir(out, "--out")  # before any work
    with errors_to_click("`tracestop eval`"):
        doc, results = run_eval(data, split, policies, benchmarks, models, tagger, workers,
                                candidates=candidates, answer=answer)
    if not doc["n_traces"]:
        why = ", ".join(f"{k}: {v}" for k, v in doc["excluded"].items()) or "no trace matched"
        raise click.ClickException(f"no trace left to evaluate ({why})")
    if out:
        path = write_decisions(results, Path(out))
        (Path(out) / "summary.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
        warn(f"wrote {path} and {Path(out) / 'summary.json'}")
    if as_json:
        click.echo(json.dumps(doc))
    else:
        click.echo(format_table(doc))

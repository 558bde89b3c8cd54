"""Honest cross-validation of the step tagger: what a user gets on traces it has not seen.

    python -m tracestop.lab.honest [--scheme problem|family] [--folds 5] [--json]

- **Data**: every hand-labelled step, the shared labels (``data/labels/reasontype-dev.jsonl``)
  and the repository's ``labels/*.jsonl`` (mid-trace sets included), pooled.
- **Folds**: ``problem`` (default): k folds grouped by *problem* (benchmark and question id,
  across models), so no question is in both a training and a test fold. ``family``:
  leave-one-model-family-out (Gemma, R1-distill Qwen, R1-distill Llama, QwQ), the training
  set also stripped of the test family's problems: no model family and no problem is seen.
- **Features as at run time**: training steps carry the run-time ``states_answer`` flag (the
  ``AnswerReader.states_answer`` verdict: an explicit statement found by
  ``tracestop.answers.extract_candidate`` with the options of the prompt the model saw), never
  the gold flag, and the run-time question (the prompt for multiple choice); the previous type
  is the gold one (teacher forcing; the test side is not).
- **Test**: each labelled trace is fed whole from step 0 to a ``Monitor`` (policy ``none``,
  built as ``tracestop.evaluate.replay.prepare`` builds it, cut-off traces included) that uses
  the fold's tagger: the previous type is the tagger's own prediction and ``states_answer``
  the reader's verdict. The labelled steps are scored: type and role accuracy, and
  states-answer P / R / F1 of the Monitor's candidates (``candidates_by_step``: a step states
  an answer when the Monitor yields a candidate credited to it).
- Rows per source (model × benchmark) and overall; the rules tagger runs through the same
  Monitors as the baseline.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tracestop._types import StepType
from tracestop.lab.labels import Example, load_extra_labels, load_labels
from tracestop.lab.quality import binary_metrics, group_folds
from tracestop.tag.base import Tagger

__all__ = [
    "FAMILIES",
    "family_of",
    "honest_cv",
    "load_runtime_examples",
    "problem_of",
    "runtime_examples",
    "source_of",
]

Scheme = Literal["problem", "family"]

#: Model families (substring of the model name → family), first match wins.
FAMILIES: tuple[tuple[str, str], ...] = (
    ("gemma", "gemma"),
    ("distill-llama", "r1-llama"),
    ("distill-qwen", "r1-qwen"),
    ("qwq", "qwq"),
)


def family_of(trace_id: str) -> str:
    """The model family of a trace id (``src:model:bench:qid``)."""
    model = trace_id.split(":")[1] if ":" in trace_id else trace_id
    for key, fam in FAMILIES:
        if key in model:
            return fam
    return model


def problem_of(trace_id: str) -> str:
    """The problem of a trace id: its benchmark and question id, without the model.
    (``mmlu-pro-matched`` controls share the ``mmlu-pro`` question.)"""
    parts = trace_id.split(":")
    if len(parts) < 4:
        return trace_id
    return parts[2].removesuffix("-matched") + ":" + ":".join(parts[3:])


def source_of(trace_id: str) -> str:
    """model × benchmark."""
    parts = trace_id.split(":")
    return ":".join(parts[1:3]) if len(parts) >= 3 else trace_id


def _runtime_question(trace: Any, fmt: str) -> str:
    prompt = trace.meta.get("prompt")
    return prompt if fmt == "choice" and isinstance(prompt, str) and prompt else str(trace.question)


def runtime_examples(examples: Sequence[Example], traces: dict[str, Any]) -> list[Example]:
    """``examples`` with the run-time context: ``states_answer`` = the answer reader's flag
    (the gold flag moves to ``sa_label``) and the question the Monitor is given."""
    from tracestop.answers import extract_candidate, infer_format
    from tracestop.answers.question import QuestionFacts
    facts: dict[str, tuple[str, str, dict[str, str]]] = {}
    out: list[Example] = []

    def strong(text: str, fmt: str, options: dict[str, str]) -> bool:
        found = extract_candidate(text, fmt, options)  # type: ignore[arg-type]
        return found is not None and found[1] != "conclusion"

    for ex in examples:
        t = traces.get(ex.trace_id)
        if t is None:
            continue
        if ex.trace_id not in facts:
            f = infer_format(t.question, t.benchmark)
            q = _runtime_question(t, f)
            facts[ex.trace_id] = (f, q, dict(QuestionFacts.read(q, f).options))
        fmt, q, options = facts[ex.trace_id]
        ctx = replace(ex.context, states_answer=strong(ex.text, fmt, options), question=q)
        out.append(replace(ex, context=ctx, sa_label=ex.gold_states_answer))
    return out


def load_runtime_examples(data: Path | str, extra: Path | str | None
                          ) -> tuple[list[Example], dict[str, Any]]:
    """Every hand-labelled step (the shared labels, plus ``extra/*.jsonl``) with the run-time
    context (``runtime_examples``), and the labelled traces by id."""
    from tracestop.evaluate.data import load_traces

    data = Path(data)
    tdir = data / "traces"
    shared = load_labels(data / "labels" / "reasontype-dev.jsonl", tdir)
    examples = list(shared)
    if extra is not None:
        examples += load_extra_labels(extra, tdir, {ex.trace_id for ex in shared})
    ids = {ex.trace_id for ex in examples}
    traces = {t.id: t for t in load_traces(data, require_gold=False).traces if t.id in ids}
    return runtime_examples(examples, traces), traces


def monitor_predictions(tagger: Tagger, trace: Any) -> tuple[list[StepType], set[int]]:
    """Each step's type and the steps credited with a candidate, ``trace`` fed whole from
    step 0 to a Monitor with ``tagger`` (as ``tracestop.evaluate.replay.prepare``)."""
    from tracestop.answers import infer_format
    from tracestop.evaluate.replay import out_of_fold_scorer
    from tracestop.monitor import Monitor, MonitorConfig
    from tracestop.policies import Never, candidates_by_step
    from tracestop.tokens import counter_for

    fmt = infer_format(trace.question, trace.benchmark)
    config = MonitorConfig()
    if trace.split == "dev":
        config = replace(config, answer_scorer=out_of_fold_scorer(trace.question))
    m = Monitor(Never(), tagger=tagger, question=_runtime_question(trace, fmt),
                answer_format=fmt, model=trace.model, count_tokens=counter_for(trace.model),
                config=config)
    m.feed(trace.trace)
    m.end()
    return [r.tagged.tag.type for r in m.records], set(candidates_by_step(m.records))


def _folds(trace_ids: Sequence[str], scheme: Scheme, folds: int, seed: int
           ) -> list[tuple[str, set[str], set[str]]]:
    """(name, test traces, train traces) per fold."""
    ids = list(dict.fromkeys(trace_ids))
    out: list[tuple[str, set[str], set[str]]] = []
    if scheme == "problem":
        fold = group_folds([problem_of(t) for t in ids], folds, seed)
        for k in range(folds):
            test = {t for t, f in zip(ids, fold, strict=True) if f == k}
            out.append((f"problems {k}", test, set(ids) - test))
        return out
    for fam in sorted({family_of(t) for t in ids}):
        test = {t for t in ids if family_of(t) == fam}
        probs = {problem_of(t) for t in test}
        train = {t for t in ids if family_of(t) != fam and problem_of(t) not in probs}
        out.append((f"family {fam}", test, train))
    return out


def _row(gold_t: list[str], pred_t: list[str], gold_sa: list[bool], pred_sa: list[bool]
         ) -> dict[str, Any]:
    n = len(gold_t)
    role = [StepType(x).role for x in gold_t]
    prole = [StepType(x).role for x in pred_t]
    sa = binary_metrics(gold_sa, pred_sa)
    return {
        "n": n,
        "type_acc": sum(a == b for a, b in zip(gold_t, pred_t, strict=True)) / n if n else 0.0,
        "role_acc": sum(a == b for a, b in zip(role, prole, strict=True)) / n if n else 0.0,
        "sa_f1": sa["f1"], "sa_precision": sa["precision"], "sa_recall": sa["recall"],
        "sa_support": sa["support"],
    }


def honest_cv(data: Path | str, extra: Path | str | None, scheme: Scheme = "problem",
              folds: int = 5, seed: int = 0, taggers: Sequence[str] = ("rules", "linear"),
              fit_kwargs: dict[str, Any] | None = None, log: Any = None) -> dict[str, Any]:
    """Honest CV (module docstring). Returns per tagger: ``overall`` and ``sources`` rows
    (n, type_acc, role_acc, sa_f1 / precision / recall / support) and the ``folds``."""
    from tracestop.lab.train import DEFAULT_C, fit
    from tracestop.tag.linear import LinearTagger
    from tracestop.tag.rules import RuleTagger

    examples, traces = load_runtime_examples(data, extra)
    by_trace: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_trace[ex.trace_id].append(ex)
    plan = _folds([ex.trace_id for ex in examples], scheme, folds, seed)
    report: dict[str, Any] = {"scheme": scheme, "folds": [p[0] for p in plan], "seed": seed,
                              "n_steps": len(examples), "n_traces": len(by_trace),
                              "taggers": {}}
    for name in taggers:
        rows: dict[str, list[Any]] = defaultdict(lambda: [[], [], [], []])
        for fold_name, test, train in plan:
            if name == "rules":
                model: Tagger = RuleTagger()
            else:
                tr = [ex for ex in examples if ex.trace_id in train]
                model = LinearTagger(weights=fit(tr, c=DEFAULT_C, seed=seed, **(fit_kwargs or {})))
            for tid in sorted(test):
                types, stated = monitor_predictions(model, traces[tid])
                for ex in by_trace[tid]:
                    if ex.context.index >= len(types):
                        continue
                    for key in ("all", source_of(tid)):
                        r = rows[key]
                        r[0].append(ex.label.value)
                        r[1].append(types[ex.context.index].value)
                        r[2].append(ex.gold_states_answer)
                        r[3].append(ex.context.index in stated)
            if log is not None:
                log(f"{name}: {fold_name} done ({len(test)} test traces, {len(train)} train)")
        report["taggers"][name] = {k: _row(*v) for k, v in sorted(rows.items())}
    return report


def format_report(report: dict[str, Any]) -> str:
    """A markdown table: one row per source, type / role accuracy and states-answer F1 per
    tagger."""
    names = list(report["taggers"])
    head = "| source | steps | " + " | ".join(
        f"{n} type | {n} role | {n} SA F1 (P/R)" for n in names) + " |"
    title = (f"honest CV, scheme={report['scheme']} ({len(report['folds'])} folds, seed "
             f"{report['seed']}), {report['n_steps']} steps / {report['n_traces']} traces")
    out = [title, "", head, "|" + "---|" * (2 + 3 * len(names))]
    first = report["taggers"][names[0]]
    keys = [k for k in first if k != "all"] + ["all"]
    for k in keys:
        cells = [f"**{k}**" if k == "all" else k, str(first[k]["n"])]
        for n in names:
            r = report["taggers"][n][k]
            sa = (f"{r['sa_f1']:.3f} ({r['sa_precision']:.2f}/{r['sa_recall']:.2f}, "
                  f"{r['sa_support']})" if r["sa_support"] else "–")
            cells += [f"{r['type_acc']:.3f}", f"{r['role_acc']:.3f}", sa]
        out.append("| " + " | ".join(cells) + " |")
    if len(keys) > 2:
        for n in names:
            src = [report["taggers"][n][k] for k in keys if k != "all"]
            out.append(f"\n{n}: macro over {len(src)} sources: type "
                       f"{np.mean([r['type_acc'] for r in src]):.3f}, role "
                       f"{np.mean([r['role_acc'] for r in src]):.3f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m tracestop.lab.honest [--scheme problem|family] [--tagger ...] [--json]``."""
    import argparse
    import json
    import os
    import sys

    root = Path(__file__).resolve().parents[3]
    ap = argparse.ArgumentParser(description="honest cross-validation of the step tagger")
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("TRACESTOP_DATA", root / ".." / "shared" / "data")))
    ap.add_argument("--extra", type=Path, default=root / "labels")
    ap.add_argument("--no-extra", action="store_true")
    ap.add_argument("--scheme", choices=("problem", "family"), default="problem")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tagger", action="append", choices=("rules", "linear"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    report = honest_cv(a.data, None if a.no_extra else a.extra, a.scheme, a.folds, a.seed,
                       a.tagger or ("rules", "linear"),
                       log=lambda s: print(s, file=sys.stderr, flush=True))
    print(json.dumps(report, indent=1) if a.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

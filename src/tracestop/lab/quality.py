"""Honest quality figures for the taggers: grouped cross-validation by ``trace_id``.

No trace is in both the train and the test folds. Test steps are tagged in trace order with
``previous`` set to the tagger's own previous prediction (what the Monitor gives at run
time), and ``states_answer`` taken from the gold label (``"gold"``), from the answer
extractor (``"derived"``, ``tracestop.answers.extract_candidate`` when it exists, else
False) or always False (``"none"``). Training always uses the gold flag.

Extra labels (``labels/*.jsonl`` of the repository, ``extra_labels``) are added to every
training fold only: the test folds are always the shared labels, grouped by trace.

States-answer detection (does a step put forward a candidate answer to the whole question) is
scored on the same folds: the linear tagger's head (probability >= 0.5, fixed a priori, with
the extractor's verdict in the context) and, as the baseline, the answer extractor alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tracestop._types import Role, StepType
from tracestop.lab.labels import (
    answer_format,
    derived_flag,
    load_extra_labels,
    load_labels,
    load_weak,
)
from tracestop.lab.train import DEFAULT_C, fit
from tracestop.tag.base import TagContext, Tagger

__all__ = [
    "answer_format",
    "binary_metrics",
    "cross_validate",
    "derive_states_answer",
    "format_quality",
    "group_folds",
    "metrics",
]

AnswerMode = Literal["gold", "derived", "none"]
TYPE_LABELS: tuple[str, ...] = tuple(t.value for t in StepType)
ROLE_LABELS: tuple[str, ...] = tuple(r.value for r in Role)


def _extractor() -> Callable[[str, str], bool] | None:
    try:
        import tracestop.answers  # noqa: F401
    except ImportError:
        return None
    return derived_flag


def derive_states_answer(text: str, trace_id: str = "") -> bool | None:
    """Whether the answer extractor finds a candidate in ``text``; None without an extractor."""
    f = _extractor()
    return None if f is None else f(text, trace_id)


def group_folds(groups: Sequence[str], folds: int, seed: int = 0) -> list[int]:
    """Fold number per item; whole groups per fold, sizes balanced, shuffled by ``seed``."""
    uniq = list(dict.fromkeys(groups))
    if folds < 2 or folds > len(uniq):
        raise ValueError(f"folds must be in [2, {len(uniq)}] (number of traces), got {folds}")
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    sizes = {g: 0 for g in uniq}
    for g in groups:
        sizes[g] += 1
    order.sort(key=lambda g: -sizes[g])  # stable: ties keep the shuffled order
    load = [0] * folds
    fold_of: dict[str, int] = {}
    for g in order:
        k = int(np.argmin(load))
        fold_of[g] = k
        load[k] += sizes[g]
    return [fold_of[g] for g in groups]


def metrics(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 (over labels seen in gold or predictions), confusion, per class."""
    pos = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for g, p in zip(gold, pred, strict=True):
        cm[pos[g], pos[p]] += 1
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for i, lab in enumerate(labels):
        prec = tp[i] / predicted[i] if predicted[i] else 0.0
        rec = tp[i] / support[i] if support[i] else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[lab] = {"support": int(support[i]), "predicted": int(predicted[i]),
                          "precision": float(prec), "recall": float(rec), "f1": float(f1)}
        if support[i] or predicted[i]:
            f1s.append(f1)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "labels": list(labels),
        "confusion": cm.tolist(),
        "per_class": per_class,
    }


def binary_metrics(gold: Sequence[bool], pred: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of the positive class."""
    tp = sum(1 for g, p in zip(gold, pred, strict=True) if g and p)
    npred, ngold = sum(map(bool, pred)), sum(map(bool, gold))
    prec = tp / npred if npred else 0.0
    rec = tp / ngold if ngold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"f1": f1, "precision": prec, "recall": rec, "support": ngold, "predicted": npred}


def _tag_sequence(tagger: Tagger, items: Sequence[Any], mode: AnswerMode,
                  derive: Callable[[str, str], bool] | None,
                  sa_out: list[float] | None = None) -> list[str]:
    """Tag ``items`` in order (``previous`` = own prediction); with ``sa_out`` also append
    the linear tagger's states-answer probability (context flag = the extractor's verdict)."""
    out: list[str] = []
    prev: tuple[str, int, StepType] | None = None
    for ex in items:
        prev_type = (prev[2] if prev and prev[0] == ex.trace_id
                     and prev[1] == ex.context.index - 1 else None)
        if mode == "gold":
            states = ex.context.states_answer
        elif mode == "derived" and derive is not None:
            states = derive(ex.text, ex.trace_id)
        else:
            states = False
        ctx = TagContext(index=ex.context.index, previous=prev_type, states_answer=states,
                         question=ex.context.question)
        t = tagger.tag(ex.text, ctx).type
        if sa_out is not None:
            sa_ctx = TagContext(index=ex.context.index, previous=prev_type,
                                states_answer=ex.derived, question=ex.context.question)
            sa_out.append(tagger.states_answer(ex.text, sa_ctx))  # type: ignore[attr-defined]
        out.append(t.value)
        prev = (ex.trace_id, ex.context.index, t)
    return out


def cross_validate(labels_path: Path | str, tagger: str = "linear", folds: int = 5,
                   seed: int = 0, states_answer: AnswerMode = "gold",
                   weak_traces: Path | str | None = None, c: float | None = None,
                   extra_labels: Path | str | None = None,
                   traces_dir: Path | str | None = None,
                   fit_kwargs: dict[str, Any] | None = None,
                   progress: Callable[[int], None] | None = None,
                   ) -> dict[str, Any]:
    """Grouped (by ``trace_id``) k-fold figures for ``tagger`` ("linear" or "rules").

    For "linear" each fold retrains on the other folds, plus the extra labels of
    ``extra_labels`` (a folder of ``*.jsonl``, see ``tracestop.lab.labels.load_extra_labels``;
    traces of the shared labels are dropped from them) and weak labels from ``weak_traces``
    if given — both in every training fold, never in a test fold. Returns type and role
    metrics (``accuracy``, ``macro_f1``, ``confusion`` with ``labels`` order, ``per_class``
    counts), ``states_answer_f1`` / ``_precision`` / ``_recall`` (linear: its head at 0.5;
    rules: the extractor) with the extractor baseline in ``states_answer_baseline``, and the
    settings used. ``progress(1)`` is called after each fold.
    """
    from tracestop.tag.linear import LinearTagger
    from tracestop.tag.rules import RuleTagger

    if tagger not in ("linear", "rules"):
        raise ValueError(f"tagger must be 'linear' or 'rules', got {tagger!r}")
    labels_path = Path(labels_path)
    tdir = Path(traces_dir) if traces_dir is not None else labels_path.parent.parent / "traces"
    examples = load_labels(labels_path, tdir)
    fold = group_folds([ex.trace_id for ex in examples], folds, seed)
    weak = load_weak(weak_traces) if (weak_traces and tagger == "linear") else []
    extra = (load_extra_labels(extra_labels, tdir, {ex.trace_id for ex in examples})
             if extra_labels is not None else [])
    derive = _extractor() if states_answer == "derived" else None
    pred: list[str | None] = [None] * len(examples)
    sa_prob: list[float | None] = [None] * len(examples)
    for k in range(folds):
        test_i = [i for i, f in enumerate(fold) if f == k]
        sa_out: list[float] | None = None
        if tagger == "rules":
            model: Tagger = RuleTagger()
        else:
            train = [ex for ex, f in zip(examples, fold, strict=True) if f != k] + extra + weak
            model = LinearTagger(weights=fit(train, c=DEFAULT_C if c is None else c, seed=seed,
                                             **(fit_kwargs or {})))
            sa_out = []
        preds = _tag_sequence(model, [examples[i] for i in test_i], states_answer, derive,
                              sa_out)
        for j, (i, p) in enumerate(zip(test_i, preds, strict=True)):
            pred[i] = p
            if sa_out is not None:
                sa_prob[i] = sa_out[j]
        if progress is not None:
            progress(1)
    gold_t = [ex.label.value for ex in examples]
    pred_t = [p for p in pred if p is not None]
    gold_r = [StepType(g).role.value for g in gold_t]
    pred_r = [StepType(p).role.value for p in pred_t]
    gold_sa = [ex.context.states_answer for ex in examples]
    baseline = binary_metrics(gold_sa, [ex.derived for ex in examples])
    sa = (binary_metrics(gold_sa, [p is not None and p >= 0.5 for p in sa_prob])
          if tagger == "linear" else baseline)
    return {
        "tagger": tagger,
        "folds": folds,
        "seed": seed,
        "states_answer": ("derived" if derive is not None else "none")
        if states_answer == "derived" else states_answer,
        "weak_labels": len(weak),
        "extra_labels": len(extra),
        "extra_traces": len({ex.trace_id for ex in extra}),
        "n_steps": len(examples),
        "n_traces": len({ex.trace_id for ex in examples}),
        "type": metrics(gold_t, pred_t, TYPE_LABELS),
        "role": metrics(gold_r, pred_r, ROLE_LABELS),
        "states_answer_f1": sa["f1"],
        "states_answer_precision": sa["precision"],
        "states_answer_recall": sa["recall"],
        "states_answer_source": "linear head (p >= 0.5)" if tagger == "linear" else "extractor",
        "states_answer_baseline": {"source": "tracestop.answers.extract_candidate", **baseline},
    }


def _table(m: dict[str, Any], short: Callable[[str], str]) -> list[str]:
    """The confusion matrix (rows gold, columns predicted) with per-class counts and scores,
    as a ``rich`` table rendered to plain text (no colour, never wrapped)."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table

    labels = m["labels"]
    keep = [i for i, lab in enumerate(labels)
            if m["per_class"][lab]["support"] or m["per_class"][lab]["predicted"]]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("gold \\ pred")
    for i in keep:
        table.add_column(short(labels[i]), justify="right")
    for name in ("n", "prec", "rec", "f1"):
        table.add_column(name, justify="right")
    for i in keep:
        pc = m["per_class"][labels[i]]
        table.add_row(short(labels[i]), *(str(m["confusion"][i][j]) for j in keep),
                      str(pc["support"]), f"{pc['precision']:.2f}", f"{pc['recall']:.2f}",
                      f"{pc['f1']:.2f}")
    console = Console(file=io.StringIO(), width=400, color_system=None, highlight=False)
    with console.capture() as out:
        console.print(table)
    return [line.rstrip() for line in out.get().splitlines() if line.strip()]


def format_quality(report: dict[str, Any]) -> str:
    """A readable summary with both confusion matrices."""
    t, r = report["type"], report["role"]
    out = [
        (
            f"tagger={report['tagger']}  {report['folds']}-fold grouped CV by trace_id "
            f"(seed {report['seed']}), {report['n_steps']} steps / {report['n_traces']} "
            f"traces, states_answer={report['states_answer']}, "
            f"weak labels={report['weak_labels']}, extra labels={report.get('extra_labels', 0)}"
            f" ({report.get('extra_traces', 0)} traces, training folds only)"
        ),
        f"types: accuracy {t['accuracy']:.3f}  macro-F1 {t['macro_f1']:.3f}",
        f"roles: accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}",
        (
            f"states answer ({report['states_answer_source']}): "
            f"F1 {report['states_answer_f1']:.3f}"
            f"  precision {report['states_answer_precision']:.3f}"
            f"  recall {report['states_answer_recall']:.3f}"
            f"  (extractor baseline: F1 {report['states_answer_baseline']['f1']:.3f})"
        ),
        "",
        "type confusion (rows gold, columns predicted):",
    ]
    out += _table(t, lambda s: s[:5] if "_" not in s else "".join(p[:3] for p in s.split("_"))[:6])
    out += ["", "role confusion:"]
    out += _table(r, lambda s: s[:5])
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m tracestop.lab.quality [--tagger linear] [--states-answer gold] [--json]``."""
    import argparse
    import json
    import os

    root = Path(__file__).resolve().parents[3]
    data = Path(os.environ.get("TRACESTOP_DATA", root / ".." / "shared" / "data"))
    ap = argparse.ArgumentParser(description="grouped cross-validation of a step tagger")
    ap.add_argument("--labels", type=Path, default=data / "labels" / "reasontype-dev.jsonl")
    ap.add_argument("--tagger", choices=("linear", "rules"), default="linear")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--states-answer", choices=("gold", "derived", "none"), default="gold")
    ap.add_argument("--weak", action="store_true", help="add mapped weak labels (linear)")
    ap.add_argument("--extra", type=Path, default=root / "labels",
                    help="folder of extra labels (*.jsonl) added to every training fold")
    ap.add_argument("--no-extra", action="store_true", help="shared labels only")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    report = cross_validate(a.labels, a.tagger, a.folds, a.seed, a.states_answer,
                            weak_traces=data / "traces" if a.weak else None,
                            extra_labels=None if a.no_extra else a.extra)
    print(json.dumps(report, indent=1) if a.json else format_quality(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Honest quality figures for the taggers: grouped cross-validation by ``trace_id``.

No trace is in both the train and the test folds. Test steps are tagged in trace order with
``previous`` set to the tagger's own previous prediction (what the Monitor gives at run
time), and ``states_answer`` taken from the gold label (``"gold"``), from the answer
extractor (``"derived"``, ``tracestop.answers.extract_candidate`` when it exists, else
False) or always False (``"none"``). Training always uses the gold flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tracestop._types import Role, StepType
from tracestop.tag.base import TagContext, Tagger

__all__ = ["answer_format", "cross_validate", "derive_states_answer", "format_quality", "group_folds", "metrics"]

AnswerMode = Literal["gold", "derived", "none"]
TYPE_LABELS: tuple[str, ...] = tuple(t.value for t in StepType)
ROLE_LABELS: tuple[str, ...] = tuple(r.value for r in Role)


def answer_format(trace_id: str) -> str:
    """The answer format of a trace from its id's benchmark part (choice / yesno / math)."""
    parts = trace_id.split(":")
    bench = parts[2] if len(parts) > 2 else ""
    if bench.startswith(("gpqa", "mmlu")):
        return "choice"
    if "iphr" in bench:
        return "yesno"
    return "math"


def _extractor() -> Callable[[str, str], bool] | None:
    try:
        from tracestop.answers import extract_candidate
    except ImportError:
        return None

    def found(text: str, trace_id: str) -> bool:
        return extract_candidate(text, answer_format(trace_id)) is not None  # type: ignore[arg-type]

    return found


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


def _tag_sequence(tagger: Tagger, items: Sequence[Any], mode: AnswerMode,
                  derive: Callable[[str, str], bool] | None) -> list[str]:
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
        out.append(t.value)
        prev = (ex.trace_id, ex.context.index, t)
    return out


def cross_validate(labels_path: Path | str, tagger: str = "linear", folds: int = 5,
                   seed: int = 0, states_answer: AnswerMode = "gold",
                   weak_traces: Path | str | None = None, c: float | None = None,
                   ) -> dict[str, Any]:
    """Grouped (by ``trace_id``) k-fold figures for ``tagger`` ("linear" or "rules").

    For "linear" each fold retrains on the other folds (plus weak labels from
    ``weak_traces`` if given; those traces are never in the hand labels). Returns type and
    role metrics (``accuracy``, ``macro_f1``, ``confusion`` with ``labels`` order,
    ``per_class`` counts) and the settings used.
    """
    from tracestop.tag.linear import LinearTagger
    from tracestop.tag.rules import RuleTagger
    from tracestop.tag.train import DEFAULT_C, fit, load_labels, load_weak

    if tagger not in ("linear", "rules"):
        raise ValueError(f"tagger must be 'linear' or 'rules', got {tagger!r}")
    examples = load_labels(labels_path)
    fold = group_folds([ex.trace_id for ex in examples], folds, seed)
    weak = load_weak(weak_traces) if (weak_traces and tagger == "linear") else []
    derive = _extractor() if states_answer == "derived" else None
    pred: list[str | None] = [None] * len(examples)
    for k in range(folds):
        test_i = [i for i, f in enumerate(fold) if f == k]
        if tagger == "rules":
            model: Tagger = RuleTagger()
        else:
            train = [ex for ex, f in zip(examples, fold, strict=True) if f != k] + weak
            model = LinearTagger(weights=fit(train, c=DEFAULT_C if c is None else c, seed=seed))
        for i, p in zip(test_i, _tag_sequence(model, [examples[i] for i in test_i],
                                              states_answer, derive), strict=True):
            pred[i] = p
    gold_t = [ex.label.value for ex in examples]
    pred_t = [p for p in pred if p is not None]
    gold_r = [StepType(g).role.value for g in gold_t]
    pred_r = [StepType(p).role.value for p in pred_t]
    return {
        "tagger": tagger,
        "folds": folds,
        "seed": seed,
        "states_answer": ("derived" if derive is not None else "none")
        if states_answer == "derived" else states_answer,
        "weak_labels": len(weak),
        "n_steps": len(examples),
        "n_traces": len({ex.trace_id for ex in examples}),
        "type": metrics(gold_t, pred_t, TYPE_LABELS),
        "role": metrics(gold_r, pred_r, ROLE_LABELS),
    }


def _table(m: dict[str, Any], short: Callable[[str], str]) -> list[str]:
    labels = m["labels"]
    keep = [i for i, lab in enumerate(labels)
            if m["per_class"][lab]["support"] or m["per_class"][lab]["predicted"]]
    heads = [short(labels[i]) for i in keep]
    w = max(11, *(len(h) for h in heads))
    lines = ["gold \\ pred".ljust(w + 2) + " ".join(h.rjust(5) for h in heads)
             + "    n   prec  rec   f1"]
    for i in keep:
        lab = labels[i]
        pc = m["per_class"][lab]
        row = " ".join(str(m["confusion"][i][j]).rjust(5) for j in keep)
        lines.append(f"{short(lab).ljust(w + 2)}{row} {pc['support']:4d}  {pc['precision']:.2f}"
                     f"  {pc['recall']:.2f}  {pc['f1']:.2f}")
    return lines


def format_quality(report: dict[str, Any]) -> str:
    """A readable summary with both confusion matrices."""
    t, r = report["type"], report["role"]
    out = [
        (
            f"tagger={report['tagger']}  {report['folds']}-fold grouped CV by trace_id "
            f"(seed {report['seed']}), {report['n_steps']} steps / {report['n_traces']} "
            f"traces, states_answer={report['states_answer']}, "
            f"weak labels={report['weak_labels']}"
        ),
        f"types: accuracy {t['accuracy']:.3f}  macro-F1 {t['macro_f1']:.3f}",
        f"roles: accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}",
        "",
        "type confusion (rows gold, columns predicted):",
    ]
    out += _table(t, lambda s: s[:5] if "_" not in s else "".join(p[:3] for p in s.split("_"))[:6])
    out += ["", "role confusion:"]
    out += _table(r, lambda s: s[:5])
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m tracestop.tag.quality [--tagger linear] [--states-answer gold] [--json]``."""
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
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    report = cross_validate(a.labels, a.tagger, a.folds, a.seed, a.states_answer,
                            weak_traces=data / "traces" if a.weak else None)
    print(json.dumps(report, indent=1) if a.json else format_quality(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the answer scorer (src/tracestop/weights/answer_scorer.npz) on the dev split.

    python scripts/train_answer_scorer.py [--data DIR] [--out PATH] [--c 1.0] [--without-next]

Distant supervision: every value the model states in a sentence of a math trace's thinking
is an example, seen with the step that follows it (as the Monitor judges it, one step late);
it is positive when it equals the trace's recorded final answer.
Prints 5-fold cross-validated AUC and precision/recall, the folds grouped by problem
(``tracestop.evaluate.data.fold_of``: no problem in two folds, whichever model wrote the
trace), then fits on everything. It also writes each fold's model (trained without that
fold) beside the weights, ``answer_scorer.fold{i}.npz``: calibration scores a dev trace with
the model that never saw its problem (cross-fitting), so the confidences it tunes on are the
out-of-sample ones a live request gets. Deterministic: the same data gives the same weights. ``--without-next`` drops the
next-step features (same examples) and only prints the cross-validation: the comparison the
next-step features were chosen by.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def examples(data: str | None, with_next_step: bool = True):  # type: ignore[no-untyped-def]
    """Scorer inputs of every value-stating sentence in the thinking of dev math traces, with
    the step that follows (none after the last), computed exactly as the Monitor computes them,
    labelled by the recorded final answer."""
    from tracestop.answers import equivalent, infer_format, normalize
    from tracestop.answers.question import question_ask, question_numbers, question_unit
    from tracestop.answers.scorer import featurize, remember, step_inputs, with_next
    from tracestop.evaluate.data import data_dir, fold_of, load_traces
    from tracestop.evaluate.replay import prepare_many
    from tracestop.monitor import MonitorConfig

    ts = load_traces(data_dir(data), split="dev")
    traces = [t for t in ts.traces if infer_format(t.question, t.benchmark) == "math"]
    preps = prepare_many(traces, config=MonitorConfig(candidates="never"))
    by_id = {t.id: t for t in traces}
    rows, ys, groups = [], [], []
    for p in preps:
        r = p.result
        if r.excluded or not r.predicted_full:
            continue
        q = by_id[r.id].question
        qn, ask, unit = question_numbers(q), question_ask(q), question_unit(q)
        final = r.predicted_full
        mentions: dict[str, int] = {}
        recs = p.records
        for j, rec in enumerate(recs):
            inputs = step_inputs(rec.tagged.step.text, rec.type, rec.index, mentions, qn, ask, unit)
            nxt = recs[j + 1] if j + 1 < len(recs) else None
            judged = with_next(inputs, nxt.tagged.step.text, nxt.type) if nxt else with_next(inputs, "", None)
            if not with_next_step:
                judged = inputs
            for x in judged:
                rows.append(featurize(x))
                ys.append(normalize(x.value) == normalize(final) or equivalent(final, x.value))
                groups.append(fold_of(by_id[r.id].question))
            remember(mentions, inputs)
    return rows, np.array(ys), np.array(groups)


def to_matrix(rows):  # type: ignore[no-untyped-def]
    from scipy.sparse import csr_matrix

    from tracestop.answers.scorer import N_FEATURES

    indptr, indices, vals = [0], [], []
    for f in rows:
        for i in sorted(f):
            indices.append(i)
            vals.append(f[i])
        indptr.append(len(indices))
    return csr_matrix((vals, indices, indptr), shape=(len(rows), N_FEATURES))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--c", type=float, default=1.0)
    ap.add_argument("--without-next", action="store_true",
                    help="no next-step features; print the cross-validation only, write nothing")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from tracestop.answers.scorer import DEFAULT_WEIGHTS, fold_weights
    from tracestop.evaluate.data import N_FOLDS

    rows, y, folds = examples(args.data, not args.without_next)
    X = to_matrix(rows)
    out = Path(args.out) if args.out else DEFAULT_WEIGHTS
    write = not args.without_next
    if write:
        out.parent.mkdir(parents=True, exist_ok=True)
    print(f"examples: {len(y)} ({int(y.sum())} positive)" + ("; without next-step features" if not write else ""))
    p = np.zeros(len(y))
    for f in range(N_FOLDS):
        tr, te = folds != f, folds == f
        m = LogisticRegression(C=args.c, max_iter=5000, fit_intercept=False).fit(X[tr], y[tr])
        p[te] = m.predict_proba(X[te])[:, 1]
        meta = f"dev split without fold {f} of {N_FOLDS} (by problem), {int(tr.sum())} examples; C={args.c}"
        if write:
            np.savez_compressed(fold_weights(f, out), coef=m.coef_[0].astype(np.float32), meta=np.array(meta))
    print(f"5-fold CV AUC (folds by problem): {roc_auc_score(y, p):.3f}")
    for th in (0.5, 0.6, 0.7, 0.8):
        sel = p >= th
        prec = y[sel].mean() if sel.any() else float("nan")
        print(f"  threshold {th}: precision {prec:.3f}, recall {(y & sel).sum() / y.sum():.3f}")
    if not write:
        return 0
    m = LogisticRegression(C=args.c, max_iter=5000, fit_intercept=False).fit(X, y)
    meta = f"dev split, {len(y)} examples, {int(y.sum())} positive; C={args.c}; CV AUC {roc_auc_score(y, p):.3f}"
    np.savez_compressed(out, coef=m.coef_[0].astype(np.float32), meta=np.array(meta))
    print(f"wrote {out} and its {N_FOLDS} out-of-fold models ({fold_weights(0, out).name}, ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

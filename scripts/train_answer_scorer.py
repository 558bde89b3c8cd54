"""Train the answer scorer (src/tracestop/weights/answer_scorer.npz) on the dev split.

    python scripts/train_answer_scorer.py [--data DIR] [--out PATH] [--c 1.0]

Distant supervision: every value the model states in a sentence of a math trace's thinking
is an example; it is positive when it equals the trace's recorded final answer.
Prints grouped 5-fold cross-validated AUC and precision/recall (no trace in two folds), then
fits on everything. Deterministic: the same data gives the same weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def examples(data: str | None):  # type: ignore[no-untyped-def]
    """Scorer inputs of every value-stating sentence in the decided steps of dev math traces,
    computed exactly as the Monitor computes them, labelled by the recorded final answer."""
    from tracestop.answers import equivalent, infer_format, normalize
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.replay import prepare_many
    from tracestop.scorer import featurize, question_ask, question_numbers, remember, step_inputs

    ts = load_traces(data_dir(data), split="dev")
    traces = [t for t in ts.traces if infer_format(t.question, t.benchmark) == "math"]
    preps = prepare_many(traces, monitor_kw={"conclusions": "never"})
    by_id = {t.id: t for t in traces}
    rows, ys, groups = [], [], []
    for p in preps:
        r = p.result
        if r.excluded or not r.predicted_full:
            continue
        q = by_id[r.id].question
        qn, ask = question_numbers(q), question_ask(q)
        final = r.predicted_full
        mentions: dict[str, int] = {}
        for rec in p.records[: p.n_decided]:
            inputs = step_inputs(rec.tagged.step.text, rec.type, rec.index, mentions, qn, ask)
            for x in inputs:
                rows.append(featurize(x))
                ys.append(normalize(x.value) == normalize(final) or equivalent(final, x.value))
                groups.append(r.id)
            remember(mentions, inputs)
    return rows, np.array(ys), np.array(groups)


def to_matrix(rows):  # type: ignore[no-untyped-def]
    from scipy.sparse import csr_matrix

    from tracestop.scorer import N_FEATURES

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
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    from tracestop.scorer import DEFAULT_WEIGHTS

    rows, y, groups = examples(args.data)
    X = to_matrix(rows)
    print(f"examples: {len(y)} ({int(y.sum())} positive) from {len(set(groups))} traces")
    p = np.zeros(len(y))
    for tr, te in GroupKFold(5).split(X, y, groups):
        m = LogisticRegression(C=args.c, max_iter=5000, fit_intercept=False).fit(X[tr], y[tr])
        p[te] = m.predict_proba(X[te])[:, 1]
    print(f"grouped 5-fold CV AUC: {roc_auc_score(y, p):.3f}")
    for th in (0.5, 0.6, 0.7, 0.8):
        sel = p >= th
        prec = y[sel].mean() if sel.any() else float("nan")
        print(f"  threshold {th}: precision {prec:.3f}, recall {(y & sel).sum() / y.sum():.3f}")
    m = LogisticRegression(C=args.c, max_iter=5000, fit_intercept=False).fit(X, y)
    out = Path(args.out) if args.out else DEFAULT_WEIGHTS
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = f"dev split, {len(y)} examples, {int(y.sum())} positive; C={args.c}; CV AUC {roc_auc_score(y, p):.3f}"
    np.savez_compressed(out, coef=m.coef_[0].astype(np.float32), meta=np.array(meta))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training of the linear tagger (needs scikit-learn: ``pip install 'tracestop[train]'``).

The data: ``tracestop.lab.labels``. Three heads (``fit``): the type head (multinomial,
square-root-balanced class weights), the role head (multinomial over the 3 macro roles,
unweighted) and the states-answer head (binary, balanced; the only head that sees the
``tracestop.tag.linear.SA_ONLY`` features).
Training is deterministic: the vocabulary is sorted, lbfgs runs on one BLAS thread on a fixed
feature order, and the weights are written to a zip with fixed timestamps, so two runs give
byte-identical files.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tracestop.lab.labels import Example
from tracestop.tag.linear import (
    FEATURE_VERSION,
    LABELS,
    ROLES,
    Encoder,
    LinearWeights,
    build_vocab,
)

__all__ = [
    "DEFAULT_C",
    "TYPE_CLASS_WEIGHT",
    "design",
    "fit",
    "save_weights",
]

#: Inverse L2 strength; one value chosen a priori (features are scaled to ~unit norm).
DEFAULT_C = 1.0
#: Class weights of the type head: "sqrt-balanced", the square root of sklearn's "balanced"
#: (sqrt(n / (k * count))): rare types count more, frequent ones keep part of their prior; the
#: (unweighted) role head keeps the roles' priors, and ``tag`` decodes the product of the two
#: heads. Chosen among unweighted / sqrt-balanced / balanced by grouped 5-fold CV on the extra
#: labels alone (never the shared labels, docs/tagger.md). "balanced" and None work too.
TYPE_CLASS_WEIGHT: str | None = "sqrt-balanced"
#: Class weights of the states-answer head (positives are ~1 step in 5; F1 is the target).
SA_CLASS_WEIGHT: str | None = "balanced"


def _sklearn() -> Any:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "training the linear tagger needs scikit-learn: pip install 'tracestop[train]'"
        ) from e
    return LogisticRegression


def design(examples: Sequence[Example], encoder: Encoder, sa: bool = False) -> Any:
    """The CSR feature matrix of ``examples`` (scipy, pulled in by scikit-learn).

    ``sa``: the states-answer head's view (context flag = the extractor's verdict, and the
    ``SA_ONLY`` features).
    """
    from scipy.sparse import csr_matrix

    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for ex in examples:
        ctx = replace(ex.context, states_answer=ex.derived) if sa else ex.context
        idx, vals = encoder.encode(ex.text, ctx, sa=sa)
        indices.extend(idx)
        data.extend(vals)
        indptr.append(len(indices))
    m = csr_matrix((np.asarray(data, dtype=np.float64), np.asarray(indices), np.asarray(indptr)),
                   shape=(len(examples), encoder.n_features))
    m.sum_duplicates()
    return m


def fit(examples: Sequence[Example], c: float = DEFAULT_C, seed: int = 0,
        max_iter: int = 2000, min_count: int = 1,
        sa_class_weight: str | None = SA_CLASS_WEIGHT,
        class_weight: str | None = TYPE_CLASS_WEIGHT) -> LinearWeights:
    """Train the three heads (type, role, states-answer) on ``examples`` (vocabulary: grams
    seen ``min_count`` times in them); ``class_weight``: the type head's.

    Types absent from ``examples`` get zero weights and a very low intercept. The solvers run
    on one BLAS thread (faster on a shared machine, and the same sums every run).
    """
    with _one_thread():
        return _fit(examples, c, seed, max_iter, min_count, sa_class_weight, class_weight)


def _one_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1)


def _fit(examples: Sequence[Example], c: float, seed: int, max_iter: int, min_count: int,
         sa_class_weight: str | None, class_weight: str | None) -> LinearWeights:
    logreg = _sklearn()
    encoder = Encoder(build_vocab((ex.text for ex in examples), min_count))
    n = encoder.n_features
    x = design(examples, encoder)  # without the SA_ONLY features: their weights stay 0
    y = np.asarray([LABELS.index(ex.label) for ex in examples])
    sw = np.asarray([ex.weight for ex in examples], dtype=np.float64)
    model = logreg(C=c, max_iter=max_iter, tol=1e-6, random_state=seed,
                   class_weight=_class_weight(y, class_weight))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, sample_weight=sw)
    coef, intercept = _softmax_weights(model, n, len(LABELS))

    # the role head: a softmax over the 3 macro roles, same features (``tag`` decodes the
    # role with it, then the best type of that role)
    yr = np.asarray([ROLES.index(ex.label.role) for ex in examples])
    role_model = logreg(C=c, max_iter=max_iter, tol=1e-6, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        role_model.fit(x, yr, sample_weight=sw)
    role_coef, role_intercept = _softmax_weights(role_model, n, len(ROLES))

    ys = np.asarray([ex.gold_states_answer for ex in examples], dtype=int)
    sa_coef = np.zeros(n, dtype=np.float32)
    sa_intercept = -20.0
    if ys.min() != ys.max():
        sa = logreg(C=c, max_iter=max_iter, tol=1e-6, random_state=seed,
                    class_weight=sa_class_weight)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sa.fit(design(examples, encoder, sa=True), ys, sample_weight=sw)
        sa_coef = sa.coef_[0].astype(np.float32)
        sa_intercept = float(sa.intercept_[0])
    elif ys.max() == 1:
        sa_intercept = 20.0
    return LinearWeights(coef, intercept, encoder.vocab, sa_coef, sa_intercept,
                         role_coef, role_intercept)


def _class_weight(y: np.ndarray, how: str | dict[int, float] | None
                  ) -> str | dict[int, float] | None:
    """sklearn's ``class_weight`` for labels ``y``: "sqrt-balanced" becomes the dict
    {class: sqrt(n / (k * count))}; anything else is passed on."""
    if how != "sqrt-balanced":
        return how
    classes, counts = np.unique(y, return_counts=True)
    n, k = len(y), len(classes)
    return {int(c): float(np.sqrt(n / (k * m))) for c, m in zip(classes, counts, strict=True)}


def _softmax_weights(model: Any, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(coef (n, k), intercept (k,)) of a fitted sklearn softmax; classes absent from the
    training data get zero weights and a very low intercept."""
    coef = np.zeros((n, k), dtype=np.float32)
    intercept = np.full(k, -20.0, dtype=np.float32)
    classes = [int(j) for j in model.classes_]
    if len(classes) == 2:  # binary sklearn output: one row for the positive class
        coef[:, classes[1]] = model.coef_[0] / 2
        coef[:, classes[0]] = -model.coef_[0] / 2
        intercept[classes[1]] = model.intercept_[0] / 2
        intercept[classes[0]] = -model.intercept_[0] / 2
    else:
        for row, j in enumerate(classes):
            coef[:, j] = model.coef_[row]
            intercept[j] = model.intercept_[row]
    return coef, intercept


def save_weights(path: Path | str, weights: LinearWeights,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write an ``.npz`` (deflated, fixed timestamps: same arrays → same bytes)."""
    arrays: dict[str, np.ndarray] = {
        "coef": np.ascontiguousarray(weights.coef, dtype=np.float32),
        "intercept": np.ascontiguousarray(weights.intercept, dtype=np.float32),
        "vocab": np.asarray(weights.vocab, dtype=str),
        "sa_coef": np.ascontiguousarray(weights.sa_coef, dtype=np.float32),
        "sa_intercept": np.asarray(weights.sa_intercept, dtype=np.float32),
        "role_coef": np.ascontiguousarray(weights.role_coef, dtype=np.float32),
        "role_intercept": np.ascontiguousarray(weights.role_intercept, dtype=np.float32),
        "labels": np.asarray([t.value for t in LABELS]),
        "feature_version": np.asarray(FEATURE_VERSION),
        "meta": np.asarray(json.dumps(meta or {}, sort_keys=True)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, buf.getvalue())
    return path


def iter_traces(examples: Iterable[Example]) -> list[str]:
    """Distinct trace ids, in first-seen order."""
    return list(dict.fromkeys(ex.trace_id for ex in examples))

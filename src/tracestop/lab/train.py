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
        class_weight: str | None = TYPE_CLASS_WEIGHT, embed: Any = None) -> LinearWeights:
    """Train the three heads (type, role, states-answer) on ``examples`` (vocabulary: grams
    seen ``min_count`` times in them); ``class_weight``: the type head's.

    Types absent from ``examples`` get zero weights and a very low intercept. The solvers run
    on one BLAS thread (faster on a shared machine, and the same sums every run).
    """
    with _one_thread():
        return _fit(examples, c, seed, max_iter, min_count, sa_class_weight, class_weight,
                    embed)


def _one_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1)


def _fit(examples: Sequence[Example], c: float, seed: int, max_iter: int, min_count: int,
         sa_class_weight: str | None, class_weight: str | None, embed: Any = None
         ) -> LinearWeights:
    logreg = _sklearn()
    encoder = Encoder(build_vocab((ex.text for ex in examples), min_count), embed)
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
                         role_coef, role_intercept, embed)


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


def write_npz(path: Path | str, arrays: dict[str, Any]) -> Path:
    """Write ``arrays`` as an ``.npz`` (deflated, fixed timestamps and modes: the same arrays
    give the same bytes, so a retrain that changes nothing changes no file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, buf.getvalue())
    return path


def save_weights(path: Path | str, weights: LinearWeights,
                 meta: dict[str, Any] | None = None, embed_file: str | None = None) -> Path:
    """Write an ``.npz`` (deflated, fixed timestamps: same arrays → same bytes);
    ``embed_file``: the name of the encoder's file next to it (weights with an encoder)."""
    if (embed_file is None) != (weights.embed is None):
        raise ValueError("embed_file names the encoder's file exactly when the weights have one")
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
    if embed_file is not None:
        arrays["embed"] = np.asarray(embed_file)
    return write_npz(path, arrays)


def iter_traces(examples: Iterable[Example]) -> list[str]:
    """Distinct trace ids, in first-seen order."""
    return list(dict.fromkeys(ex.trace_id for ex in examples))


# --- the offline word encoder (tracestop.tag.embed) ------------------------------------------

#: The encoder's recipe (docs/tagger.md, "Offline encoder").
EMBED_WORDS = 8000
EMBED_DIM = 32
EMBED_WINDOW = 4
EMBED_MIN_COUNT = 5
#: context-distribution smoothing of the PMI (Levy et al. 2015) and the SIF weight's a
EMBED_ALPHA = 0.75
EMBED_SIF_A = 1e-3
#: the stored vectors are multiplied by it, so a step's mean vector has a norm of ~1 (median
#: 0.24 before) like the other feature groups; the L2 penalty then lets the heads use them
EMBED_SCALE = 4.0
#: whether ``scripts/train_tagger.py`` and the honest CV use the encoder by default: no, the
#: honest CV on sets 0-30 gained by family but not by problem (docs/tagger.md, "Offline
#: encoder"); ``--embed`` on both turns it on
USE_EMBED = False


def embed_texts(traces: Iterable[Any], skip: Any = None) -> list[str]:
    """The thinking text of the **dev** traces among ``traces`` (what the encoder is built
    from), leaving out those for which ``skip(trace_id)`` is true (the honest CV's test
    problems and family)."""
    from tracestop.segment import split_thinking

    return [split_thinking(t.trace)[0] for t in traces
            if t.split == "dev" and (skip is None or not skip(t.id))]


def build_embedding(texts: Iterable[str], words: int = EMBED_WORDS, dim: int = EMBED_DIM,
                    window: int = EMBED_WINDOW, min_count: int = EMBED_MIN_COUNT,
                    alpha: float = EMBED_ALPHA, sif_a: float = EMBED_SIF_A,
                    scale: float = EMBED_SCALE, seed: int = 0) -> Any:
    """Word vectors (``tracestop.tag.embed.Embedding``) from ``texts``: the ``words`` most
    frequent words (tokens of the linear tagger's word pattern, letters only, seen at least
    ``min_count`` times), co-occurrence counts within ``window`` words weighted 1/distance,
    positive PMI with the context counts raised to ``alpha``, a rank-``dim`` truncated SVD
    (U * sqrt(S)), rows scaled to unit norm, then by the SIF weight a / (a + p(word)) and by
    ``scale``.
    Deterministic (fixed ARPACK start vector, ties in frequency broken by the word)."""
    import re
    from collections import Counter

    from scipy.sparse import coo_matrix, csr_matrix
    from scipy.sparse.linalg import svds

    from tracestop.tag.embed import Embedding

    letters = re.compile(r"[a-z]+(?:'[a-z]+)?")
    streams = [letters.findall(t.lower()) for t in texts]
    counts: Counter[str] = Counter()
    for s in streams:
        counts.update(s)
    vocab = sorted((w for w, n in counts.items() if n >= min_count),
                   key=lambda w: (-counts[w], w))[:words]
    row = {w: i for i, w in enumerate(vocab)}
    v = len(vocab)
    m = csr_matrix((v, v), dtype=np.float64)
    parts_a: list[np.ndarray] = []
    parts_b: list[np.ndarray] = []
    parts_w: list[np.ndarray] = []
    held = 0

    def flush(m: Any) -> Any:
        if not parts_a:
            return m
        a, b, w = np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_w)
        parts_a.clear()
        parts_b.clear()
        parts_w.clear()
        return m + coo_matrix((w, (a, b)), shape=(v, v)).tocsr()

    for s in streams:
        ids = np.asarray([row.get(w, -1) for w in s], dtype=np.int64)
        for d in range(1, window + 1):
            if len(ids) <= d:
                break
            a, b = ids[:-d], ids[d:]
            keep = (a >= 0) & (b >= 0)
            parts_a.append(a[keep])
            parts_b.append(b[keep])
            parts_w.append(np.full(int(keep.sum()), 1.0 / d))
            held += int(keep.sum())
        if held > 4_000_000:
            m = flush(m)
            held = 0
    m = flush(m)
    m = (m + m.T).tocsr()
    rows_sum = np.asarray(m.sum(1)).ravel()
    ctx = np.asarray(m.sum(0)).ravel() ** alpha
    ctx_total = float(ctx.sum())
    coo = m.tocoo()
    pmi = np.log(coo.data * ctx_total / (rows_sum[coo.row] * ctx[coo.col]))
    keep = pmi > 0
    ppmi = csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(v, v))
    v0 = np.random.default_rng(seed).standard_normal(v)
    u, sv, _ = svds(ppmi, k=dim, v0=v0)
    order = np.argsort(-sv)
    vec = u[:, order] * np.sqrt(sv[order])
    # a fixed sign per dimension (ARPACK's is arbitrary): the largest entry positive
    flip = np.sign(vec[np.abs(vec).argmax(0), np.arange(dim)])
    vec = vec * np.where(flip == 0, 1.0, flip)
    vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    n_tok = sum(counts[w] for w in counts)
    p = np.asarray([counts[w] / n_tok for w in vocab])
    vec *= (scale * sif_a / (sif_a + p))[:, None]
    return Embedding(tuple(vocab), vec.astype(np.float32))


def save_embedding(path: Path | str, emb: Any, meta: dict[str, Any] | None = None) -> Path:
    """Write the encoder's ``.npz`` (words, float16 vectors; fixed timestamps)."""
    arrays = {"words": np.asarray(emb.words, dtype=str),
              "vectors": np.asarray(emb.vectors, dtype=np.float16),
              "meta": np.asarray(json.dumps(meta or {}, sort_keys=True))}
    return write_npz(path, arrays)

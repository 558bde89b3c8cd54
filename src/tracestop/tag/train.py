"""Training of the linear tagger (needs scikit-learn: ``pip install 'tracestop[train]'``).

Sources:

- the hand labels, ``data/labels/reasontype-dev.jsonl`` (the 14 types);
- optionally, weak labels mapped from other taxonomies in the traces' ``step_labels``
  (``WEAK_MAP``; consecutive sentences with the same mapped type are joined into one
  pseudo-step, as the blank-line steps of the hand labels are paragraphs, not sentences).

Training is deterministic: lbfgs multinomial logistic regression on a fixed feature order,
weights written to a zip with fixed timestamps, so two runs give byte-identical files.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tracestop._types import StepType
from tracestop.tag.base import TagContext
from tracestop.tag.linear import FEATURE_VERSION, LABELS, N_FEATURES, featurize

__all__ = [
    "DEFAULT_C",
    "WEAK_MAP",
    "WEAK_WEIGHT",
    "Example",
    "fit",
    "load_labels",
    "load_weak",
    "save_weights",
]

T = StepType

#: Inverse L2 strength; one value chosen a priori (features are scaled to ~unit norm).
DEFAULT_C = 1.0
#: Sample weight of a weak (mapped) example relative to a hand-labelled one.
WEAK_WEIGHT = 0.2

#: Other taxonomies → the 14 types. ``None`` = too ambiguous to map (dropped).
WEAK_MAP: dict[str, dict[str, StepType | None]] = {
    # Thought Anchors' function tags (traces/*__math.jsonl, one per sentence)
    "math": {
        "problem_setup": T.PROBLEM_RESTATEMENT,
        "plan_generation": T.HEURISTIC_INTUITION,
        "fact_retrieval": T.DEFINITION_RECALL,
        "active_computation": None,  # formula_substitution vs symbolic_transformation
        "result_consolidation": T.CONTEXT_REPETITION,
        "uncertainty_management": T.META_COGNITION,
        "self_checking": T.VERIFICATION,
        "final_answer_emission": T.FINAL_CONCLUSION,
    },
    # the steering paper's six labels (traces/*__stl-prompts.jsonl, per span)
    "stl-prompts": {
        "initializing": T.PROBLEM_RESTATEMENT,
        "adding-knowledge": T.DEFINITION_RECALL,
        "deduction": None,  # any constructive mid-phase type
        "uncertainty-estimation": T.META_COGNITION,
        "backtracking": T.META_COGNITION,
        "example-testing": T.CASE_CONSIDERATION,
    },
}


@dataclass(frozen=True, slots=True)
class Example:
    """One training step: text, gold type, the context the tagger sees, its trace and weight."""

    text: str
    label: StepType
    context: TagContext
    trace_id: str
    weight: float = 1.0


def _sklearn() -> Any:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "training the linear tagger needs scikit-learn: pip install 'tracestop[train]'"
        ) from e
    return LogisticRegression


def _questions(traces_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in sorted(traces_dir.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            out[str(r["id"])] = str(r.get("question") or "")
    return out


def load_labels(path: Path | str, traces_dir: Path | str | None = None) -> list[Example]:
    """Hand labels, in file order; ``previous`` is the gold type of the step before.

    ``question`` comes from the traces (default: ``../traces`` beside the labels folder) —
    the Monitor passes it at run time too; without the traces it stays empty.
    """
    path = Path(path)
    tdir = Path(traces_dir) if traces_dir is not None else path.parent.parent / "traces"
    questions = _questions(tdir) if tdir.is_dir() else {}
    out: list[Example] = []
    prev: tuple[str, int, StepType] | None = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        label = StepType(r["label"])
        before = prev[2] if prev and prev[0] == r["trace_id"] and prev[1] == r["index"] - 1 else None
        ctx = TagContext(index=int(r["index"]), previous=before,
                         states_answer=bool(r["states_answer"]),
                         question=questions.get(r["trace_id"], ""))
        out.append(Example(r["text"], label, ctx, r["trace_id"]))
        prev = (r["trace_id"], int(r["index"]), label)
    return out


def load_weak(traces_dir: Path | str, max_sentences: int = 4,
              weight: float = WEAK_WEIGHT) -> list[Example]:
    """Weak examples from ``step_labels`` of ``*__math.jsonl`` and ``*__stl-prompts.jsonl``."""
    out: list[Example] = []
    for f in sorted(Path(traces_dir).glob("*.jsonl")):
        bench = f.stem.split("__", 1)[-1]
        mapping = WEAK_MAP.get(bench)
        if mapping is None:
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            spans = r.get("step_labels") or []
            groups: list[tuple[StepType | None, list[str]]] = []
            for s in spans:
                t = mapping.get(str(s.get("label")))
                if groups and groups[-1][0] == t and len(groups[-1][1]) < max_sentences:
                    groups[-1][1].append(str(s["text"]).strip())
                else:
                    groups.append((t, [str(s["text"]).strip()]))
            prev: StepType | None = None
            for i, (t, texts) in enumerate(groups):
                if t is not None:
                    ctx = TagContext(index=i, previous=prev, states_answer=False)
                    out.append(Example(" ".join(texts), t, ctx, str(r["id"]), weight))
                prev = t
    return out


def design(examples: Sequence[Example]) -> Any:
    """The CSR feature matrix of ``examples`` (scipy, pulled in by scikit-learn)."""
    from scipy.sparse import csr_matrix

    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for ex in examples:
        idx, vals, _ = featurize(ex.text, ex.context)
        indices.extend(idx)
        data.extend(vals)
        indptr.append(len(indices))
    m = csr_matrix((np.asarray(data, dtype=np.float64), np.asarray(indices), np.asarray(indptr)),
                   shape=(len(examples), N_FEATURES))
    m.sum_duplicates()
    return m


def fit(examples: Sequence[Example], c: float = DEFAULT_C, seed: int = 0,
        max_iter: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Train; returns ``(coef (N_FEATURES, 14) float32, intercept (14,) float32)``.

    Types absent from ``examples`` get zero weights and a very low intercept.
    """
    logreg = _sklearn()
    x = design(examples)
    y = np.asarray([LABELS.index(ex.label) for ex in examples])
    sw = np.asarray([ex.weight for ex in examples], dtype=np.float64)
    model = logreg(C=c, max_iter=max_iter, tol=1e-6, random_state=seed)
    model.fit(x, y, sample_weight=sw)
    coef = np.zeros((N_FEATURES, len(LABELS)), dtype=np.float32)
    intercept = np.full(len(LABELS), -20.0, dtype=np.float32)
    classes = [int(k) for k in model.classes_]
    if len(classes) == 2:  # binary sklearn output: one row for the positive class
        coef[:, classes[1]] = model.coef_[0] / 2
        coef[:, classes[0]] = -model.coef_[0] / 2
        intercept[classes[1]] = model.intercept_[0] / 2
        intercept[classes[0]] = -model.intercept_[0] / 2
    else:
        for row, k in enumerate(classes):
            coef[:, k] = model.coef_[row]
            intercept[k] = model.intercept_[row]
    return coef, intercept


def save_weights(path: Path | str, coef: np.ndarray, intercept: np.ndarray,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write an ``.npz`` (deflated, fixed timestamps: same arrays → same bytes)."""
    arrays: dict[str, np.ndarray] = {
        "coef": np.ascontiguousarray(coef, dtype=np.float32),
        "intercept": np.ascontiguousarray(intercept, dtype=np.float32),
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

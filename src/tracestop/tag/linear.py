"""The linear tagger: hashed n-grams + rule cues + context, softmax weights, numpy only.

Features (all sparse, see ``featurize``):

- ``h:`` word unigrams and bigrams of the step's head (its first words, bullets stripped);
- ``b:`` word unigrams and bigrams of the whole step (first ``MAX_TOKENS`` tokens), numbers
  folded to ``#``; both hashed (CRC32) into ``HASH_DIM`` buckets, scaled by 1/sqrt(count);
- ``rule:`` which cue rules of ``tracestop.tag.rules.RULES`` fire (all of them, not only the
  first) and the rule tagger's verdict;
- ``ctx:`` whether the step states an answer, a bucket of its index, the previous step's type;
- ``shape:`` length, lines, digits, ``=`` signs, bullets, a trailing colon, a question mark.

Weights are trained by ``scripts/train_tagger.py`` (``tracestop.tag.train``) and shipped in
``weights/linear.npz``; they are loaded lazily once per path and shared by all instances.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import zlib
from pathlib import Path

import numpy as np

from tracestop._types import StepType, Tag
from tracestop.tag.base import TagContext
from tracestop.tag.rules import RULES, step_head

#: The default context (a frozen value, shared).
_NO_CONTEXT = TagContext()

__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_VERSION",
    "HASH_DIM",
    "LABELS",
    "N_FEATURES",
    "LinearTagger",
    "featurize",
]

#: Bump when ``featurize`` changes; the weights file records it and a mismatch is an error.
FEATURE_VERSION = 2
HASH_DIM = 1 << 13
MAX_TOKENS = 80
HEAD_TOKENS = 6
LABELS: tuple[StepType, ...] = tuple(StepType)
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "linear.npz"

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?|[=+\-*/^√≈?:()\\$<>]")
_DIGIT = re.compile(r"\d")
_INDEX_BUCKETS = (0, 1, 2, 3, 6, 11, 21, 41)  # lower bounds


def _dense_names() -> list[str]:
    names = [f"rule:{i}:{r.type.value}" for i, r in enumerate(RULES)]
    names += [f"rule:first={t.value}" for t in LABELS]
    names += ["ctx:states_answer"]
    names += [f"ctx:index>={b}" for b in _INDEX_BUCKETS]
    names += [f"ctx:previous={t.value}" for t in LABELS] + ["ctx:previous=none"]
    names += [
        "shape:log_chars",
        "shape:lines",
        "shape:digits",
        "shape:equals",
        "shape:bullet",
        "shape:ends_colon",
        "shape:question",
        "shape:indented",
        "shape:short",
        "shape:bias",
        "ctx:question_overlap",
        "ctx:question_overlap>0.5",
    ]
    return names


DENSE_NAMES: tuple[str, ...] = tuple(_dense_names())
_DENSE0 = HASH_DIM
_RULE0 = _DENSE0
_VERDICT0 = _RULE0 + len(RULES)
_STATES = _VERDICT0 + len(LABELS)
_INDEX0 = _STATES + 1
_PREV0 = _INDEX0 + len(_INDEX_BUCKETS)
_SHAPE0 = _PREV0 + len(LABELS) + 1
N_FEATURES = HASH_DIM + len(DENSE_NAMES)
_LABEL_POS = {t: i for i, t in enumerate(LABELS)}

_HASH_CACHE: dict[str, int] = {}
_HASH_CACHE_MAX = 200_000


def _bucket(name: str) -> int:
    b = _HASH_CACHE.get(name)
    if b is None:
        b = zlib.crc32(name.encode("utf-8")) & (HASH_DIM - 1)
        if len(_HASH_CACHE) < _HASH_CACHE_MAX:
            _HASH_CACHE[name] = b
    return b


_QCACHE: list[tuple[str, frozenset[str]]] = []


def _question_words(question: str) -> frozenset[str]:
    """Content words of the question (cached: one Monitor asks about the same question)."""
    for q, words in _QCACHE:
        if q is question or q == question:
            return words
    words = frozenset(t for t in _TOKEN.findall(question[:3000].lower()) if len(t) > 3)
    _QCACHE.insert(0, (question, words))
    del _QCACHE[8:]
    return words


def _ngrams(prefix: str, tokens: list[str]) -> list[str]:
    grams = [prefix + t for t in tokens]
    grams += [f"{prefix}{a}_{b}" for a, b in itertools.pairwise(tokens)]
    return grams


def featurize(text: str, context: TagContext = _NO_CONTEXT) -> tuple[list[int], list[float],
                                                                         list[str]]:
    """Sparse features of one step: parallel lists of indices, values and readable names.

    Indices may repeat (hash collisions, repeated n-grams); consumers sum them.
    """
    head = step_head(text)
    body = text[:600].lower()
    head_toks = ["#" if t[0].isdigit() else t for t in _TOKEN.findall(head)[:HEAD_TOKENS]]
    body_toks = ["#" if t[0].isdigit() else t for t in _TOKEN.findall(body)[:MAX_TOKENS]]
    names = _ngrams("h:", head_toks)
    nh = len(names)
    names += _ngrams("b:", body_toks)
    idx = [_bucket(n) for n in names]
    sh = 1.0 / math.sqrt(nh) if nh else 0.0
    nb = len(names) - nh
    sb = 1.0 / math.sqrt(nb) if nb else 0.0
    vals = [sh] * nh + [sb] * nb

    verdict = None
    for i, rule in enumerate(RULES):
        if rule.matches(head, body, context) is not None:
            idx.append(_RULE0 + i)
            vals.append(1.0)
            names.append(DENSE_NAMES[i])
            if verdict is None:
                verdict = rule.type
    if verdict is not None:
        j = _LABEL_POS[verdict]
        idx.append(_VERDICT0 + j)
        vals.append(1.0)
        names.append(DENSE_NAMES[_VERDICT0 - _DENSE0 + j])

    if context.states_answer:
        idx.append(_STATES)
        vals.append(1.0)
        names.append("ctx:states_answer")
    for k, lo in enumerate(_INDEX_BUCKETS):
        if context.index >= lo:
            idx.append(_INDEX0 + k)
            vals.append(1.0)
            names.append(DENSE_NAMES[_INDEX0 - _DENSE0 + k])
    p = len(LABELS) if context.previous is None else _LABEL_POS[context.previous]
    idx.append(_PREV0 + p)
    vals.append(1.0)
    names.append(DENSE_NAMES[_PREV0 - _DENSE0 + p])

    n = len(text)
    stripped = text.lstrip("\n")
    shape = (
        math.log1p(n) / 8.0,
        min(text.count("\n"), 20) / 10.0,
        len(_DIGIT.findall(body)) / max(len(body), 1) * 5.0,
        min(body.count("="), 10) / 5.0,
        1.0 if stripped.lstrip()[:1] in ("*", "-", "•") else 0.0,
        1.0 if text.rstrip().endswith(":") else 0.0,
        1.0 if "?" in body else 0.0,
        1.0 if stripped[:1] in (" ", "\t") else 0.0,
        1.0 if n < 80 else 0.0,
        1.0,
    )
    if context.question:
        words = [t for t in body_toks if len(t) > 3]
        if words:
            qset = _question_words(context.question)
            ov = sum(1 for t in words if t in qset) / len(words)
            shape = (*shape, ov, 1.0 if ov > 0.5 else 0.0)
    for k, v in enumerate(shape):
        if v:
            idx.append(_SHAPE0 + k)
            vals.append(v)
            names.append(DENSE_NAMES[_SHAPE0 - _DENSE0 + k])
    return idx, vals, names


_ROLE_ORDER = tuple(dict.fromkeys(t.role for t in LABELS))
_ROLE_MASKS = np.asarray([[1.0 if t.role is r else 0.0 for t in LABELS] for r in _ROLE_ORDER],
                         dtype=np.float32)

_CACHE: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
_LOCK = threading.Lock()


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    key = path.resolve()
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    with _LOCK:
        if key not in _CACHE:
            if not key.exists():
                raise FileNotFoundError(
                    f"no tagger weights at {key}: run `python scripts/train_tagger.py`"
                )
            with np.load(key) as z:
                version = int(z["feature_version"])
                labels = [str(s) for s in z["labels"]]
                if version != FEATURE_VERSION or labels != [t.value for t in LABELS]:
                    raise ValueError(
                        f"{key} was trained for feature version {version} with labels "
                        f"{labels}; this code needs version {FEATURE_VERSION}: retrain with "
                        "`python scripts/train_tagger.py`"
                    )
                w = np.ascontiguousarray(z["coef"], dtype=np.float32)
                b = np.ascontiguousarray(z["intercept"], dtype=np.float32)
            if w.shape != (N_FEATURES, len(LABELS)):
                raise ValueError(f"{key}: weights have shape {w.shape}, expected "
                                 f"{(N_FEATURES, len(LABELS))}")
            _CACHE[key] = (w, b)
    return _CACHE[key]


class LinearTagger:
    """Softmax regression over ``featurize``; evidence names the top-weighted features.

    Decoding picks the macro role with the highest total probability first, then the most
    probable type within it (cross-validated: +4 points role accuracy, -0.5 type accuracy).
    """

    name = "linear"

    def __init__(self, weights: tuple[np.ndarray, np.ndarray] | None = None,
                 path: Path | str | None = None) -> None:
        self._path = Path(path) if path is not None else DEFAULT_WEIGHTS
        self._weights = weights

    @classmethod
    def load(cls, path: Path | str = DEFAULT_WEIGHTS) -> LinearTagger:
        """A tagger reading (lazily, cached per path) the weights file at ``path``."""
        return cls(path=path)

    @property
    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(coef, intercept)``: shapes ``(N_FEATURES, 14)`` and ``(14,)``."""
        if self._weights is None:
            self._weights = _load(self._path)
        return self._weights

    def scores(self, text: str, context: TagContext = _NO_CONTEXT) -> np.ndarray:
        """Class probabilities in the order of ``LABELS``."""
        w, b = self.weights
        idx, vals, _ = featurize(text, context)
        z = np.asarray(vals, dtype=np.float32) @ w[idx] + b
        z = np.exp(z - z.max())
        return z / z.sum()

    def tag(self, text: str, context: TagContext = _NO_CONTEXT) -> Tag:
        w, b = self.weights
        idx, vals, names = featurize(text, context)
        v = np.asarray(vals, dtype=np.float32)
        rows = w[idx]
        z = v @ rows + b
        e = np.exp(z - z.max())
        p = e / e.sum()
        # role first (the stopping criteria consume roles), then the best type of that role
        r = int((_ROLE_MASKS @ p).argmax())
        c = int(np.where(_ROLE_MASKS[r] > 0, p, -1.0).argmax())
        conf = float(p[c])
        contrib = v * rows[:, c]
        top = np.argsort(contrib)[::-1][:3]
        feats = []
        for k in top:
            if contrib[k] <= 0:
                break
            n = names[k]
            if n not in feats:
                feats.append(n)
        evidence = "features: " + (", ".join(feats) if feats else "bias")
        return Tag(LABELS[c], min(max(conf, 0.0), 1.0), evidence)

"""The linear tagger: learned-vocabulary n-grams + rule cues + context, softmax weights, numpy.

Features (all sparse, see ``Encoder.encode``):

- ``h:`` / ``hh:`` word unigrams / bigrams of the step's head (its first ``HEAD_TOKENS``
  words, bullets stripped), ``o:`` / ``oo:`` its first word and first two words;
- ``b:`` / ``bb:`` word unigrams / bigrams of the start of the step (first ``MAX_TOKENS``
  tokens of its first ``BODY_CHARS`` characters) and ``t:`` unigrams of its last
  ``TAIL_CHARS`` characters; numbers folded to ``#``; each group scaled by 1/sqrt(count).
  The grams are looked up in a vocabulary learned at training time (grams seen in the
  training steps; stored in the weights file), unseen grams are dropped;
- ``rule:`` the rule tagger's verdict (the first firing cue rule of
  ``tracestop.tag.rules.RULES``, so the scan stops as early as the rule tagger's);
- ``ctx:`` whether the step states an answer, a bucket of its index, the previous step's type;
- ``shape:`` length, lines, digits, ``=`` signs, bullets, a trailing colon, a question mark,
  overlap with the question's words.

Two heads share the features: a 14-way softmax (the step type) and a logistic
``states_answer`` head (does the step put forward a candidate answer to the whole question).
Weights are trained by ``scripts/train_tagger.py`` (``tracestop.tag.train``) and shipped in
``weights/linear.npz``; they are loaded lazily once per path and shared by all instances.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from tracestop._types import StepType, Tag
from tracestop.tag.base import TagContext
from tracestop.tag.rules import RULES, step_head

#: The default context (a frozen value, shared).
_NO_CONTEXT = TagContext()

__all__ = [
    "DEFAULT_WEIGHTS",
    "DENSE_NAMES",
    "FEATURE_VERSION",
    "LABELS",
    "Encoder",
    "LinearTagger",
    "LinearWeights",
    "gram_names",
]

#: Bump when the features change; the weights file records it and a mismatch is an error.
FEATURE_VERSION = 3
MAX_TOKENS = 80
HEAD_TOKENS = 6
BODY_CHARS = 600
TAIL_CHARS = 200
LABELS: tuple[StepType, ...] = tuple(StepType)
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "linear.npz"

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?|[=+\-*/^√≈?:()\\$<>]")
_NUM = re.compile(r"\d+(?:\.\d+)?")
_INDEX_BUCKETS = (0, 1, 2, 3, 6, 11, 21, 41)  # lower bounds
#: Gram namespaces, in vocabulary-prefix order.
_SPACES = ("o", "oo", "h", "hh", "b", "bb", "t")


def _dense_names() -> list[str]:
    names = [f"rule:first={t.value}" for t in LABELS] + ["rule:first=none"]
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
_VERDICT0 = 0
_STATES = len(LABELS) + 1
_INDEX0 = _STATES + 1
_PREV0 = _INDEX0 + len(_INDEX_BUCKETS)
_SHAPE0 = _PREV0 + len(LABELS) + 1
_LABEL_POS = {t: i for i, t in enumerate(LABELS)}
#: The cue rules whose first match is the ``rule:first=`` feature.
_VERDICT_RULES = RULES

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


def _tokens(s: str) -> list[str]:
    return _TOKEN.findall(_NUM.sub("#", s))


def _texts(text: str) -> tuple[str, str, str]:
    """(head, body, tail): the lower-cased pieces every feature reads (bounded length)."""
    head = step_head(text)
    body = text[:BODY_CHARS].lower()
    tail = text[-TAIL_CHARS:].lower() if len(text) > BODY_CHARS else ""
    return head, body, tail


def _grams(head: str, body: str, tail: str) -> tuple[list[str], ...]:
    """The gram strings per namespace of ``_SPACES`` (without prefixes)."""
    ht = _tokens(head)[:HEAD_TOKENS]
    bt = _tokens(body)[:MAX_TOKENS]
    tt = _tokens(tail) if tail else []
    hb = [a + " " + b for a, b in pairwise(ht)]
    bb = [a + " " + b for a, b in pairwise(bt)]
    return ht[:1], hb[:1], ht, hb, bt, bb, tt


def gram_names(text: str) -> list[str]:
    """All prefixed gram names of ``text`` (what a vocabulary is built from)."""
    out: list[str] = []
    for space, grams in zip(_SPACES, _grams(*_texts(text)), strict=True):
        out += [f"{space}:{g}" for g in grams]
    return out


def build_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """Sorted gram names seen at least ``min_count`` times in ``texts`` (deterministic)."""
    counts: dict[str, int] = {}
    for text in texts:
        for g in set(gram_names(text)):
            counts[g] = counts.get(g, 0) + 1
    return sorted(g for g, n in counts.items() if n >= min_count)


class Encoder:
    """Maps a step to sparse feature ids (rows of the weight matrix) and values.

    Rows ``0 .. len(vocab)-1`` are grams, then ``DENSE_NAMES``.
    """

    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab = tuple(vocab)
        maps: dict[str, dict[str, int]] = {s: {} for s in _SPACES}
        for i, name in enumerate(self.vocab):
            space, _, gram = name.partition(":")
            maps[space][gram] = i
        self._maps = tuple(maps[s] for s in _SPACES)
        self.dense0 = len(self.vocab)
        self.n_features = self.dense0 + len(DENSE_NAMES)

    def name(self, i: int) -> str:
        """The readable name of feature row ``i``."""
        return self.vocab[i] if i < self.dense0 else DENSE_NAMES[i - self.dense0]

    def encode(self, text: str, context: TagContext = _NO_CONTEXT) -> tuple[list[int],
                                                                             list[float]]:
        """Parallel lists of feature rows and values (a row may repeat; consumers sum)."""
        head, body, tail = _texts(text)
        idx: list[int] = []
        vals: list[float] = []
        groups = _grams(head, body, tail)
        for m, grams in zip(self._maps, groups, strict=True):
            get = m.get
            ids = [i for i in map(get, grams) if i is not None]
            if ids:
                idx += ids
                vals += [1.0 / math.sqrt(len(grams))] * len(ids)
        d = self.dense0
        verdict = len(LABELS)
        for rule in _VERDICT_RULES:
            if rule.matches(head, body, context) is not None:
                verdict = _LABEL_POS[rule.type]
                break
        idx.append(d + _VERDICT0 + verdict)
        if context.states_answer:
            idx.append(d + _STATES)
        index = context.index
        for k, lo in enumerate(_INDEX_BUCKETS):
            if index >= lo:
                idx.append(d + _INDEX0 + k)
        p = len(LABELS) if context.previous is None else _LABEL_POS[context.previous]
        idx.append(d + _PREV0 + p)
        vals += [1.0] * (len(idx) - len(vals))

        n = len(text)
        stripped = text.lstrip("\n")
        nb = max(len(body), 1)
        shape = [
            math.log1p(n) / 8.0,
            min(text.count("\n"), 20) / 10.0,
            (nb - len(_NUM.sub("", body))) / nb * 5.0,
            min(body.count("="), 10) / 5.0,
            1.0 if stripped.lstrip()[:1] in ("*", "-", "•") else 0.0,
            1.0 if text.rstrip().endswith(":") else 0.0,
            1.0 if "?" in body else 0.0,
            1.0 if stripped[:1] in (" ", "\t") else 0.0,
            1.0 if n < 80 else 0.0,
            1.0,
        ]
        if context.question:
            words = [t for t in groups[4] if len(t) > 3]
            if words:
                qset = _question_words(context.question)
                ov = sum(1 for t in words if t in qset) / len(words)
                shape += [ov, 1.0 if ov > 0.5 else 0.0]
        s0 = d + _SHAPE0
        for k, v in enumerate(shape):
            if v:
                idx.append(s0 + k)
                vals.append(v)
        return idx, vals


_ROLE_ORDER = tuple(dict.fromkeys(t.role for t in LABELS))
_ROLE_MASKS = np.asarray([[1.0 if t.role is r else 0.0 for t in LABELS] for r in _ROLE_ORDER],
                         dtype=np.float32)
_ROLE_LISTS = tuple(tuple(int(i) for i in np.flatnonzero(m)) for m in _ROLE_MASKS)


@dataclass(frozen=True, slots=True)
class LinearWeights:
    """A trained model: ``coef`` (n_features, 14), ``intercept`` (14,), the vocabulary, and
    the states-answer head ``sa_coef`` (n_features,), ``sa_intercept``."""

    coef: np.ndarray
    intercept: np.ndarray
    vocab: tuple[str, ...]
    sa_coef: np.ndarray
    sa_intercept: float

    def __post_init__(self) -> None:
        n = len(self.vocab) + len(DENSE_NAMES)
        if self.coef.shape != (n, len(LABELS)) or self.sa_coef.shape != (n,):
            raise ValueError(f"weights have shapes {self.coef.shape} / {self.sa_coef.shape}, "
                             f"expected {(n, len(LABELS))} / {(n,)}")


_CACHE: dict[Path, LinearWeights] = {}
_LOCK = threading.Lock()


def _load(path: Path) -> LinearWeights:
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
                _CACHE[key] = LinearWeights(
                    np.ascontiguousarray(z["coef"], dtype=np.float32),
                    np.ascontiguousarray(z["intercept"], dtype=np.float32),
                    tuple(str(s) for s in z["vocab"]),
                    np.ascontiguousarray(z["sa_coef"], dtype=np.float32),
                    float(z["sa_intercept"]),
                )
    return _CACHE[key]


_ENCODERS: dict[int, tuple[LinearWeights, Encoder]] = {}


def _encoder(w: LinearWeights) -> Encoder:
    hit = _ENCODERS.get(id(w))
    if hit is not None and hit[0] is w:
        return hit[1]
    enc = Encoder(w.vocab)
    _ENCODERS[id(w)] = (w, enc)
    return enc


class LinearTagger:
    """Softmax regression over ``Encoder.encode``; evidence names the top-weighted features.

    Decoding picks the macro role with the highest total probability first, then the most
    probable type within it. ``states_answer(text, context)`` is the probability that the
    step puts forward a candidate answer (``context.states_answer`` should be the answer
    extractor's verdict, as the Monitor gives it).
    """

    name = "linear"

    def __init__(self, weights: LinearWeights | None = None,
                 path: Path | str | None = None) -> None:
        self._path = Path(path) if path is not None else DEFAULT_WEIGHTS
        self._weights = weights
        self._enc: Encoder | None = None

    @classmethod
    def load(cls, path: Path | str = DEFAULT_WEIGHTS) -> LinearTagger:
        """A tagger reading (lazily, cached per path) the weights file at ``path``."""
        return cls(path=path)

    @property
    def weights(self) -> LinearWeights:
        """The model (loaded on first use)."""
        if self._weights is None:
            self._weights = _load(self._path)
        return self._weights

    @property
    def encoder(self) -> Encoder:
        if self._enc is None:
            self._enc = _encoder(self.weights)
        return self._enc

    def _logits(self, text: str, context: TagContext) -> tuple[np.ndarray, list[int],
                                                               np.ndarray, np.ndarray]:
        w = self.weights
        idx, vals = self.encoder.encode(text, context)
        v = np.array(vals, dtype=np.float32)
        rows = w.coef[idx]
        z = v @ rows
        z += w.intercept
        return z, idx, v, rows

    def scores(self, text: str, context: TagContext = _NO_CONTEXT) -> np.ndarray:
        """Class probabilities in the order of ``LABELS``."""
        z = self._logits(text, context)[0]
        z = np.exp(z - z.max())
        return z / z.sum()

    def states_answer(self, text: str, context: TagContext = _NO_CONTEXT) -> float:
        """Probability that the step puts forward a candidate answer to the whole question."""
        w = self.weights
        idx, vals = self.encoder.encode(text, context)
        z = float(np.asarray(vals, dtype=np.float32) @ w.sa_coef[idx]) + w.sa_intercept
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0

    def tag(self, text: str, context: TagContext = _NO_CONTEXT) -> Tag:
        z, idx, v, rows = self._logits(text, context)
        zl = z.tolist()
        top = max(zl)
        e = [math.exp(x - top) for x in zl]
        total = sum(e)
        # role first (the stopping criteria consume roles), then the best type of that role
        best_role = max(_ROLE_LISTS, key=lambda members: sum(e[i] for i in members))
        c = max(best_role, key=e.__getitem__)
        conf = e[c] / total
        contrib = (rows[:, c] * v).tolist()
        order = sorted(range(len(contrib)), key=contrib.__getitem__, reverse=True)[:3]
        feats: list[str] = []
        enc = self.encoder
        for j in order:
            if contrib[j] <= 0:
                break
            n = enc.name(idx[j])
            if n not in feats:
                feats.append(n)
        evidence = "features: " + (", ".join(feats) if feats else "bias")
        return Tag(LABELS[c], min(max(conf, 0.0), 1.0), evidence)

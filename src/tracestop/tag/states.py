"""The states-answer head: does a step put forward a candidate answer to the whole question?

A small logistic model, numpy only at run time, that reads each step as the Monitor sees it:
the step's text, the question's facts (options, numbers, what it asks for), the previous
step's text and the answer reader's picture (the explicit statement it found, the candidate it
credited to the step, the current tracked candidate). It never changes what the reader tracks
or what a policy sees: the Monitor only reports its verdict per step (``StatesVerdict``:
flag, probability, one line of evidence). docs/tagger.md, "States-answer head".

Features (all named strings, looked up in the vocabulary stored with the weights; unseen
names are dropped; ``features`` builds them):

- ``o:`` the head's first word, ``h:`` / ``hh:`` unigrams / bigrams of the head (first line,
  bullets stripped, first ``HEAD_WORDS`` words), ``t:`` / ``tt:`` unigrams / bigrams of the
  tail (the last ``TAIL_CHARS`` characters), and ``f:tt:`` the tail bigrams crossed with the
  answer format; numbers fold to ``#``, option letters of a multiple-choice question to ``<L>``;
- ``r:`` the reader: an explicit statement (``r:strong``), a candidate credited to the step
  (``r:stated``, by kind), the current candidate named in the step / its tail
  (``r:current_body`` / ``r:current_tail``), no candidate yet (``r:none_yet``);
- ``m:`` math: the tail's last number new to the question, the step ending on a number, the
  question's ask words named in the tail; ``c:`` choice: option letters and option contents
  named in the tail / body (one or several); ``y:`` yes / no in the tail;
- ``p:`` position (index buckets, short step), ``v:`` the previous step (explicit statement,
  current candidate named there);
- all of ``r:`` / ``m:`` / ``c:`` / ``y:`` / ``p:`` also crossed with the answer format.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from tracestop.answers.extract import value_sentences

__all__ = [
    "DEFAULT_STATES_WEIGHTS",
    "STATES_VERSION",
    "StatesContext",
    "StatesHead",
    "StatesVerdict",
    "StatesWeights",
    "features",
    "states_context",
]

#: Bump when the features change; the weights file records it and a mismatch is an error.
STATES_VERSION = 2
HEAD_WORDS = 8
TAIL_CHARS = 200
DEFAULT_STATES_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "states.npz"

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:[.,]\d+)*|[=?:]")
_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_LETTER = re.compile(r"(?<![A-Za-z])([A-J])(?![A-Za-z])")
_BULLET = re.compile(r"^[\s*\-•#>]+")
_WORDS = re.compile(r"[a-z0-9%.]+")
_YES = re.compile(r"\byes\b", re.IGNORECASE)
_NO = re.compile(r"\bno\b", re.IGNORECASE)
_ENDS_NUMBER = re.compile(r"\d[^\w]*$")
_INDEX_BUCKETS = (0, 1, 3, 6, 11, 21, 41, 81)
_END_CHARS = " \t\n.!?*)"
_SENT_END = re.compile(r"[.!?](?=\s)|\n")
_CAND_LAST = frozenset(("m:last_new_number", "c:letter_last", "c:letters_last", "c:words_last",
                        "c:wordss_last", "y:yesno_last"))
_CAND_TAIL = frozenset(("m:tail_new_number", "c:letter_tail", "c:letters_tail", "c:words_tail",
                        "c:wordss_tail", "y:yes_tail", "y:no_tail"))
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_CONTENT = re.compile(r"[a-z][a-z0-9]{2,}")
_COMPACT = re.compile(r"[a-z0-9.]+")
_SYMBOLS = re.compile(r"[\\$_{}^*]")
_STOP = frozenset((
    "the", "and", "for", "with", "that", "this", "are", "was", "were", "not", "but", "from",
    "its", "their", "than", "more", "less", "all", "any", "only", "both", "each", "which",
    "what", "who", "has", "have", "had", "been", "being", "into", "onto", "over", "under",
    "can", "could", "should", "would", "will", "may", "might", "must", "one", "two", "there",
))
_OPTION_LINE = re.compile(r"(?m)^[\s*\-•>]*\(?([A-J])[).:]\**\s*(.*)$")
_POSITIVE = re.compile(r"\b(?:yes|true|correct|matches|fits|consistent|best|right)\b|✓",
                       re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(?:no|not|false|incorrect|wrong|unlikely|isn't|doesn't|rule[sd]? "
                       r"out|eliminat\w*)\b|✗", re.IGNORECASE)
_HEDGE = re.compile(r"\b(?:seems?|likely|plausible|probably|perhaps|maybe|might|leaning|"
                    r"guess|suspect|appears?)\b", re.IGNORECASE)
_DECISIVE = re.compile(r"\b(?:so|therefore|thus|hence|answer|final|conclude|correct|must be|"
                       r"only one|go with|choose|pick|select)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class StatesContext:
    """What the head knows besides the step text, all of it there at run time.

    ``strong``: the reader found an explicit statement (boxed, "the answer is", an option
    cue); ``stated``: the kind of the candidate the reader credited to this step when it read
    it ("" when none); ``current``: the tracked candidate before this step (None: none yet);
    ``options``: letter → normalised option text; ``numbers`` / ``ask``: the question's numbers
    and ask words; ``previous``: the previous step's text."""

    index: int = 0
    answer_format: str = "math"
    strong: bool = False
    stated: str = ""
    current: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    numbers: frozenset[str] = frozenset()
    ask: frozenset[str] = frozenset()
    previous: str = ""


class StatesVerdict:
    """The head's verdict on one step: ``flag`` (p >= the shipped threshold), ``p`` and
    ``evidence``: the three features that pushed most towards the verdict, one line, formatted
    on first read (the Monitor reads it only for its report)."""

    __slots__ = ("_evidence", "_parts", "flag", "p")

    def __init__(self, flag: bool, p: float, evidence: str = "",
                 parts: tuple[list[str], list[float]] | None = None) -> None:
        self.flag = flag
        self.p = p
        self._evidence = evidence
        self._parts = parts

    @property
    def evidence(self) -> str:
        if self._parts is not None:
            names, contrib = self._parts
            order = sorted(range(len(names)), key=lambda i: -contrib[i] if self.flag
                           else contrib[i])[:3]
            self._evidence = ", ".join(f"{names[i]} {contrib[i]:+.2f}" for i in order)
            self._parts = None
        return self._evidence

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, StatesVerdict) and (self.flag, self.p, self.evidence)
                == (other.flag, other.p, other.evidence))

    def __hash__(self) -> int:
        return hash((self.flag, self.p))

    def __repr__(self) -> str:
        return f"StatesVerdict(flag={self.flag}, p={self.p:.3f}, evidence={self.evidence!r})"


def _tokens(text: str, letters: bool) -> list[str]:
    if letters:
        text = _LETTER.sub(" qqletter ", text)
    return [_FOLD.get(t, t) if t[0].isalpha() else ("#" if t[0].isdigit() else t)
            for t in _TOKEN.findall(text.lower())]


_FOLD = {"qqletter": "<L>"}


def _has_value(text: str, value: str) -> bool:
    v = value.strip()
    if not v:
        return False
    if v.replace(".", "", 1).replace(",", "").lstrip("-").isdigit():
        return any(n.replace(",", "") == v.replace(",", "") for n in _NUM.findall(text))
    if len(v) == 1 and v.isalpha():
        return any(m.group(1) == v.upper() for m in _LETTER.finditer(text))
    return v.lower() in text.lower()


def _last_sentence(tail: str) -> str:
    """The tail's last sentence (or line): after the last sentence end before its own end."""
    body = tail.rstrip(_END_CHARS)
    start = 0
    for m in _SENT_END.finditer(body):
        start = m.end()
    return tail[start:].strip()


@lru_cache(maxsize=256)
def _option_facts(options: tuple[tuple[str, str], ...]
                  ) -> tuple[dict[str, str], dict[str, str], dict[str, str], frozenset[str]]:
    """Per question, once: word → letter for content words in one option only; compact short
    option text ("c2h", "cs") → letter; leading number → letter; the letters."""
    words: dict[str, set[str]] = {}
    for k, v in options:
        for w in set(_CONTENT.findall(v)):
            if w not in _STOP:
                words.setdefault(w, set()).add(k)
    distinct = {w: next(iter(ks)) for w, ks in words.items() if len(ks) == 1}
    compact: dict[str, set[str]] = {}
    numbers: dict[str, set[str]] = {}
    for k, v in options:
        c = v.replace(" ", "")
        if 1 < len(c) <= 12 and not c.replace(".", "").isdigit():
            compact.setdefault(c, set()).add(k)
        m = _NUM.match(v)
        if m:
            numbers.setdefault(m.group().replace(",", ""), set()).add(k)
    one_c = {c: next(iter(ks)) for c, ks in compact.items() if len(ks) == 1}  # ambiguous out
    one_n = {n: next(iter(ks)) for n, ks in numbers.items() if len(ks) == 1}
    return distinct, one_c, one_n, frozenset(k for k, _ in options)


def _choice(text: str, tail: str, last: str, first: str, ctx: StatesContext,
            dense: list[str]) -> None:
    """The multiple-choice features (module docstring, ``c:``)."""
    distinct, compact, numbers, letters = _option_facts(tuple(ctx.options.items()))
    letters_tail = {m.group(1) for m in _LETTER.finditer(tail)} & letters
    letters_all = {m.group(1) for m in _LETTER.finditer(text)} & letters
    letters_last = {m.group(1) for m in _LETTER.finditer(last)} & letters
    if letters_tail:
        dense.append("c:letter_tail" if len(letters_tail) == 1 else "c:letters_tail")
    if letters_all:
        dense.append("c:letter_body" if len(letters_all) == 1 else "c:letters_body")
    if letters_last:
        dense.append("c:letter_last" if len(letters_last) == 1 else "c:letters_last")
        if ctx.current is not None:
            dense.append("c:last_current" if ctx.current in letters_last else "c:last_new")
        toks = _tokens(last, True)
        for i, t in enumerate(toks):
            if t == "<L>":
                dense.append(f"cl:{toks[i - 1]}" if i else "cl:^")
                dense.append(f"cr:{toks[i + 1]}" if i + 1 < len(toks) else "cr:$")
    low_tail = " " + " ".join(_WORDS.findall(tail.lower())) + " "
    low = " " + " ".join(_WORDS.findall(text.lower())) + " "
    named_tail = [k for k, v in ctx.options.items() if f" {v} " in low_tail]
    by_content = [k for k, v in ctx.options.items() if f" {v} " in low]
    if named_tail:
        dense.append("c:content_tail" if len(named_tail) == 1 else "c:contents_tail")
    if by_content:
        dense.append("c:content_body" if len(by_content) == 1 else "c:contents_body")
    if first[:2].rstrip(":.)") in letters and len(first) > 1:
        dense.append("c:starts_option")
    # the option's own words, compact symbols and numbers in the last sentence / the tail
    for name, part in (("last", last), ("tail", tail)):
        low_part = part.lower()
        hits: dict[str, int] = {}
        for w in _CONTENT.findall(low_part):
            k = distinct.get(w)
            if k is not None:
                hits[k] = hits.get(k, 0) + 1
        for w in _COMPACT.findall(_SYMBOLS.sub("", low_part)):
            k = compact.get(w)
            if k is not None:
                hits[k] = hits.get(k, 0) + 2
        for n in _NUM.findall(part):
            k = numbers.get(n.replace(",", ""))
            if k is not None:
                hits[k] = hits.get(k, 0) + 2
        strong = [k for k, c in hits.items() if c >= 2]
        if strong:
            dense.append(f"c:words_{name}" if len(strong) == 1 else f"c:wordss_{name}")
            if name == "last" and ctx.current is not None:
                dense.append("c:words_current" if ctx.current in strong else "c:words_new")
    # an option-by-option verdict list: how many options it keeps / rejects
    pos = neg = 0
    for m in _OPTION_LINE.finditer(text):
        line = m.group(2)
        if _POSITIVE.search(line):
            pos += 1
        elif _NEGATIVE.search(line):
            neg += 1
    if pos or neg:
        dense.append("c:list_one_pos" if pos == 1 else ("c:list_pos" if pos else "c:list_no_pos"))
        if neg >= 2:
            dense.append("c:list_neg")


def features(text: str, ctx: StatesContext) -> list[str]:
    """The step's feature names (module docstring); duplicates count once."""
    fmt = ctx.answer_format
    choice = fmt == "choice" and bool(ctx.options)
    stripped = text.strip()
    nl = stripped.find("\n")
    first = _BULLET.sub("", stripped if nl < 0 else stripped[:nl])
    tail = stripped[-TAIL_CHARS:]
    last = _last_sentence(tail)
    head_toks = _tokens(first, choice)[:HEAD_WORDS]
    tail_toks = _tokens(tail, choice)
    last_toks = _tokens(last, choice)[:3]
    out: list[str] = []
    if head_toks:
        out.append(f"o:{head_toks[0]}")
    out += [f"h:{t}" for t in head_toks]
    out += [f"hh:{a}_{b}" for a, b in pairwise(head_toks)]
    out += [f"t:{t}" for t in tail_toks]
    tt = [f"{a}_{b}" for a, b in pairwise(tail_toks)]
    out += ["tt:" + g for g in tt]
    out += [f"{fmt}:tt:" + g for g in tt]
    if last_toks:
        out.append(f"l:{last_toks[0]}")
        out.append(f"{fmt}:l:{last_toks[0]}")
        if len(last_toks) > 1:
            out.append(f"ll:{last_toks[0]}_{last_toks[1]}")
            out.append(f"{fmt}:ll:{last_toks[0]}_{last_toks[1]}")
    dense: list[str] = []
    # the reader
    if ctx.strong:
        dense.append("r:strong")
    if ctx.stated:
        dense += ["r:stated", f"r:stated={ctx.stated}"]
    if ctx.current is None:
        dense.append("r:none_yet")
    else:
        if _has_value(stripped, ctx.current):
            dense.append("r:current_body")
        if _has_value(tail, ctx.current):
            dense.append("r:current_tail")
        if _has_value(last, ctx.current):
            dense.append("r:current_last")
    # the last sentence: a question, a hedge, a conclusion, a negation
    if last.endswith("?"):
        dense.append("u:question_last")
    if _HEDGE.search(last):
        dense.append("u:hedge_last")
    if _DECISIVE.search(last):
        dense.append("u:decisive_last")
    if _NEGATIVE.search(last):
        dense.append("u:negative_last")
    # per format
    if fmt == "math":
        nums = [n.replace(",", "") for n in _NUM.findall(tail)]
        if nums:
            dense.append("m:tail_number")
            if nums[-1] not in ctx.numbers:
                dense.append("m:tail_new_number")
        else:
            dense.append("m:tail_no_number")
        if _ENDS_NUMBER.search(stripped):
            dense.append("m:ends_number")
        if "\\boxed" in text:
            dense.append("m:boxed")
        vs = value_sentences(text)  # memoised: the answer reader has just read them
        if vs:
            offset, value, sent, cue = vs[-1]
            dense.append("m:vs_cue" if cue else "m:vs")
            if offset + len(sent) >= len(text.rstrip()) - 3:
                dense.append("m:vs_last_cue" if cue else "m:vs_last")
            if value.replace(",", "") not in ctx.numbers:
                dense.append("m:vs_new")
            if ctx.previous and _has_value(ctx.previous, value):
                dense.append("m:vs_prev")
            if ctx.current is not None and value.strip() == ctx.current.strip():
                dense.append("m:vs_current")
            if len(vs) == 1:
                dense.append("m:vs_one")
        if ctx.ask:
            low = tail.lower()
            named = sum(1 for w in ctx.ask if w in low)
            if named:
                dense.append("m:ask_tail")
                if 2 * named >= len(ctx.ask):
                    dense.append("m:ask_tail_half")
                low_last = last.lower()
                if any(w in low_last for w in ctx.ask):
                    dense.append("m:ask_last")
                    if _NUM.search(last):
                        dense.append("m:ask_last_number")
        last_nums = _NUM.findall(last)
        if last_nums:
            dense.append("m:last_number")
            if last_nums[-1].replace(",", "") not in ctx.numbers:
                dense.append("m:last_new_number")
    elif choice:
        _choice(stripped, tail, last, first, ctx, dense)
    elif fmt == "yesno":
        if _YES.search(tail):
            dense.append("y:yes_tail")
        if _NO.search(tail):
            dense.append("y:no_tail")
        if _YES.search(first) or _NO.search(first):
            dense.append("y:yesno_head")
        if _YES.search(last) or _NO.search(last):
            dense.append("y:yesno_last")
    # a candidate of the format (a new number, an option, yes / no) in the last sentence / the
    # tail, and how the last sentence puts it: the same names for every format
    cand_last = any(d in _CAND_LAST for d in dense)
    if cand_last:
        dense.append("u:cand_last")
        for d in ("u:question_last", "u:hedge_last", "u:decisive_last", "u:negative_last"):
            if d in dense:
                dense.append(f"u:cand_{d[2:]}")
    if any(d in _CAND_TAIL for d in dense):
        dense.append("u:cand_tail")
    # position and the previous step
    b = 0
    for k, lo in enumerate(_INDEX_BUCKETS):
        if ctx.index >= lo:
            b = k
    dense.append(f"p:index{_INDEX_BUCKETS[b]}")
    if len(stripped) < 80:
        dense.append("p:short")
    elif len(stripped) > 1000:
        dense.append("p:long")
    if ctx.previous:
        prev_tail = ctx.previous[-TAIL_CHARS:]
        if ctx.current is not None and _has_value(prev_tail, ctx.current):
            dense.append("v:current_tail")
        if prev_tail.rstrip().endswith("?"):
            dense.append("v:question")
    out += dense
    out += [f"{fmt}|{d}" for d in dense]
    out.append("bias")
    return out


@dataclass(frozen=True, slots=True)
class StatesWeights:
    """Vocabulary (feature name → column), weights, intercept, decision threshold."""

    vocab: Mapping[str, int]
    coef: np.ndarray
    intercept: float
    threshold: float
    names: tuple[str, ...] = ()
    #: answer format → its own decision threshold (formats not named use ``threshold``)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    #: feature name → weight, as Python floats (one dict lookup per feature at run time)
    by_name: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.by_name:
            coef = self.coef.tolist()
            self.by_name.update((n, float(coef[i])) for n, i in self.vocab.items())

    @classmethod
    def load(cls, path: str | Path) -> StatesWeights:
        with np.load(Path(path), allow_pickle=False) as z:
            version = int(z["version"])
            if version != STATES_VERSION:
                raise ValueError(f"{path}: states-answer weights version {version}, the code "
                                 f"needs {STATES_VERSION} (retrain: scripts/train_states.py)")
            names = tuple(str(s) for s in z["vocab"])
            by_format = {str(f): float(t) for f, t in zip(z["formats"], z["format_thresholds"],
                                                            strict=True)}
            return cls({n: i for i, n in enumerate(names)}, np.asarray(z["coef"], np.float64),
                       float(z["intercept"]), float(z["threshold"]), names, by_format)

    def threshold_for(self, answer_format: str) -> float:
        """The decision threshold of ``answer_format``'s steps."""
        return self.thresholds.get(answer_format, self.threshold)

    def arrays(self) -> dict[str, Any]:
        """The arrays ``load`` reads back (``np.savez`` them)."""
        names = self.names or tuple(sorted(self.vocab, key=self.vocab.__getitem__))
        return {"version": np.array(STATES_VERSION), "vocab": np.array(names),
                "coef": self.coef.astype(np.float32), "intercept": np.array(self.intercept),
                "threshold": np.array(self.threshold),
                "formats": np.array(sorted(self.thresholds), dtype=str),
                "format_thresholds": np.array([self.thresholds[f] for f in sorted(self.thresholds)],
                                              dtype=np.float64)}


_CACHE: dict[str, StatesWeights] = {}
_LOCK = threading.Lock()


def _weights(path: str | Path) -> StatesWeights:
    key = str(path)
    w = _CACHE.get(key)
    if w is None:
        with _LOCK:
            w = _CACHE.get(key)
            if w is None:
                w = _CACHE[key] = StatesWeights.load(path)
    return w


class StatesHead:
    """The states-answer head (module docstring). Weights load on first use, cached per path;
    ``weights`` may also be a ``StatesWeights`` (cross-validation)."""

    def __init__(self, weights: StatesWeights | str | Path | None = None) -> None:
        self._given = weights if isinstance(weights, StatesWeights) else None
        self._path: str | Path = (DEFAULT_STATES_WEIGHTS if weights is None
                                  or isinstance(weights, StatesWeights) else weights)

    @property
    def weights(self) -> StatesWeights:
        return self._given if self._given is not None else _weights(self._path)

    def columns(self, names: Iterable[str]) -> list[int]:
        """The vocabulary columns of ``names`` (each once, unseen names dropped)."""
        vocab = self.weights.vocab
        return sorted({vocab[n] for n in names if n in vocab})

    def _z(self, text: str, ctx: StatesContext) -> tuple[float, list[str], list[float]]:
        w = self.weights
        get = w.by_name.get
        names, contrib = [], []
        for n in dict.fromkeys(features(text, ctx)):
            c = get(n)
            if c is not None:
                names.append(n)
                contrib.append(c)
        return w.intercept + sum(contrib), names, contrib

    def probability(self, text: str, ctx: StatesContext) -> float:
        """p(the step states an answer)."""
        z = self._z(text, ctx)[0]
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def read(self, text: str, ctx: StatesContext) -> StatesVerdict:
        """The verdict on one step (its evidence is formatted on first read)."""
        z, names, contrib = self._z(text, ctx)
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        return StatesVerdict(p >= self.weights.threshold_for(ctx.answer_format), p,
                             parts=(names, contrib))


def states_context(index: int, answer_format: str, strong: bool, stated: str,
                   current: str | None, question: Any, previous: str) -> StatesContext:
    """A ``StatesContext`` from the Monitor's pieces (``question``: the reader's
    ``QuestionFacts``)."""
    return StatesContext(index, answer_format, strong, stated, current,
                         _options_map(question.options), question.numbers, question.ask, previous)


@lru_cache(maxsize=256)
def _options_map(options: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
    """A question's options as a read-only mapping, built once per question, not per step."""
    return MappingProxyType(dict(options))

"""Is a value in a concluding sentence the model's answer, or an intermediate result?

"So, 40 cobras have 2800 spots." and "So, half of that is 2450." look alike; only the second
answers the question. ``AnswerScorer`` is a logistic model over cheap text features of the
sentence (hashed words, numbers masked) and of its context (step type, whether the value is a
number given in the question, whether the sentence ends the step, step position, how often the
value was stated before, how many of the words naming what the question asks for — "How many
*women* are *left*?" — the sentence repeats, whether the value carries the unit the question
asks for — "$250" when it asks "How many *guests*?" does not), and of **the step that follows** (its first words
and type, whether it restates the value or brings new ones): a model that has its answer turns
to checking it ("Wait, let me verify: 3 × 4 + 5 × 6 = 42."), one with an intermediate result
goes on computing. The ``AnswerReader`` therefore judges a step's prose values one step late, when the
next step is complete. It is trained by ``scripts/train_answer_scorer.py`` on the
dev split of the recorded traces with distant supervision (a value is positive when it is the
trace's recorded final answer), and ships as a small ``.npz``. Inference is pure numpy-free
Python: a dot product over a few dozen active features.

The features are named: ``FEATURES`` lists each with how it is computed, in the order of
the weights file (after the ``N_HASH`` hashed word features).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from operator import mul as _mul
from pathlib import Path

from tracestop._types import StepType
from tracestop.answers.extract import value_key, value_sentences
from tracestop.answers.question import stem
from tracestop.errors import ConfigError

__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURES",
    "N_FEATURES",
    "N_HASH",
    "AnswerScorer",
    "ScorerInput",
    "featurize",
    "fold_weights",
    "remember",
    "remember_text",
    "step_inputs",
    "value_unit",
    "with_next",
]

#: hashed word features (crc32 of a word, a word pair, or the next step's opening words)
N_HASH = 1 << 14

#: The dense features, name → how it is computed, in the order of the weights file (after
#: the ``N_HASH`` hashed features). Values are 1.0 when the condition holds, else absent.
FEATURES: tuple[tuple[str, str], ...] = (
    *((f"type={t.value}", f"the step is tagged {t.value}") for t in StepType),
    ("in_question", "the value is one of the numbers the question gives"),
    ("last_sentence", "the sentence is the step's last value-stating sentence"),
    ("log_index", "log(1 + step index) / 5"),
    ("cue", "the sentence opens with a concluding word (So, Therefore, The answer, ...)"),
    ("log_mentions", "log(1 + earlier steps that stated the same value)"),
    ("integer", "the value is an integer"),
    ("bias", "always 1.0"),
    ("ask_overlap", "share of the question's asked-for words (``question_ask``) the sentence names"),
    ("ask_any", "the sentence names at least one asked-for word"),
    # the step that follows (``with_next``)
    ("next_none", "no step follows (the thinking ended after this one)"),
    ("next_same", "the next step states the same value in a value sentence"),
    ("next_other", "the next step states other values"),
    ("next_mentions", "the next step's text contains the value"),
    *((f"next={t.value}", f"the next step is tagged {t.value}") for t in StepType),
    # the unit the value carries against the unit the question asks for ("$250" when it asks
    # "how many guests"): ``question_unit``, ``value_unit``
    ("unit_match", "the value's unit is the unit the question asks for"),
    ("unit_mismatch", "the value carries another unit than the one the question asks for"),
)
_INDEX = {name: N_HASH + i for i, (name, _) in enumerate(FEATURES)}
N_FEATURES = N_HASH + len(FEATURES)
DEFAULT_WEIGHTS = Path(__file__).parent.parent / "weights" / "answer_scorer.npz"

_TOKEN = re.compile(r"[a-z]+|[=$%]")
_NUM = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True, slots=True)
class ScorerInput:
    """One value-stating sentence of a step, with its context."""

    sentence: str
    value: str
    type: StepType
    index: int
    last_sentence: bool
    cue: bool
    mentions: int  # earlier steps that stated the same value
    question_numbers: frozenset[str]
    ask: frozenset[str] = frozenset()  # content words of what the question asks for
    # the step that follows: None until it is known (``with_next``); "" when the thinking ended
    next_text: str | None = None
    next_type: StepType | None = None
    next_values: frozenset[str] = frozenset()  # the values the following step states
    ask_unit: str = ""  # the unit the question asks for (``question_unit``)


_UNIT_SKIP = frozenset((
    "more", "less", "fewer", "total", "in", "of", "the", "extra", "additional", "new", "other",
    "remaining", "left", "each", "per", "a", "an", "whole", "full", "square", "cubic",
))


def value_unit(sentence: str, value: str) -> str:
    """The unit a sentence gives its value: ``"$"`` ("$250", "250 dollars"), ``"%"``, the
    stemmed noun after it ("10 guests" → guest), or ``""``."""
    v = value_key(value)
    if not v:
        return ""
    s = _THOUSANDS.sub("", sentence)
    at = -1
    for at in _occurrences(s, v):
        pass
    if at < 0:
        return ""
    if "$" in s[max(0, at - 2) : at]:
        return "$"
    after = s[at + len(v) : at + len(v) + 40].lower()
    if _PERCENT_AFTER.match(after):
        return "%"
    words = _NEXT_WORD.findall(after)[:2]
    if words and words[0] in ("dollars", "dollar", "cents"):
        return "$"
    for w in words:
        if w not in _UNIT_SKIP:
            return stem(w)
    return ""


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3})")
_PERCENT_AFTER = re.compile(r"\s*(?:%|percent)")


def _occurrences(text: str, value: str) -> Iterator[int]:
    """Where ``value`` occurs in ``text`` as a whole number (no digit or ``.`` before it, no
    digit after it), left to right and not overlapping: what
    ``re.finditer(r"(?<![\\d.])" + re.escape(value) + r"(?![\\d])", text)`` finds, without
    compiling a pattern per value."""
    n = len(value)
    i = text.find(value)
    while i >= 0:
        before = text[i - 1] if i else ""
        after = text[i + n] if i + n < len(text) else ""
        if not (before == "." or _is_digit(before)) and not _is_digit(after):
            yield i
            i = text.find(value, i + max(n, 1))
        else:
            i = text.find(value, i + 1)


def _is_digit(c: str) -> bool:
    return bool(c) and _DIGIT.match(c) is not None


_DIGIT = re.compile(r"\d")


#: crc32 of each hashed token seen (``_h``): a plain dict, emptied when it grows past
#: ``_HASHES_MAX`` (the hash is a pure function of the token, so only the speed depends on it)
_HASHES: dict[str, int] = {}
_HASHES_MAX = 1 << 17


def _h(token: str) -> int:
    i = _HASHES.get(token)
    if i is None:
        if len(_HASHES) >= _HASHES_MAX:
            _HASHES.clear()
        i = _HASHES[token] = zlib.crc32(token.encode("utf-8")) & (N_HASH - 1)
    return i


_STEMS: dict[str, str] = {}


def _stem(word: str) -> str:
    """``stem``, memoised (a plain dict, emptied past ``_HASHES_MAX`` words)."""
    s = _STEMS.get(word)
    if s is None:
        if len(_STEMS) >= _HASHES_MAX:
            _STEMS.clear()
        s = _STEMS[word] = stem(word)
    return s


def _set(feats: dict[int, float], name: str, value: float = 1.0) -> None:
    feats[_INDEX[name]] = value


_TYPE_ROW = {t: _INDEX[f"type={t.value}"] for t in StepType}
_NEXT_TYPE_ROW = {t: _INDEX[f"next={t.value}"] for t in StepType}
_IN_QUESTION = _INDEX["in_question"]
_LAST_SENTENCE = _INDEX["last_sentence"]
_LOG_INDEX = _INDEX["log_index"]
_CUE_ROW = _INDEX["cue"]
_LOG_MENTIONS = _INDEX["log_mentions"]
_INTEGER_ROW = _INDEX["integer"]
_BIAS_ROW = _INDEX["bias"]
_ASK_OVERLAP = _INDEX["ask_overlap"]
_ASK_ANY = _INDEX["ask_any"]
_NEXT_NONE = _INDEX["next_none"]
_NEXT_SAME = _INDEX["next_same"]
_NEXT_OTHER = _INDEX["next_other"]
_NEXT_MENTIONS = _INDEX["next_mentions"]
_UNIT_MATCH = _INDEX["unit_match"]
_UNIT_MISMATCH = _INDEX["unit_mismatch"]
_INTEGER = re.compile(r"-?\d+")
_SCALES = tuple(1.0 / math.sqrt(k) if k else 0.0 for k in range(512))
_log1p = math.log1p


def featurize(x: ScorerInput) -> dict[int, float]:
    """Sparse features, index → value: the hashed words and word pairs of the sentence
    (numbers masked), then the named ``FEATURES``."""
    # numbers are masked: no token holds a digit, ``.`` or ``,``, so the tokens of the text
    # with its numbers replaced (by " 0 ") are the tokens of the text itself
    words = _TOKEN.findall(x.sentence.lower())
    feats: dict[int, float] = {}
    if words:
        grams = words + [a + "_" + b for a, b in zip(words, words[1:])]  # noqa: RUF007
        n = len(grams)
        w = _SCALES[n] if n < 512 else 1.0 / math.sqrt(n)
        get = _HASHES.get
        for g in grams:
            i = get(g)
            if i is None:
                i = _h(g)
            if i in feats:
                feats[i] += w
            else:
                feats[i] = w
    feats[_TYPE_ROW[x.type]] = 1.0
    v = value_key(x.value)
    if v in x.question_numbers:
        feats[_IN_QUESTION] = 1.0
    if x.last_sentence:
        feats[_LAST_SENTENCE] = 1.0
    feats[_LOG_INDEX] = _log1p(x.index) / 5
    if x.cue:
        feats[_CUE_ROW] = 1.0
    feats[_LOG_MENTIONS] = _log1p(x.mentions)
    if _INTEGER.fullmatch(v):
        feats[_INTEGER_ROW] = 1.0
    feats[_BIAS_ROW] = 1.0
    if x.ask:
        hit = len(x.ask.intersection([_stem(w) for w in words if len(w) >= 3]))
        if hit:
            feats[_ASK_OVERLAP] = hit / len(x.ask)
            feats[_ASK_ANY] = 1.0
    if x.next_text is not None:
        _next_features(x, v, feats)
    if x.ask_unit:
        unit = value_unit(x.sentence, x.value)
        if unit:
            feats[_UNIT_MATCH if unit == x.ask_unit else _UNIT_MISMATCH] = 1.0
    return feats


_NEXT_WORD = re.compile(r"[a-z]+")
#: (text, blank, its opening-word hashes, the text without commas): the last next step read
#: (``with_next`` hands every pending input the same text)
_NextView = tuple[str, bool, int, int, str]
_LAST_NEXT: list[_NextView] = [("", True, 0, 0, "")]


def _next_view(text: str) -> _NextView:
    last = _LAST_NEXT[0]
    if last[0] is text:
        return last
    if not text.strip():
        view: _NextView = (text, True, 0, 0, "")
    else:
        head = _NEXT_WORD.findall(text[:60].lower())[:2]
        view = (text, False, _h("next1:" + "_".join(head[:1])), _h("next2:" + "_".join(head)),
                text.replace(",", ""))
    _LAST_NEXT[0] = view
    return view


def _next_features(x: ScorerInput, v: str, feats: dict[int, float]) -> None:
    """What the following step does with the value: its opening words ("wait", "let me
    check", "first"), its type, whether it states the value again or other values."""
    _, blank, h1, h2, bare = _next_view(x.next_text or "")
    if blank or x.next_type is None:
        feats[_NEXT_NONE] = 1.0
        return
    feats[h1] = feats.get(h1, 0.0) + 0.5
    feats[h2] = feats.get(h2, 0.0) + 0.5
    values = x.next_values
    if v in values:
        feats[_NEXT_SAME] = 1.0
        if len(values) > 1:
            feats[_NEXT_OTHER] = 1.0
    elif values:
        feats[_NEXT_OTHER] = 1.0
    if v and next(_occurrences(bare, v), -1) >= 0:
        feats[_NEXT_MENTIONS] = 1.0
    feats[_NEXT_TYPE_ROW[x.next_type]] = 1.0


def with_next(inputs: list[ScorerInput], text: str, type_: StepType | None) -> list[ScorerInput]:
    """The inputs of a step, completed with the step that follows it (``text=""`` and
    ``type_=None`` when the thinking ended after it)."""
    if not inputs:
        return inputs
    values = frozenset(value_key(v) for _, v, _, _ in value_sentences(text)) if text else frozenset()
    return [
        ScorerInput(x.sentence, x.value, x.type, x.index, x.last_sentence, x.cue, x.mentions,
                    x.question_numbers, x.ask, text, type_, values, x.ask_unit)
        for x in inputs
    ]


def step_inputs(
    text: str,
    type_: StepType,
    index: int,
    mentions: dict[str, int],
    qnums: frozenset[str],
    ask: frozenset[str] = frozenset(),
    ask_unit: str = "",
) -> list[ScorerInput]:
    """The scorer inputs of every value-stating sentence of a step, in order."""
    found = value_sentences(text)
    return [
        ScorerInput(sent, value, type_, index, i == len(found) - 1, cue,
                    mentions.get(value_key(value), 0), qnums, ask, ask_unit=ask_unit)
        for i, (_, value, sent, cue) in enumerate(found)
    ]


def remember(mentions: dict[str, int], inputs: list[ScorerInput]) -> None:
    """Count each value once per step (call after scoring the step)."""
    _count(mentions, {value_key(x.value) for x in inputs})


def remember_text(mentions: dict[str, int], text: str) -> None:
    """What ``remember`` counts for a step that is not scored (it states its answer
    explicitly), without building the scorer inputs."""
    _count(mentions, {value_key(value) for _, value, _, _ in value_sentences(text)})


def _count(mentions: dict[str, int], values: set[str]) -> None:
    for v in values:
        mentions[v] = mentions.get(v, 0) + 1


def fold_weights(fold: int, weights: str | Path = DEFAULT_WEIGHTS) -> Path:
    """The out-of-fold model beside ``weights``: trained without the dev problems of ``fold``
    (``tracestop.evaluate.data.fold_of``); replay scores dev-split traces with these."""
    w = Path(weights)
    return w.with_name(f"{w.stem}.fold{fold}{w.suffix}")


@lru_cache(maxsize=8)
def _load(path: str) -> tuple[list[float], str]:
    import numpy as np

    with np.load(path) as z:
        coef = [float(c) for c in z["coef"]]
        meta = str(z["meta"])
    if len(coef) != N_FEATURES:
        raise ConfigError(f"answer scorer weights {path} have {len(coef)} features, expected {N_FEATURES}")
    return coef, meta


class AnswerScorer:
    """Probability that a concluding sentence states the answer to the whole question."""

    def __init__(self, weights: str | Path | None = None) -> None:
        self.path = Path(weights) if weights else DEFAULT_WEIGHTS
        self._coef, self.meta = _load(str(self.path))

    def score(self, x: ScorerInput) -> float:
        feats = featurize(x)
        # the same products, summed in the same order, as ``sum(coef[i] * v for i, v in ...)``
        z = sum(map(_mul, map(self._coef.__getitem__, feats), feats.values()))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

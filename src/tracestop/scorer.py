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
goes on computing. The Monitor therefore judges a step's prose values one step late, when the
next step is complete. It is trained by ``scripts/train_answer_scorer.py`` on the
dev split of the recorded traces with distant supervision (a value is positive when it is the
trace's recorded final answer), and ships as a small ``.npz``. Inference is pure numpy-free
Python: a dot product over a few dozen active features.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from tracestop._types import StepType

__all__ = [
    "AnswerScorer",
    "ScorerInput",
    "featurize",
    "fold_weights",
    "question_ask",
    "question_numbers",
    "question_unit",
    "remember",
    "remember_text",
    "step_inputs",
    "value_unit",
    "with_next",
]

N_HASH = 1 << 14
_TYPES = list(StepType)
_DENSE = [f"type={t.value}" for t in _TYPES] + [
    "in_question", "last_sentence", "log_index", "cue", "log_mentions", "integer", "bias",
    "ask_overlap", "ask_any",
    # the step that follows (``with_next``)
    "next_none", "next_same", "next_other", "next_mentions",
] + [f"next={t.value}" for t in _TYPES] + [
    # the unit the value carries against the unit the question asks for ("$250" when it asks
    # "how many guests"): ``question_unit``, ``value_unit``
    "unit_match", "unit_mismatch",
]
_UNIT = N_HASH + _DENSE.index("unit_match")
N_FEATURES = N_HASH + len(_DENSE)
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "answer_scorer.npz"

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


def question_numbers(question: str) -> frozenset[str]:
    """The numbers a question gives (a value equal to one is rarely the answer)."""
    return frozenset(n.replace(",", "") for n in _NUM.findall(question))


_WORD = re.compile(r"[a-z]{3,}")
_ASK_STOP = frozenset((
    "how", "many", "much", "what", "which", "who", "whom", "whose", "when", "where", "why",
    "does", "did", "will", "would", "are", "was", "were", "the", "and", "for", "that", "this",
    "with", "have", "has", "had", "their", "there", "they", "them", "then", "than", "her",
    "his", "its", "she", "you", "your", "can", "could", "should", "into", "from", "find",
    "value", "answer", "total",
))
_ASK = re.compile(r"[^.?!]*\?")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def question_ask(question: str) -> frozenset[str]:
    """Content words of what a question asks for ("How many women are left?" → women, left):
    a sentence that names them and states a value is likely the answer."""
    asks = _ASK.findall(question)
    ask = asks[-1] if asks else (re.split(r"(?<=[.!])\s+", question.strip())[-1] if question.strip() else "")
    return frozenset(_stem(w) for w in _WORD.findall(ask.lower()) if w not in _ASK_STOP)


_MONEY_WORDS = re.compile(
    r"\$|\b(?:dollars?|cents?|money|cost|pay|price|earn\w*|spen[dt]|profit|save|charge|worth|owe|"
    r"income|revenue|budget)\b"
)
_HOW_MANY = re.compile(
    r"\bhow many (?:more |fewer |less |total |extra |additional |of the )?([a-z]+)"
)


def question_unit(question: str) -> str:
    """The unit a question asks for: ``"%"`` ("what percent"), ``"$"`` ("how much money",
    "how many dollars"), the stemmed noun of "how many <noun>", or ``""`` when it names none."""
    asks = _ASK.findall(question)
    ask = (asks[-1] if asks else question).lower()
    if re.search(r"\bpercent(?:age)?\b|%", ask):
        return "%"
    m = _HOW_MANY.search(ask)
    if m:
        return "$" if m.group(1) in ("dollars", "cents") else _stem(m.group(1))
    if re.search(r"\bhow much\b", ask) and (_MONEY_WORDS.search(ask) or "$" in question):
        return "$"
    return ""


_UNIT_SKIP = frozenset((
    "more", "less", "fewer", "total", "in", "of", "the", "extra", "additional", "new", "other",
    "remaining", "left", "each", "per", "a", "an", "whole", "full", "square", "cubic",
))


def value_unit(sentence: str, value: str) -> str:
    """The unit a sentence gives its value: ``"$"`` ("$250", "250 dollars"), ``"%"``, the
    stemmed noun after it ("10 guests" → guest), or ``""``."""
    v = _key(value)
    if not v:
        return ""
    s = re.sub(r"(?<=\d),(?=\d{3})", "", sentence)
    last = None
    for last in re.finditer(r"(?<![\d.])" + re.escape(v) + r"(?![\d])", s):
        pass
    if last is None:
        return ""
    if "$" in s[max(0, last.start() - 2) : last.start()]:
        return "$"
    after = s[last.end() : last.end() + 40].lower()
    if re.match(r"\s*(?:%|percent)", after):
        return "%"
    words = re.findall(r"[a-z]+", after)[:2]
    if words and words[0] in ("dollars", "dollar", "cents"):
        return "$"
    for w in words:
        if w not in _UNIT_SKIP:
            return _stem(w)
    return ""


def _h(token: str) -> int:
    return zlib.crc32(token.encode("utf-8")) & (N_HASH - 1)


def featurize(x: ScorerInput) -> dict[int, float]:
    """Sparse features: index → value."""
    words = _TOKEN.findall(_NUM.sub(" 0 ", x.sentence.lower()))
    grams = words + [f"{a}_{b}" for a, b in zip(words, words[1:])]  # noqa: RUF007
    feats: dict[int, float] = {}
    if grams:
        w = 1.0 / math.sqrt(len(grams))
        for g in grams:
            i = _h(g)
            feats[i] = feats.get(i, 0.0) + w
    base = N_HASH
    feats[base + _TYPES.index(x.type)] = 1.0
    d = base + len(_TYPES)
    v = _key(x.value)
    if v in x.question_numbers:
        feats[d] = 1.0
    if x.last_sentence:
        feats[d + 1] = 1.0
    feats[d + 2] = math.log1p(x.index) / 5
    if x.cue:
        feats[d + 3] = 1.0
    feats[d + 4] = math.log1p(x.mentions)
    if re.fullmatch(r"-?\d+", v):
        feats[d + 5] = 1.0
    feats[d + 6] = 1.0
    if x.ask:
        hit = len(x.ask & {_stem(w) for w in words if len(w) >= 3})
        if hit:
            feats[d + 7] = hit / len(x.ask)
            feats[d + 8] = 1.0
    if x.next_text is not None:
        _next_features(x, v, feats, d + 9)
    if x.ask_unit:
        unit = value_unit(x.sentence, x.value)
        if unit:
            feats[_UNIT + (unit != x.ask_unit)] = 1.0
    return feats


_NEXT_WORD = re.compile(r"[a-z]+")


def _next_features(x: ScorerInput, v: str, feats: dict[int, float], d: int) -> None:
    """What the following step does with the value: its opening words ("wait", "let me
    check", "first"), its type, whether it states the value again or other values."""
    text = x.next_text or ""
    if not text.strip() or x.next_type is None:
        feats[d] = 1.0
        return
    head = _NEXT_WORD.findall(text[:60].lower())[:2]
    for g in (f"next1:{'_'.join(head[:1])}", f"next2:{'_'.join(head)}"):
        i = _h(g)
        feats[i] = feats.get(i, 0.0) + 0.5
    values = x.next_values
    if v in values:
        feats[d + 1] = 1.0
    if values - {v}:
        feats[d + 2] = 1.0
    if v and re.search(r"(?<![\d.])" + re.escape(v) + r"(?![\d])", text.replace(",", "")):
        feats[d + 3] = 1.0
    feats[d + 4 + _TYPES.index(x.next_type)] = 1.0


def with_next(inputs: list[ScorerInput], text: str, type_: StepType | None) -> list[ScorerInput]:
    """The inputs of a step, completed with the step that follows it (``text=""`` and
    ``type_=None`` when the thinking ended after it)."""
    if not inputs:
        return inputs
    from tracestop.answers import value_sentences

    values = frozenset(_key(v) for _, v, _, _ in value_sentences(text)) if text else frozenset()
    return [replace(x, next_text=text, next_type=type_, next_values=values) for x in inputs]


def _key(value: str) -> str:
    return value.replace(",", "").lstrip("$").rstrip("%").strip()


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
    from tracestop.answers import value_sentences

    found = value_sentences(text)
    return [
        ScorerInput(sent, value, type_, index, i == len(found) - 1, cue,
                    mentions.get(_key(value), 0), qnums, ask, ask_unit=ask_unit)
        for i, (_, value, sent, cue) in enumerate(found)
    ]


def remember(mentions: dict[str, int], inputs: list[ScorerInput]) -> None:
    """Count each value once per step (call after scoring the step)."""
    _count(mentions, {_key(x.value) for x in inputs})


def remember_text(mentions: dict[str, int], text: str) -> None:
    """What ``remember`` counts for a step that is not scored (it states its answer
    explicitly), without building the scorer inputs."""
    from tracestop.answers import value_sentences

    _count(mentions, {_key(value) for _, value, _, _ in value_sentences(text)})


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
        raise ValueError(f"answer scorer weights {path} have {len(coef)} features, expected {N_FEATURES}")
    return coef, meta


class AnswerScorer:
    """Probability that a concluding sentence states the answer to the whole question."""

    def __init__(self, weights: str | Path | None = None) -> None:
        self.path = Path(weights) if weights else DEFAULT_WEIGHTS
        self._coef, self.meta = _load(str(self.path))

    def score(self, x: ScorerInput) -> float:
        z = sum(self._coef[i] * v for i, v in featurize(x).items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

"""What a question tells the answer reader: the numbers it gives, the words and the unit of
what it asks for, and, for multiple choice, the text of its options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from tracestop.answers.formats import AnswerFormat

__all__ = [
    "QuestionFacts",
    "norm_option",
    "option_texts",
    "question_ask",
    "question_numbers",
    "question_unit",
    "stem",
]

_NUM = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True, slots=True)
class QuestionFacts:
    """Everything the answer reader reads from the question, once per request."""

    numbers: frozenset[str] = frozenset()
    ask: frozenset[str] = frozenset()
    unit: str = ""
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def read(cls, question: str, answer_format: AnswerFormat) -> QuestionFacts:
        if cls is QuestionFacts:
            return _read(question, answer_format)  # immutable: shared by requests that ask alike
        return cls._read(question, answer_format)

    @classmethod
    def _read(cls, question: str, answer_format: AnswerFormat) -> QuestionFacts:
        options = option_texts(question) if answer_format == "choice" else {}
        return cls(question_numbers(question), question_ask(question), question_unit(question),
                   tuple(options.items()))


@lru_cache(maxsize=256)
def _read(question: str, answer_format: AnswerFormat) -> QuestionFacts:
    """``QuestionFacts.read``, memoised (the same question often comes again: several samples,
    retries)."""
    return QuestionFacts._read(question, answer_format)


_OPTION_LINE = re.compile(r"(?m)^\s*\(?([A-J])[).:]\s+(.+?)\s*$")
_OPTION_INLINE = re.compile(r"(?:^|\s)\(?([A-J])\)\s+(.+?)(?=\s+\(?[A-J]\)\s|$)", re.DOTALL)


def norm_option(text: str) -> str:
    """Option text for comparison: lower case, punctuation as spaces."""
    return re.sub(r"[^a-z0-9%.]+", " ", text.lower()).strip()


def option_texts(question: str) -> dict[str, str]:
    """The options of a multiple-choice question, letter → text, when the question lists them
    ("A. ...", "(B) ..." one per line, or "A) ... B) ..." inline)."""
    opts = {m.group(1): m.group(2) for m in _OPTION_LINE.finditer(question)}
    if len(opts) < 3:
        opts = {m.group(1): m.group(2) for m in _OPTION_INLINE.finditer(question)}
    if len(opts) < 3:
        return {}
    return {k: norm_option(v) for k, v in opts.items() if norm_option(v)}


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


def _last_ask(question: str) -> str | None:
    """``_ASK.findall(question)[-1]``, or ``None`` when it finds nothing, without the regex
    (it tries every position of a sentence again: quadratic in a long one): each match is
    the text after the delimiter (``.?!``) before a ``?``, up to that ``?``."""
    end = question.rfind("?")
    if end < 0:
        return None
    start = max(question.rfind(".", 0, end), question.rfind("!", 0, end), question.rfind("?", 0, end)) + 1
    return question[start : end + 1]


def stem(word: str) -> str:
    """A plural noun's singular, crudely: a trailing ``s`` dropped (not ``ss``)."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def question_ask(question: str) -> frozenset[str]:
    """Content words of what a question asks for ("How many women are left?" → women, left):
    a sentence that names them and states a value is likely the answer."""
    ask = _last_ask(question)
    if ask is None:
        ask = re.split(r"(?<=[.!])\s+", question.strip())[-1] if question.strip() else ""
    return frozenset(stem(w) for w in _WORD.findall(ask.lower()) if w not in _ASK_STOP)


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
    ask = _last_ask(question)
    ask = (question if ask is None else ask).lower()
    if re.search(r"\bpercent(?:age)?\b|%", ask):
        return "%"
    m = _HOW_MANY.search(ask)
    if m:
        return "$" if m.group(1) in ("dollars", "cents") else stem(m.group(1))
    if re.search(r"\bhow much\b", ask) and (_MONEY_WORDS.search(ask) or "$" in question):
        return "$"
    return ""

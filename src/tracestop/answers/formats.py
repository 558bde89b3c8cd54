"""Answer formats: what kind of answer a question wants (a math value, an option letter, yes/no).

The one place that maps a benchmark name to its answer format.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["CHOICE_BENCHMARKS", "YESNO_BENCHMARKS", "AnswerFormat", "benchmark_format", "infer_format"]

AnswerFormat = Literal["math", "choice", "yesno"]

#: benchmarks whose questions are multiple choice (option letters)
CHOICE_BENCHMARKS = frozenset({"gpqa-diamond", "gpqa", "mmlu", "mmlu-pro"})
#: benchmarks whose questions are answered YES or NO
YESNO_BENCHMARKS = frozenset({"chainscope-iphr"})
_YESNO_START = re.compile(
    r"^\s*(is|are|was|were|does|do|did|can|could|has|have|had|will|would|should)\b", re.IGNORECASE
)
_OPTIONS_IN_QUESTION = re.compile(r"(?m)^\s*\(?[A-D][).:]\s+\S")


def benchmark_format(benchmark: str | None) -> AnswerFormat | None:
    """The answer format a named benchmark's questions take; ``None`` for no name (or ``auto``)."""
    if not benchmark:
        return None
    b = benchmark.lower()
    if b in CHOICE_BENCHMARKS:
        return "choice"
    if b in YESNO_BENCHMARKS:
        return "yesno"
    if b in {"auto", ""}:
        return None
    return "math"


def infer_format(question: str = "", benchmark: str | None = None) -> AnswerFormat:
    """The answer format of a question: from the benchmark when known, else from its text."""
    known = benchmark_format(benchmark)
    if known is not None:
        return known
    if len(_OPTIONS_IN_QUESTION.findall(question)) >= 3:
        return "choice"
    if _asks_yes_or_no(question) and not _MATHY_QUESTION.search(question):
        return "yesno"
    return "math"


#: LaTeX, or arithmetic between numbers ("2+3", "4 - 1"; "737-800", a model number, is not)
_MATHY_QUESTION = re.compile(r"\$|\\\(|\d+\s*[+*/^]\s*\d|\d+\s+-\s+\d")
#: a sentence boundary: a line break, or . ! ? after a lower-case word ("oranges. When"; not
#: "St. Louis", "Mark Z. Danielewski") and white space before a capital or a quote
_SENTENCE_BREAK = re.compile(r"(?<=[a-z][a-z][.!?])\s+(?=[A-Z\"'])|\n\s*")


def _asks_yes_or_no(question: str) -> bool:
    """Whether the question is one sentence opening with an auxiliary verb ("Is the Nile longer
    than the Amazon"), or its first or its last sentence is such a question ending in "?"
    ("Is X longer than Y? Answer yes or no."; "about books:\n\nIs X longer than Y?"). A word
    problem that opens with a name ("Will buys 15 oranges. ... How many ...?") is not."""
    text = question.strip()
    parts = _SENTENCE_BREAK.split(text, maxsplit=1)
    if len(parts) == 1:
        return _YESNO_START.match(text) is not None
    first = parts[0]
    last = _SENTENCE_BREAK.split(text[-600:])[-1]
    return any(s.endswith("?") and _YESNO_START.match(s) for s in (first, last))

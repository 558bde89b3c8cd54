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
    if _YESNO_START.match(question) and not re.search(r"\$|\\\(|\d+\s*[-+*/^]\s*\d", question):
        return "yesno"
    return "math"

"""Candidate answers: tagged steps in, the answer picture out.

The modules follow the data flow:

================  ==============================================================================
``formats``       which kind of answer a question wants (benchmark → format, or from its text)
``question``      what the question tells the reader: its numbers, what it asks for, its options
``extract``       the candidates a step states (regexes; cheap)
``equivalence``   whether two answers are the same (normal form, then Math-Verify)
``scorer``        whether a value stated in prose is the answer (a logistic model, named features)
``reader``        ``AnswerReader``: observes each tagged step, owns all candidate state
================  ==============================================================================
"""

from __future__ import annotations

from tracestop.answers.equivalence import equivalent, latex_math, normalize
from tracestop.answers.extract import (
    conclusions,
    extract_candidate,
    extract_candidates,
    value_sentences,
)
from tracestop.answers.formats import AnswerFormat, benchmark_format, infer_format
from tracestop.answers.question import option_texts
from tracestop.answers.reader import (
    AnswerReader,
    AnswerState,
    AnswerTracker,
    CandidateMode,
    StepReading,
)
from tracestop.answers.scorer import AnswerScorer

__all__ = [
    "AnswerFormat",
    "AnswerReader",
    "AnswerScorer",
    "AnswerState",
    "AnswerTracker",
    "CandidateMode",
    "StepReading",
    "benchmark_format",
    "conclusions",
    "equivalent",
    "extract_candidate",
    "extract_candidates",
    "infer_format",
    "latex_math",
    "normalize",
    "option_texts",
    "value_sentences",
]

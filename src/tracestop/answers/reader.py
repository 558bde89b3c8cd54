"""The answer reader: the one owner of candidate-answer state for a generation.

It observes each tagged step, extracts what the step states, decides whether a value stated in
plain prose counts as a candidate (at once, or one step late with the answer scorer), and keeps
the answer picture (``AnswerState``) up to date.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from tracestop._types import Candidate, Step, StepType
from tracestop.answers.equivalence import equivalent
from tracestop.answers.extract import conclusions, extract_candidate
from tracestop.answers.formats import AnswerFormat
from tracestop.answers.question import QuestionFacts
from tracestop.answers.scorer import (
    AnswerScorer,
    ScorerInput,
    remember,
    remember_text,
    step_inputs,
    with_next,
)
from tracestop.errors import ConfigError

__all__ = [
    "AnswerReader",
    "AnswerState",
    "AnswerTracker",
    "CandidateMode",
    "StepReading",
    "check_reader_options",
]

#: When a value in a concluding sentence ("So, ... is 42.") counts as a candidate answer:
#: ``"scored"`` (the tagger reads the step as a conclusion opening with a concluding word, or
#: the answer scorer gives it at least the threshold once the next step is known: such a
#: candidate enters the answer picture one step late, credited to the step that states it),
#: ``"tagged"`` (the tagger only), ``"always"`` or ``"never"`` (only boxed / "the answer is" /
#: "Final Answer" forms).
CandidateMode = Literal["never", "tagged", "scored", "always"]

# A value stated in prose is trusted at once in a step the tagger reads as a final conclusion
# (with the answer scorer: in its last sentence, opening with a concluding word); elsewhere only
# when the answer scorer vouches for it, judged once the next step is known.
_CONCLUDING = {StepType.FINAL_CONCLUSION}


def check_reader_options(candidates: str, threshold: float) -> None:
    """Raise ``ConfigError`` for an unknown candidate mode or a threshold outside [0, 1]."""
    if candidates not in get_args(CandidateMode):
        raise ConfigError(
            f"candidates must be never, tagged, scored or always, got {candidates!r}"
        )
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"answer_threshold must be in [0, 1], got {threshold}")


@dataclass(frozen=True, slots=True)
class AnswerState:
    """The answer picture after a step.

    ``current``: the latest candidate; ``since``: the step where the current candidate
    became current (first stated after a different one); ``first_step``: the step where any
    candidate first appeared; ``count``: statements of the current candidate since ``since``;
    ``changes``: how many times the candidate changed to a different value;
    ``kind``: how the current candidate was last stated; ``confidence``: the highest
    confidence among its statements since ``since``.
    """

    current: str | None = None
    since: int | None = None
    first_step: int | None = None
    count: int = 0
    changes: int = 0
    kind: str = ""
    total: int = 0
    confidence: float = 0.0


class AnswerTracker:
    """Follows the candidate answers stated step by step: the answer picture alone, without
    deciding what counts as a candidate (``AnswerReader`` does, and owns one)."""

    def __init__(self, answer_format: AnswerFormat = "math") -> None:
        self.answer_format: AnswerFormat = answer_format
        self.state = AnswerState()

    def update(self, step: int, candidate: Candidate | None) -> AnswerState:
        s = self.state
        if candidate is None:
            return s
        c = candidate.confidence
        if s.current is None:
            s = AnswerState(candidate.value, step, step, 1, 0, candidate.kind, 1, c)
        elif equivalent(s.current, candidate.value, self.answer_format):
            s = AnswerState(
                s.current, s.since, s.first_step, s.count + 1, s.changes, candidate.kind, s.total + 1,
                max(s.confidence, c),
            )
        else:
            s = AnswerState(
                candidate.value, step, s.first_step, 1, s.changes + 1, candidate.kind, s.total + 1, c
            )
        self.state = s
        return s


@dataclass(frozen=True, slots=True)
class StepReading:
    """What the reader made of one step: the candidate it states (or, judged one step late,
    the previous step's), and the answer picture after it."""

    candidate: Candidate | None
    answer: AnswerState


@dataclass(slots=True)
class _Found:
    step: int
    found: tuple[str, str] | None

    @property
    def strong(self) -> bool:
        """An explicit statement (boxed, "the answer is", ...), not a concluding sentence."""
        return self.found is not None and self.found[1] != "conclusion"


class AnswerReader:
    """Reads candidate answers from the tagged steps of one generation.

    Call ``states_answer(step)`` before tagging the step (the tagger takes it as context),
    ``observe(step, type)`` once it is tagged, and ``finish()`` when the thinking ends.
    """

    def __init__(
        self,
        question: str = "",
        answer_format: AnswerFormat = "math",
        *,
        candidates: CandidateMode = "scored",
        threshold: float = 0.5,
        scorer_weights: str | Path | None = None,
    ) -> None:
        check_reader_options(candidates, threshold)
        self.answer_format: AnswerFormat = answer_format
        self.candidates: CandidateMode = candidates
        self.threshold = threshold
        self.question = QuestionFacts.read(question, answer_format)
        self._options = dict(self.question.options)
        # the scorer reads values in prose: math answers only (choice / yes-no cues are explicit)
        scored = candidates == "scored" and answer_format == "math"
        self._scorer = AnswerScorer(scorer_weights) if scored else None
        self._tracker = AnswerTracker(answer_format)
        self._mentions: dict[str, int] = {}
        #: the last step's prose values, judged by the answer scorer once the next step is known
        self._pending: list[ScorerInput] = []
        self._found: _Found | None = None

    @property
    def state(self) -> AnswerState:
        """The answer picture after the last step observed."""
        return self._tracker.state

    def _extract(self, step: Step) -> _Found:
        if self._found is None or self._found.step != step.index:
            # a math value in a concluding sentence is read by ``_weak_candidate``, not from here
            found = extract_candidate(step.text, self.answer_format, self._options, conclude=False)
            self._found = _Found(step.index, found)
        return self._found

    def states_answer(self, step: Step) -> bool:
        """Whether the step states a candidate explicitly (boxed, "the answer is", ...)."""
        return self._extract(step).strong

    def observe(self, step: Step, type_: StepType) -> StepReading:
        """Read a tagged step: judge the previous step's pending values now that this step is
        known, then this step's own candidate."""
        found = self._extract(step)
        self._found = None
        late = self._judge_pending(step.text, type_)
        if late is not None:
            self._tracker.update(late.step, late)
        cand: Candidate | None
        if found.strong:
            assert found.found is not None
            cand = Candidate(found.found[0], found.found[1], step.index, 1.0)
            if self._scorer is not None:
                remember_text(self._mentions, step.text)
        else:
            cand = self._weak_candidate(step, type_, found.found)
        answer = self._tracker.update(step.index, cand)
        return StepReading(cand or late, answer)

    def finish(self) -> StepReading:
        """The thinking ended: judge the last step's pending values (nothing follows them).
        The reading's candidate is the one admitted late, if any."""
        late = self._judge_pending("", None)
        if late is not None:
            self._tracker.update(late.step, late)
        return StepReading(late, self._tracker.state)

    def _weak_candidate(
        self, step: Step, type_: StepType, found: tuple[str, str] | None
    ) -> Candidate | None:
        """A value stated in plain prose ("So, half of that is 2450."), trusted at once when
        the tagger reads the step as a conclusion that opens with a concluding word; with the
        answer scorer, the step's values are otherwise judged one step late
        (``_judge_pending``)."""
        if self.candidates == "never":
            return None
        if self.answer_format != "math":
            # choice / yes-no cues are specific ("I'll go with F"): trust them
            return Candidate(found[0], found[1], step.index) if found is not None else None
        if self._scorer is None:
            stated = conclusions(step.text)
            if stated and (self.candidates == "always" or type_ in _CONCLUDING):
                return Candidate(stated[-1][1], "conclusion", step.index)
            return None
        q = self.question
        inputs = step_inputs(step.text, type_, step.index, self._mentions, q.numbers, q.ask, q.unit)
        remember(self._mentions, inputs)
        if type_ in _CONCLUDING:
            concluding = [x for x in inputs if x.last_sentence and x.cue]
            if concluding:
                return Candidate(concluding[-1].value, "conclusion", step.index)
        self._pending = inputs
        return None

    def _judge_pending(self, next_text: str, next_type: StepType | None) -> Candidate | None:
        """The pending step's value most likely to state the answer, given the step that
        follows it, if the answer scorer gives it at least ``threshold``."""
        pending, self._pending = self._pending, []
        if not pending or self._scorer is None:
            return None
        best, best_p = None, self.threshold
        for x in with_next(pending, next_text, next_type):
            p = self._scorer.score(x)
            if p >= best_p:
                best, best_p = x, p
        if best is None:
            return None
        return Candidate(best.value, "conclusion" if best.cue else "statement", best.index, best_p)

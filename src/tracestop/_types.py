"""Plain value objects shared by every stage of the pipeline.

Nothing here does I/O or imports anything heavy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "Action",
    "Candidate",
    "Decision",
    "Role",
    "Step",
    "StepType",
    "Tag",
    "TaggedStep",
]


class Role(str, enum.Enum):
    """Macro role of a step type, as used by the stopping criteria."""

    CONSTRUCTIVE = "constructive"
    EVALUATIVE = "evaluative"
    OTHER = "other"


class StepType(str, enum.Enum):
    """The 14 step types of the TRACES paper (arXiv 2604.21057), listed in docs/tagger.md."""

    PROBLEM_RESTATEMENT = "problem_restatement"
    CONTEXT_REPETITION = "context_repetition"
    DEFINITION_RECALL = "definition_recall"
    FORMULA_SUBSTITUTION = "formula_substitution"
    SYMBOLIC_TRANSFORMATION = "symbolic_transformation"
    CASE_CONSIDERATION = "case_consideration"
    PATTERN_RECOGNITION = "pattern_recognition"
    VERIFICATION = "verification"
    HEURISTIC_INTUITION = "heuristic_intuition"
    ALTERNATIVE_APPROACH = "alternative_approach"
    NUMERICAL_INTERPRETATION = "numerical_interpretation"
    META_COGNITION = "meta_cognition"
    FINAL_CONCLUSION = "final_conclusion"
    OTHER = "other"

    @property
    def role(self) -> Role:
        """The macro role of this type: constructive (problem_restatement, definition_recall),
        evaluative (verification, final_conclusion) or other (the rest)."""
        return _ROLE.get(self, Role.OTHER)


_ROLE = {
    StepType.PROBLEM_RESTATEMENT: Role.CONSTRUCTIVE,
    StepType.DEFINITION_RECALL: Role.CONSTRUCTIVE,
    StepType.VERIFICATION: Role.EVALUATIVE,
    StepType.FINAL_CONCLUSION: Role.EVALUATIVE,
}


@dataclass(frozen=True, slots=True)
class Step:
    """One reasoning step: a blank-line-delimited paragraph of the thinking part.

    ``start``/``end`` are character offsets into the thinking text; ``end`` includes
    nothing of the boundary that follows the step.
    """

    index: int
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Tag:
    """A step's type with its macro role, a confidence in [0, 1] and the evidence for it."""

    type: StepType
    confidence: float
    evidence: str

    @property
    def role(self) -> Role:
        return self.type.role


@dataclass(frozen=True, slots=True)
class Candidate:
    """A candidate answer stated in a step: ``value`` as written, ``kind`` how it was found,
    ``confidence`` how sure the Monitor is that the step states it as the answer (1.0 for
    explicit statements; the answer scorer's probability for a value stated in prose)."""

    value: str
    kind: str
    step: int
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class TaggedStep:
    """A step with its tag, the candidate it states (if any) and its token count."""

    step: Step
    tag: Tag
    candidate: Candidate | None
    tokens: int


class Action(str, enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a step. A STOP always carries a one-sentence ``reason``."""

    action: Action
    reason: str = ""
    policy: str = ""
    step: int | None = None
    details: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def stop(self) -> bool:
        return self.action is Action.STOP

    @classmethod
    def go_on(cls, policy: str = "", step: int | None = None) -> Decision:
        return cls(Action.CONTINUE, "", policy, step)

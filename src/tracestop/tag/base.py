"""The Tagger protocol: one method, ``tag(text, context) -> Tag``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tracestop._types import StepType, Tag

__all__ = ["TagContext", "Tagger"]


@dataclass(frozen=True, slots=True)
class TagContext:
    """What a tagger may know besides the step text.

    ``index`` is the step's position in the thinking part, ``previous`` the type of the step
    before it, ``states_answer`` whether the answer extractor found a candidate answer in
    this step, ``question`` the problem text when known.
    """

    index: int = 0
    previous: StepType | None = None
    states_answer: bool = False
    question: str = ""


@runtime_checkable
class Tagger(Protocol):
    """Assigns one of the 14 step types to a step. Pure, cheap, text-only."""

    name: str

    def tag(self, text: str, context: TagContext = TagContext()) -> Tag:
        """Tag one step; ``Tag.evidence`` names the cue or top features that decided it."""
        ...

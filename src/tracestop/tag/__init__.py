"""Step taggers: assign one of the 14 step types (``tracestop.StepType``; docs/tagger.md) to a
reasoning step.

``get_tagger()`` returns the default tagger (the one with the better cross-validated
figures, see docs/tagger.md); ``get_tagger("rules")`` the explainable cue baseline.
"""

from __future__ import annotations

from collections.abc import Callable

from tracestop.errors import ConfigError
from tracestop.tag.base import TagContext, Tagger
from tracestop.tag.linear import LinearTagger
from tracestop.tag.rules import RuleTagger

__all__ = [
    "DEFAULT_TAGGER",
    "TAGGERS",
    "LinearTagger",
    "RuleTagger",
    "TagContext",
    "Tagger",
    "get_tagger",
    "states_answer_probability",
]

_FACTORIES: dict[str, Callable[[], Tagger]] = {
    "rules": RuleTagger,
    "linear": LinearTagger,
}

_NO_CONTEXT = TagContext()

#: Names accepted by ``get_tagger``.
TAGGERS: tuple[str, ...] = tuple(_FACTORIES)
#: The tagger ``get_tagger()`` returns: ``linear`` beats ``rules`` on grouped-CV type and role
#: accuracy and its bench p50 is under the 50 us bar (docs/tagger.md).
DEFAULT_TAGGER: str = "linear"


def get_tagger(name: str | None = None) -> Tagger:
    """The tagger called ``name`` (None: ``DEFAULT_TAGGER``)."""
    key = DEFAULT_TAGGER if name is None else name
    try:
        factory = _FACTORIES[key]
    except KeyError:
        raise ConfigError(
            f"unknown tagger {name!r}; valid names: {', '.join(TAGGERS)}"
        ) from None
    return factory()


def states_answer_probability(text: str, context: TagContext = _NO_CONTEXT) -> float:
    """Probability that the step puts forward a candidate answer to the whole question (the
    linear model's states-answer head; ``context.states_answer`` = the extractor's verdict)."""
    return LinearTagger().states_answer(text, context)

"""Step taggers: assign one of the 14 step types of TAXONOMY.md to a reasoning step.

``get_tagger()`` returns the default tagger (the one with the better cross-validated
figures, see docs/tagger.md); ``get_tagger("rules")`` the explainable cue baseline.
"""

from __future__ import annotations

from collections.abc import Callable

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
]

_FACTORIES: dict[str, Callable[[], Tagger]] = {
    "rules": RuleTagger,
    "linear": LinearTagger,
}

#: Names accepted by ``get_tagger``.
TAGGERS: tuple[str, ...] = tuple(_FACTORIES)
#: The tagger ``get_tagger()`` returns.
DEFAULT_TAGGER: str = "rules"


def get_tagger(name: str | None = None) -> Tagger:
    """The tagger called ``name`` (None: ``DEFAULT_TAGGER``)."""
    key = DEFAULT_TAGGER if name is None else name
    try:
        factory = _FACTORIES[key]
    except KeyError:
        raise ValueError(
            f"unknown tagger {name!r}; valid names: {', '.join(TAGGERS)}"
        ) from None
    return factory()

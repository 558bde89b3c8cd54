"""Accuracy and token arithmetic over replayed traces: the one place that counts them.

A ``Tally`` adds up, over a group of traces and one policy, what the policy got right, what full
generation got right, the early-stop regrets (right at full length, wrong when stopped) and the
thinking tokens used and at full length. ``summary``, ``calibrate`` and ``tracestop compare``
read their figures from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Tally"]


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts over ``n`` traces: ``right`` (when stopped), ``right_full`` (at full length),
    ``regret``, thinking tokens ``used`` and ``full``."""

    n: int = 0
    right: int = 0
    right_full: int = 0
    regret: int = 0
    used: int = 0
    full: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[tuple[bool, bool, int, int]]) -> Tally:
        """From per-trace outcomes: (right when stopped, right at full length, thinking tokens
        used, thinking tokens at full length)."""
        n = right = right_full = regret = used = full = 0
        for correct, correct_full, tokens, tokens_full in outcomes:
            n += 1
            right += correct
            right_full += correct_full
            regret += correct_full and not correct
            used += tokens
            full += tokens_full
        return cls(n, right, right_full, regret, used, full)

    @property
    def accuracy(self) -> float:
        return self.right / self.n

    @property
    def accuracy_full(self) -> float:
        return self.right_full / self.n

    @property
    def saved(self) -> float:
        """Share of the thinking tokens saved (0 when there were none)."""
        return saved_share(self.used, self.full)


def saved_share(used: int, full: int) -> float:
    """``1 - used / full``: the share of tokens saved; 0 when ``full`` is 0."""
    return 1 - used / full if full else 0.0

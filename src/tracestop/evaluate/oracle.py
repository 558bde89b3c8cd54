"""Evaluation-only policies: they need the gold answer, so they never run live.

``oracle`` stops at the end of the first step whose candidate is correct: the limit of what any
stopper can save. The live registry (``tracestop.policies.POLICIES``) refuses it with a
``ConfigError``; replay, calibration and reports parse specs with ``EVAL_POLICIES`` and give each
trace's oracle its judge with ``bind_gold``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from tracestop._types import Decision
from tracestop.errors import ConfigError
from tracestop.policies import (
    POLICIES,
    AllOf,
    AnyOf,
    Policy,
    Preset,
    TraceState,
    parse_policy,
    short_value,
)

__all__ = ["EVAL_POLICIES", "Oracle", "bind_gold", "parse_eval_policy"]


@dataclass(frozen=True)
class Oracle(Policy):
    """Evaluation only: stop at the end of the first step whose candidate is correct.

    ``is_correct`` judges a candidate against the gold answer; replay supplies it per trace.
    """

    name: ClassVar[str] = "oracle"
    is_correct: Callable[[str], bool] | None = field(
        default=None, compare=False, metadata={"internal": True}
    )

    def with_gold(self, is_correct: Callable[[str], bool]) -> Oracle:
        return Oracle(is_correct)

    def decide(self, state: TraceState) -> Decision:
        if self.is_correct is None:
            raise ConfigError(
                "the oracle policy needs the gold answer: it exists for evaluation (replay) only"
            )
        cand = state.last.tagged.candidate
        if cand is None or not self.is_correct(state.answer.current or cand.value):
            return self._go(state)
        return self._stop(
            state, f"the candidate {short_value(cand.value)} stated here is correct (oracle)",
            answer=cand.value,
        )


#: the policies a spec may name in evaluation: the live ones and the evaluation-only ones
EVAL_POLICIES: Mapping[str, type[Policy]] = MappingProxyType({**POLICIES, Oracle.name: Oracle})


def parse_eval_policy(
    spec: str | Policy,
    presets: Mapping[str, Preset] | None = None,
    *,
    answer_format: str | None = None,
    benchmark: str | None = None,
) -> Policy:
    """``parse_policy`` with the evaluation-only policies allowed."""
    return parse_policy(spec, presets, answer_format=answer_format, benchmark=benchmark,
                        registry=EVAL_POLICIES)


def bind_gold(policy: Policy, is_correct: Callable[[str], bool]) -> Policy:
    """Give every ``Oracle`` inside ``policy`` its per-trace correctness judge."""
    if isinstance(policy, Oracle):
        return policy.with_gold(is_correct)
    if isinstance(policy, (AnyOf, AllOf)):
        return policy.bind(lambda p: bind_gold(p, is_correct))
    return policy

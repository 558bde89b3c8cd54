"""The Monitor: segment → tag → read answers → decide, one instance per request.

Pure and synchronous: ``feed(delta) -> Decision`` never blocks on I/O. The same Monitor
runs live (adapters feed it deltas) and offline (replay feeds it a recorded trace). It only
coordinates: the ``Segmenter`` cuts steps, the ``Tagger`` types them, the ``AnswerReader``
owns every candidate answer, and the policy decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tracestop._types import Action, Decision, Step, TaggedStep
from tracestop.answers import AnswerFormat, AnswerReader, AnswerState, CandidateMode, infer_format
from tracestop.answers.question import QuestionFacts
from tracestop.answers.reader import check_reader_options
from tracestop.policies import (
    Policy,
    Preset,
    StepRecord,
    TraceState,
    candidates_by_step,
    parse_policy,
    record_for,
)
from tracestop.segment import Segmenter, SegmenterConfig, ThinkingSplitter
from tracestop.tag.base import TagContext, Tagger
from tracestop.tag.states import StatesHead, StatesVerdict, states_context
from tracestop.templates import Template, template_for
from tracestop.tokens import ApproxCounter, TokenCounter

__all__ = ["Monitor", "MonitorConfig", "warm_up"]

#: ``states_context``'s arguments: index, format, strong, stated kind, current answer,
#: the question's facts, the previous step's text
_StatesArgs = tuple[int, str, bool, str, str | None, QuestionFacts, str]


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """The Monitor's rarely changed knobs, validated at construction.

    * **segmenter** - how the thinking is cut into steps.
    * **candidates** - when a value stated in a concluding sentence counts as a candidate
      answer (``tracestop.answers.CandidateMode``): ``"scored"`` (default), ``"tagged"``,
      ``"always"`` or ``"never"``.
    * **answer_threshold** - the answer scorer's probability at which a value in prose counts.
    * **answer_scorer** - path of answer-scorer weights (``.npz``); the shipped ones by default.
    * **presets** - extra named presets the policy spec may use (beside ``PRESETS``).
    """

    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    candidates: CandidateMode = "scored"
    answer_threshold: float = 0.5
    answer_scorer: str | Path | None = None
    presets: Mapping[str, Preset] | None = None

    def __post_init__(self) -> None:
        check_reader_options(self.candidates, self.answer_threshold)


class Monitor:
    """Watches one generation and decides, at each step boundary, whether to stop.

    Example::

        m = Monitor("traces-shift:window=4,delta=0.75", question=q)
        for delta in stream:
            if m.feed(delta).stop:
                break           # close the upstream stream, then force the answer:
        prompt_tail = m.truncated_thinking + m.forcing_suffix

    **Parameters:**

    * **policy** - a ``Policy`` or a spec string / preset name (default ``"default"``).
    * **tagger** - a ``Tagger`` or a tagger name; ``None`` for the default tagger.
    * **question** - the problem text (answer format inference, tagger context).
    * **answer_format** - ``"math"``, ``"choice"`` or ``"yesno"``; inferred when ``None``.
    * **benchmark** - a benchmark name, used to infer the answer format.
    * **model** - model or family name, picks the end-of-thinking template.
    * **count_tokens** - a token counter (``text -> int`` with a ``name``); chars/4 by default.
    * **observe** - never stop, only record where the policy would have stopped.
    * **config** - a ``MonitorConfig`` with the rarely changed knobs.
    """

    def __init__(
        self,
        policy: Policy | str = "default",
        *,
        tagger: Tagger | str | None = None,
        question: str = "",
        answer_format: AnswerFormat | None = None,
        benchmark: str | None = None,
        model: str | None = None,
        count_tokens: TokenCounter | None = None,
        observe: bool = False,
        config: MonitorConfig | None = None,
    ) -> None:
        if tagger is None or isinstance(tagger, str):
            from tracestop.tag import get_tagger

            tagger = get_tagger(tagger)
        cfg = config or MonitorConfig()
        self.config = cfg
        self.tagger: Tagger = tagger
        self.question = question
        self.answer_format: AnswerFormat = answer_format or infer_format(question, benchmark)
        self.policy = parse_policy(policy, cfg.presets, answer_format=self.answer_format, benchmark=benchmark)
        self.template: Template = template_for(model)
        self.count_tokens: TokenCounter = count_tokens or ApproxCounter()
        self.observe = observe
        self.reader = AnswerReader(
            question, self.answer_format, candidates=cfg.candidates,
            threshold=cfg.answer_threshold, scorer_weights=cfg.answer_scorer,
        )
        self.records: list[StepRecord] = []
        #: the states-answer head (reported only: no policy reads it); its verdicts are read
        #: when first asked for (``states``, ``report``), off the per-delta path
        self.states_head = StatesHead()
        self._states: list[StatesVerdict] = []
        #: per step not yet read: its text and the ``states_context`` arguments (immutable
        #: values), turned into a context only when the verdicts are asked for
        self._states_todo: list[tuple[str, _StatesArgs]] = []
        #: records that were decided on as they arrived (steps flushed when the thinking
        #: ended get no decision: there is nothing left to save)
        self.n_decided = 0
        self.decision: Decision | None = None  # the first STOP (or would-stop in observe mode)
        self.thinking_closed = False
        self._splitter = ThinkingSplitter()
        self._segmenter = Segmenter(cfg.segmenter)
        self._thinking: list[str] = []
        self._answer: list[str] = []
        self._ended = False
        self._go_on: Decision | None = None

    # --- feeding ----------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """True once the policy said STOP (never in observe mode)."""
        return self.decision is not None and not self.observe

    def feed(self, delta: str) -> Decision:
        """Feed raw model output (thinking markers included, as a model writes them)."""
        if self.decision is not None and not self.observe:
            return self.decision
        think, answer = self._splitter.feed(delta)
        if think:
            self._feed_thinking(think, decide=True)
        if answer or self._splitter.closed:
            if not self.thinking_closed:
                self.end_thinking()
            if answer:
                self._answer.append(answer)
        return self._current()

    def feed_thinking(self, delta: str) -> Decision:
        """Feed text known to be thinking (a ``reasoning_content`` field)."""
        if self.stopped or self.thinking_closed:
            return self._current()
        self._feed_thinking(delta, decide=True)
        return self._current()

    def feed_answer(self, delta: str) -> None:
        """Feed text known to be the answer part; it ends the thinking."""
        if not self.thinking_closed:
            self.end_thinking()
        self._answer.append(delta)

    def end_thinking(self) -> None:
        """The thinking ended by itself: flush the last step (no decision is taken on it)."""
        if self.thinking_closed:
            return
        self.thinking_closed = True
        if not self.stopped:
            self._add_steps(self._segmenter.end(), decide=False)
            late = self.reader.finish()  # the last step's values: nothing follows
            if late.candidate is not None and len(self.records) > self.n_decided:
                # no decision was taken on the last step: its record can show what it stated
                prev = self.records[-2] if len(self.records) > 1 else None
                self.records[-1] = record_for(
                    replace(self.records[-1].tagged, candidate=late.candidate), late.answer, prev
                )

    def end(self) -> Decision:
        """The stream ended. Returns the final decision (STOP if the policy stopped)."""
        if not self._ended:
            self._ended = True
            think, answer = self._splitter.end()
            if think and not self.stopped and not self.thinking_closed:
                self._feed_thinking(think, decide=False)
            if answer:
                self._answer.append(answer)
            if not self.thinking_closed:
                self.end_thinking()
        return self._current()

    def _current(self) -> Decision:
        if self.decision is not None and not self.observe:
            return self.decision
        step = len(self.records) - 1 if self.records else None
        go_on = self._go_on
        if go_on is None or go_on.step != step:
            # one (frozen) CONTINUE per step, not one per delta
            go_on = self._go_on = Decision(Action.CONTINUE, "", self.policy.name, step)
        return go_on

    def _feed_thinking(self, text: str, decide: bool) -> None:
        self._thinking.append(text)
        steps = self._segmenter.feed(text)
        if steps:
            self._add_steps(steps, decide)

    def _add_steps(self, steps: list[Step], decide: bool) -> None:
        for step in steps:
            self._add(step)
            if decide:
                self.n_decided = len(self.records)
            if decide and self.decision is None:
                d = self.policy.decide(TraceState(self.records))
                if d.stop:
                    self.decision = d
                    if not self.observe:
                        return

    def _add(self, step: Step) -> StepRecord:
        prev = self.records[-1] if self.records else None
        strong = self.reader.states_answer(step)
        tag = self.tagger.tag(
            step.text,
            TagContext(
                index=step.index,
                previous=prev.type if prev else None,
                states_answer=strong,
                question=self.question,
            ),
        )
        reading = self.reader.observe(step, tag.type)
        c = reading.candidate
        self._states_todo.append((step.text, (
            step.index, self.answer_format, strong, c.kind if c and c.step == step.index else "",
            prev.answer.current if prev else None, self.reader.question,
            prev.tagged.step.text if prev else "")))
        tokens = self.count_tokens(step.text if step.index == 0 else "\n\n" + step.text)
        rec = record_for(TaggedStep(step, tag, reading.candidate, tokens), reading.answer, prev)
        self.records.append(rec)
        return rec

    # --- results ----------------------------------------------------------------------------

    @property
    def states(self) -> list[StatesVerdict]:
        """The states-answer head's verdict per record (``read_states()``)."""
        return self.read_states()

    def read_states(self) -> list[StatesVerdict]:
        """Run the states-answer head on the steps added since the last call and return every
        verdict so far. The head's inputs are kept as each step is added, so the verdicts are
        what they would have been step by step, but a stream that never asks for them never
        pays for them; a caller that wants the cost spread over the stream calls this as it
        feeds."""
        if self._states_todo:
            read = self.states_head.read
            self._states.extend(read(text, states_context(*args)) for text, args in self._states_todo)
            self._states_todo.clear()
        return self._states

    def _stop_step(self) -> int | None:
        """The index of the step the Monitor stopped after; ``None`` when it did not stop."""
        if not self.stopped or self.decision is None or self.decision.step is None:
            return None
        return self.decision.step

    @property
    def steps(self) -> list[TaggedStep]:
        return [r.tagged for r in self.records]

    @property
    def answer(self) -> AnswerState:
        """The answer picture now (at the stop, if stopped)."""
        stop = self._stop_step()
        return self.reader.state if stop is None else self.records[stop].answer

    @property
    def thinking_text(self) -> str:
        """All thinking text received so far."""
        return _joined(self._thinking)

    @property
    def answer_text(self) -> str:
        return _joined(self._answer)

    @property
    def kept_steps(self) -> int:
        """Steps kept: up to and including the stop step, or all steps."""
        stop = self._stop_step()
        return len(self.records) if stop is None else stop + 1

    @property
    def truncated_thinking(self) -> str:
        """The thinking up to the end of the stop step (all of it when not stopped)."""
        text = self.thinking_text
        stop = self._stop_step()
        return text if stop is None else text[: self.records[stop].tagged.step.end]

    @property
    def thinking_tokens(self) -> int:
        """Thinking tokens up to the stop step (all steps when not stopped)."""
        k = self.kept_steps
        return self.records[k - 1].tokens_cum if k else 0

    @property
    def forcing_suffix(self) -> str:
        """What to append to the truncated thinking to make the model answer."""
        return self.template.forcing_suffix(self.answer_format)

    def report(self, *, include_steps: bool = True) -> dict[str, Any]:
        """The ``tracestop`` object attached to responses: JSON-ready."""
        d = self.decision
        out: dict[str, Any] = {
            "stopped": self.stopped,
            "observe": self.observe,
            "policy": self.policy.spec(),
            "step": (d.step + 1) if d is not None and d.step is not None else None,
            "reason": d.reason if d is not None else None,
            "answer": self.answer.current,
            "answer_format": self.answer_format,
            "thinking_tokens": self.thinking_tokens,
            "token_counter": self.count_tokens.name,
        }
        if include_steps:
            kept = self.records[: self.kept_steps]
            stated = candidates_by_step(kept)
            out["steps"] = [
                {
                    "step": r.index + 1,  # 1-based, as the stop step and the reasons
                    "type": r.type.value,
                    "role": r.tagged.tag.role.value,
                    "confidence": round(r.tagged.tag.confidence, 3),
                    "tokens": r.tagged.tokens,
                    "candidate": stated[r.index].value if r.index in stated else None,
                    "states_answer": v.flag,
                    "states_p": round(v.p, 3),
                    "states_evidence": v.evidence,
                }
                for r, v in zip(kept, self.states, strict=False)
            ]
        return out


def _joined(parts: list[str]) -> str:
    """The parts as one string, kept joined: asking again after more deltas joins only the new
    ones onto it."""
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


def warm_up(policy: Policy | str = "default", tagger: Tagger | str | None = None) -> None:
    """Load what a first request would otherwise load: the tagger's, the answer scorer's and
    the states-answer head's weights (one short Monitor run, its states read), and
    Math-Verify with sympy's first symbolic comparison. A server calls this once at startup,
    so that its first request is as fast as the rest; nothing here does I/O but reading the
    packaged weights."""
    from tracestop.answers.equivalence import warm_up as warm_math

    m = Monitor(policy, question="What is 6 times 7?", tagger=tagger)
    m.feed("<think>6 times 7 is 42.\n\nSo the answer is \\boxed{42}.\n\n</think>42")
    m.end()
    m.read_states()
    warm_math()

"""The Monitor: segment → tag → track answers → decide, one instance per request.

Pure and synchronous: ``feed(delta) -> Decision`` never blocks on I/O. The same Monitor
runs live (adapters feed it deltas) and offline (replay feeds it a recorded trace).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tracestop._types import Action, Candidate, Decision, StepType, TaggedStep
from tracestop.answers import (
    AnswerFormat,
    AnswerState,
    AnswerTracker,
    conclusions,
    extract_candidate,
    infer_format,
    option_texts,
)
from tracestop.errors import ConfigError
from tracestop.policies import (
    Policy,
    Preset,
    StepRecord,
    TraceState,
    candidates_by_step,
    parse_policy,
    record_for,
)
from tracestop.scorer import (
    AnswerScorer,
    ScorerInput,
    question_ask,
    question_numbers,
    question_unit,
    remember,
    remember_text,
    step_inputs,
    with_next,
)
from tracestop.segment import Segmenter, SegmenterConfig, ThinkingSplitter
from tracestop.tag.base import TagContext, Tagger
from tracestop.templates import Template, template_for
from tracestop.tokens import ApproxCounter, TokenCounter

__all__ = ["Monitor"]

# A value stated in prose is trusted at once in a step the tagger reads as a final conclusion
# (with the answer scorer: in its last sentence, opening with a concluding word); elsewhere only
# when the answer scorer vouches for it, judged once the next step is known.
_CONCLUDING = {StepType.FINAL_CONCLUSION}


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
    * **conclusions** - when a value in a concluding sentence ("So, ... is 42.") counts as a
      candidate answer: ``"scored"`` (the tagger reads the step as a conclusion opening with a
      concluding word, or the answer scorer gives it at least ``answer_threshold`` once the
      next step is known: such a candidate enters the answer picture one step late, credited to
      the step that states it), ``"tagged"`` (the tagger only), ``"always"`` or ``"never"``
      (only boxed / "the answer is" / "Final Answer" forms).
    * **answer_scorer** - path of answer-scorer weights (``.npz``); the shipped ones by default.
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
        presets: Mapping[str, Preset] | None = None,
        segmenter: SegmenterConfig | None = None,
        conclusions: str = "scored",
        answer_threshold: float = 0.5,
        answer_scorer: str | None = None,
    ) -> None:
        if tagger is None or isinstance(tagger, str):
            from tracestop.tag import get_tagger

            tagger = get_tagger(tagger)
        self.tagger: Tagger = tagger
        self.question = question
        self.answer_format: AnswerFormat = answer_format or infer_format(question, benchmark)
        self.policy = parse_policy(policy, presets, answer_format=self.answer_format, benchmark=benchmark)
        self.template: Template = template_for(model)
        self.count_tokens: TokenCounter = count_tokens or ApproxCounter()
        self.observe = observe
        if conclusions not in ("never", "tagged", "scored", "always"):
            raise ConfigError(
                f"conclusions must be never, tagged, scored or always, got {conclusions!r}"
            )
        if not 0.0 <= answer_threshold <= 1.0:
            raise ConfigError(f"answer_threshold must be in [0, 1], got {answer_threshold}")
        self.conclusions = conclusions
        self.answer_threshold = answer_threshold
        # the scorer reads values in prose: math answers only (choice / yes-no cues are explicit)
        scored = conclusions == "scored" and self.answer_format == "math"
        self._scorer = AnswerScorer(answer_scorer) if scored else None
        self._question_numbers = question_numbers(question)
        self._ask = question_ask(question)
        self._ask_unit = question_unit(question)
        self._options = option_texts(question) if self.answer_format == "choice" else {}
        self._mentions: dict[str, int] = {}
        #: the last step's prose values, judged by the answer scorer once the next step is known
        self._pending: list[ScorerInput] = []
        self.records: list[StepRecord] = []
        #: records that were decided on as they arrived (steps flushed when the thinking
        #: ended get no decision: there is nothing left to save)
        self.n_decided = 0
        self.decision: Decision | None = None  # the first STOP (or would-stop in observe mode)
        self.thinking_closed = False
        self._splitter = ThinkingSplitter()
        self._segmenter = Segmenter(segmenter or SegmenterConfig())
        self._tracker = AnswerTracker(self.answer_format)
        self._thinking: list[str] = []
        self._answer: list[str] = []
        self._ended = False

    # --- feeding ----------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """True once the policy said STOP (never in observe mode)."""
        return self.decision is not None and not self.observe

    def feed(self, delta: str) -> Decision:
        """Feed raw model output (thinking markers included, as a model writes them)."""
        if self.stopped:
            return self._current()
        think, answer = self._splitter.feed(delta)
        if think:
            self._feed_thinking(think, decide=True)
        if self._splitter.closed and not self.thinking_closed:
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
            late = self._judge_pending("", None)  # the last step's values: nothing follows
            if late is not None:
                answer = self._tracker.update(late.step, late)
                if len(self.records) > self.n_decided:
                    # no decision was taken on the last step: its record can show what it stated
                    prev = self.records[-2] if len(self.records) > 1 else None
                    self.records[-1] = record_for(
                        replace(self.records[-1].tagged, candidate=late), answer, prev
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
        return Decision(Action.CONTINUE, "", self.policy.name, len(self.records) - 1 if self.records else None)

    def _feed_thinking(self, text: str, decide: bool) -> None:
        self._thinking.append(text)
        steps = self._segmenter.feed(text)
        if steps:
            self._add_steps(steps, decide)

    def _add_steps(self, steps: list[Any], decide: bool) -> None:
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

    def _add(self, step: Any) -> StepRecord:
        fmt = self.answer_format
        found = extract_candidate(step.text, fmt, self._options)
        strong = found is not None and found[1] != "conclusion"
        prev = self.records[-1] if self.records else None
        tag = self.tagger.tag(
            step.text,
            TagContext(
                index=step.index,
                previous=prev.type if prev else None,
                states_answer=strong,
                question=self.question,
            ),
        )
        # the previous step's prose values, judged now that the step after them is known
        late = self._judge_pending(step.text, tag.type)
        if late is not None:
            self._tracker.update(late.step, late)
        cand: Candidate | None
        if strong:
            assert found is not None
            cand = Candidate(found[0], found[1], step.index, 1.0)
            if self._scorer is not None:
                remember_text(self._mentions, step.text)
        else:
            cand = self._weak_candidate(step, tag.type, found)
        answer = self._tracker.update(step.index, cand)
        tokens = self.count_tokens(step.text if step.index == 0 else "\n\n" + step.text)
        rec = record_for(TaggedStep(step, tag, cand or late, tokens), answer, prev)
        self.records.append(rec)
        return rec

    def _weak_candidate(
        self, step: Any, type_: StepType, found: tuple[str, str] | None
    ) -> Candidate | None:
        """A value stated in plain prose ("So, half of that is 2450."), trusted at once when
        the tagger reads the step as a conclusion that opens with a concluding word; with the
        answer scorer, the step's values are otherwise judged one step late
        (``_judge_pending``)."""
        if self.conclusions == "never":
            return None
        if self.answer_format != "math":
            # choice / yes-no cues are specific ("I'll go with F"): trust them
            return Candidate(found[0], found[1], step.index) if found is not None else None
        if self._scorer is None:
            stated = conclusions(step.text)
            if stated and (self.conclusions == "always" or type_ in _CONCLUDING):
                return Candidate(stated[-1][1], "conclusion", step.index)
            return None
        inputs = self._inputs(step, type_)
        remember(self._mentions, inputs)
        if type_ in _CONCLUDING:
            concluding = [x for x in inputs if x.last_sentence and x.cue]
            if concluding:
                return Candidate(concluding[-1].value, "conclusion", step.index)
        self._pending = inputs
        return None

    def _judge_pending(self, next_text: str, next_type: StepType | None) -> Candidate | None:
        """The pending step's value most likely to state the answer, given the step that
        follows it, if the answer scorer gives it at least ``answer_threshold``."""
        pending, self._pending = self._pending, []
        if not pending or self._scorer is None:
            return None
        best, best_p = None, self.answer_threshold
        for x in with_next(pending, next_text, next_type):
            p = self._scorer.score(x)
            if p >= best_p:
                best, best_p = x, p
        if best is None:
            return None
        return Candidate(best.value, "conclusion" if best.cue else "statement", best.index, best_p)

    def _inputs(self, step: Any, type_: StepType) -> list[Any]:
        return step_inputs(step.text, type_, step.index, self._mentions, self._question_numbers,
                           self._ask, self._ask_unit)

    # --- results ----------------------------------------------------------------------------

    @property
    def steps(self) -> list[TaggedStep]:
        return [r.tagged for r in self.records]

    @property
    def answer(self) -> AnswerState:
        """The answer picture now (at the stop, if stopped)."""
        return self._tracker.state if not self.stopped else self.records[self.decision.step].answer  # type: ignore[index,union-attr]

    @property
    def thinking_text(self) -> str:
        """All thinking text received so far."""
        return "".join(self._thinking)

    @property
    def answer_text(self) -> str:
        return "".join(self._answer)

    @property
    def kept_steps(self) -> int:
        """Steps kept: up to and including the stop step, or all steps."""
        if self.stopped:
            return self.decision.step + 1  # type: ignore[union-attr,operator]
        return len(self.records)

    @property
    def truncated_thinking(self) -> str:
        """The thinking up to the end of the stop step (all of it when not stopped)."""
        text = self.thinking_text
        if not self.stopped:
            return text
        return text[: self.records[self.decision.step].tagged.step.end]  # type: ignore[index,union-attr]

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
                    "index": r.index,
                    "type": r.type.value,
                    "role": r.tagged.tag.role.value,
                    "confidence": round(r.tagged.tag.confidence, 3),
                    "tokens": r.tagged.tokens,
                    "candidate": stated[r.index].value if r.index in stated else None,
                }
                for r in kept
            ]
        return out

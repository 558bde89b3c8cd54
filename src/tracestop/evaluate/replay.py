"""Replay recorded traces through the Monitor, with the protocol below.

Per trace (one Monitor pass, shared by every policy):

- thinking tokens, full = every thinking step; used after a stop at step k = steps 1..k plus
  the forcing cue. Steps are counted one by one (each with the blank line before it).
- total tokens charge the recorded answer section in full, stopped or not.
- predicted answer after a stop = the candidate current at step k (none → wrong); replay
  cannot ask the model, so this is a conservative stand-in for a live stop.
- not stopped: the recorded final answer (from the answer section), graded by us.
- the thinking never closed (cut off by the recording's token limit) → excluded.

What a live request has. The Monitor is built from the question text a live request carries
(``live_question``: the prompt the model saw where the recording has it, else the question) and
the model name; the answer format it reads and the preset entry it takes are inferred from that
text (``TraceResult.live_format``), never from the benchmark name, so a preset's rows here are
what ``Monitor(preset, question=..., model=...)`` does live. Grading uses the benchmark's
answer format (``TraceResult.answer_format``): that is the ground truth's format.

Answer modes (``answer``): ``stated`` grades a stop by the candidate current at the cut;
``forced`` by the forced answer recorded for that cut (``tracestop.evaluate.forced``; only
traces with forced points), and the ``oracle`` row is the forced oracle. Not stopped: the
recorded final answer in both modes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal, Protocol

from tracestop.answers import AnswerFormat, equivalent, extract_candidate, infer_format
from tracestop.errors import ConfigError, DataError
from tracestop.evaluate.data import Trace
from tracestop.evaluate.oracle import bind_gold, parse_eval_policy
from tracestop.evaluate.pool import map_batches
from tracestop.monitor import Monitor, MonitorConfig
from tracestop.policies import Never, Policy, Preset, StepRecord, TraceState
from tracestop.segment import split_thinking
from tracestop.tokens import TokenCounter, counter_for

__all__ = [
    "ANSWER_MODES",
    "AnswerMode",
    "ForcedAnswers",
    "Outcome",
    "Prepared",
    "TraceResult",
    "apply_policy",
    "cross_fitting",
    "forced_oracle_outcome",
    "forced_outcome",
    "live_question",
    "out_of_fold_scorer",
    "policy_specs",
    "prepare",
    "prepare_many",
    "replay",
    "replay_many",
]

class ForcedAnswers(Protocol):
    """A trace's forced-answer points (``tracestop.evaluate.forced.ForcedRecord``): the answer
    forced from the first ``chars`` characters of the thinking (FORMAT.md's reading rule)."""

    def answer_at(self, chars: int) -> str | None: ...


#: how a stop is graded: the answer stated before the cut, or the answer forced from the prefix
AnswerMode = Literal["stated", "forced"]
ANSWER_MODES: tuple[AnswerMode, ...] = ("stated", "forced")


@dataclass(frozen=True)
class Outcome:
    """What one policy did on one trace."""

    policy: str
    stopped: bool
    step: int | None  # 1-based number of steps kept when stopped
    reason: str
    predicted: str | None
    correct: bool
    tokens: int  # thinking tokens used (incl. the forcing cue when stopped)
    total_tokens: int  # tokens + the recorded answer section


@dataclass
class TraceResult:
    """One trace replayed under several policies."""

    id: str
    benchmark: str
    model: str
    split: str
    gold: str
    answer_format: AnswerFormat
    n_steps: int
    tokens_full: int
    answer_tokens: int
    predicted_full: str | None
    correct_full: bool
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    excluded: str | None = None
    #: the answer format a live request with this question gets (inferred from its text alone):
    #: the Monitor reads answers in it and presets pick their entry by it
    live_format: AnswerFormat | None = None

    @property
    def format_live(self) -> AnswerFormat:
        return self.live_format or self.answer_format

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcomes"] = {k: asdict(v) for k, v in self.outcomes.items()}
        return d


_LONE_LETTER = re.compile(r"^\W*\(?([A-J])\)?\W*$")
_LONE_YESNO = re.compile(r"\b(YES|NO)\b", re.IGNORECASE)


def recorded_answer(
    answer_text: str, trace: Trace, fmt: AnswerFormat, last_candidate: str | None
) -> str | None:
    """The recorded final answer: extracted from the answer section; else the source's
    extracted ``final_answer``; else the last candidate stated in the thinking."""
    found = extract_candidate(answer_text, fmt)
    if found:
        return found[0]
    if fmt == "choice":
        m = _LONE_LETTER.match(answer_text.strip()[:20])
        if m:
            return m.group(1)
    if fmt == "yesno":
        hits: list[str] = _LONE_YESNO.findall(answer_text)
        if hits:
            return hits[-1].upper()
    if trace.final_answer:
        return trace.final_answer
    return last_candidate


def policy_specs(specs: Sequence[str], presets: Mapping[str, Preset] | None = None) -> list[str]:
    """The policies to report: those asked for, then ``none`` and ``oracle``, deduplicated."""
    out = list(dict.fromkeys([*specs, "none", "oracle"]))
    for s in out:  # validate early: a bad spec is a ConfigError before any work
        for fmt in ("math", "choice", "yesno"):
            parse_eval_policy(s, presets, answer_format=fmt)
    return out


@dataclass
class Prepared:
    """A trace after one Monitor pass: everything a policy needs to be replayed on it."""

    result: TraceResult  # with no outcomes yet (or ``excluded`` set)
    records: list[StepRecord] = field(default_factory=list)
    n_decided: int = 0
    cue_tokens: int = 0
    _correct: dict[str, bool] = field(default_factory=dict)
    #: the trace's forced-answer points, where recorded (``answer="forced"`` needs them)
    forced: ForcedAnswers | None = None

    def is_correct(self, pred: str | None) -> bool:
        """Graded against the gold answer with Math-Verify (memoised per trace)."""
        if pred is None:
            return False
        got = self._correct.get(pred)
        if got is None:
            got = equivalent(self.result.gold, pred, self.result.answer_format)
            self._correct[pred] = got
        return got


@lru_cache(maxsize=1)
def _fold_paths() -> tuple[str, ...] | None:
    from tracestop.answers.scorer import fold_weights
    from tracestop.evaluate.data import N_FOLDS

    paths = [fold_weights(f) for f in range(N_FOLDS)]
    return tuple(str(p) for p in paths) if all(p.is_file() for p in paths) else None


def cross_fitting() -> bool:
    """Whether the shipped answer scorer's out-of-fold models are there (then dev-split traces
    are replayed with them)."""
    return _fold_paths() is not None


def out_of_fold_scorer(question: str) -> str | None:
    """The answer-scorer weights that score a dev-split trace with the answer scorer's out-of-fold model,
    the one trained without the trace's problem (``fold_of``). The shipped scorer is trained on
    the dev split: on dev traces its confidences are in-sample, surer than on new traces, and
    tuning or measuring on them promises early stops that new traces do not keep. ``None`` when
    the out-of-fold weights are missing."""
    from tracestop.evaluate.data import fold_of

    paths = _fold_paths()
    return paths[fold_of(question)] if paths else None


def live_question(trace: Trace) -> str:
    """The question text a live request for this trace carries: the prompt the model saw where
    the recording holds it (a multiple-choice prompt lists the options), else the question. A
    recording's ``prompt`` that is only a description ("chat template, single user turn =
    question only") does not contain the question and is not used."""
    prompt = trace.meta.get("prompt")
    if isinstance(prompt, str) and prompt and trace.question.strip()[:40] in prompt:
        return prompt
    return trace.question


def prepare(
    trace: Trace,
    *,
    tagger: str | None = None,
    counter: TokenCounter | None = None,
    config: MonitorConfig | None = None,
) -> Prepared:
    """Run the Monitor once over a recorded trace (policy ``none``): steps, tags, candidates,
    token counts, and the recorded final answer graded. A dev-split trace is scored by the
    answer scorer's out-of-fold model (``out_of_fold_scorer``) unless ``config`` names a
    scorer."""
    fmt = infer_format(trace.question, trace.benchmark)  # grading: the benchmark's format
    question = live_question(trace)
    live_fmt = infer_format(question)  # what a live request gets: from the text alone
    counter = counter or counter_for(trace.model)
    gold = trace.gold or ""
    base = TraceResult(trace.id, trace.benchmark, trace.model, trace.split, gold, fmt, 0, 0, 0, None, False,
                       live_format=live_fmt)
    _thinking, answer = split_thinking(trace.trace)
    if answer is None:
        base.excluded = "thinking not closed (cut off)"
        return Prepared(base)
    config = config or MonitorConfig()
    if trace.split == "dev" and config.answer_scorer is None:
        config = replace(config, answer_scorer=out_of_fold_scorer(trace.question))
    m = Monitor(Never(), tagger=tagger, question=question, answer_format=live_fmt,
                model=trace.model, count_tokens=counter, config=config)
    m.feed(trace.trace)
    m.end()
    if not m.records:
        base.excluded = "empty thinking"
        return Prepared(base)
    prep = Prepared(base, m.records, m.n_decided, counter(m.forcing_suffix))
    base.n_steps = len(m.records)
    base.tokens_full = m.records[-1].tokens_cum
    base.answer_tokens = counter(m.answer_text)
    base.predicted_full = recorded_answer(m.answer_text, trace, fmt, m.answer.current)
    base.correct_full = prep.is_correct(base.predicted_full)
    return prep


def apply_policy(
    prep: Prepared,
    policy: str | Policy,
    presets: Mapping[str, Preset] | None = None,
    answer: AnswerMode = "stated",
) -> Outcome:
    """What ``policy`` does on a prepared trace: it decides at the same step boundaries, on
    the same records, as the live Monitor would. A preset takes the entry for the answer
    format a live request gets (``live_format``). ``answer="forced"`` grades the stop by the
    forced answer at its cut (the trace needs forced points), and ``oracle`` is the forced
    oracle."""
    if answer == "forced":
        if prep.forced is None:
            raise DataError(f"trace {prep.result.id}: no forced-answer points (answer mode 'forced')")
        if policy == "oracle":
            return forced_oracle_outcome(prep, prep.forced)
        return forced_outcome(prep, apply_policy(prep, policy, presets), prep.forced)
    if answer != "stated":
        raise ConfigError(f"answer mode must be one of {', '.join(ANSWER_MODES)}, got {answer!r}")
    r = prep.result
    spec = policy if isinstance(policy, str) else policy.spec()
    pol = bind_gold(
        parse_eval_policy(policy, presets, answer_format=r.format_live, benchmark=r.benchmark),
        prep.is_correct,
    )
    recs = prep.records
    for k in range(1, prep.n_decided + 1):
        d = pol.decide(TraceState(recs, k))
        if d.stop and d.step is not None:
            pred = recs[d.step].answer.current
            used = recs[d.step].tokens_cum + prep.cue_tokens
            return Outcome(spec, True, d.step + 1, d.reason, pred, prep.is_correct(pred), used,
                           used + r.answer_tokens)
    return Outcome(spec, False, None, "", r.predicted_full, r.correct_full, r.tokens_full,
                   r.tokens_full + r.answer_tokens)


def forced_outcome(prep: Prepared, outcome: Outcome, rec: ForcedAnswers) -> Outcome:
    """A stated-answer outcome re-graded with the forced answer at its cut (the end of the
    last step kept). A policy that did not stop keeps the recorded final answer (unchanged)."""
    if not outcome.stopped or outcome.step is None:
        return outcome
    pred = rec.answer_at(prep.records[outcome.step - 1].tagged.step.end)
    return replace(outcome, predicted=pred, correct=prep.is_correct(pred))


def forced_oracle_outcome(prep: Prepared, rec: ForcedAnswers, name: str = "oracle") -> Outcome:
    """The ``oracle`` row under forced answers: stop after the first step (among those a policy
    can stop after) whose forced answer is right; else the full trace with its recorded answer."""
    r = prep.result
    for k, step in enumerate(prep.records[: prep.n_decided]):
        pred = rec.answer_at(step.tagged.step.end)
        if prep.is_correct(pred):
            used = step.tokens_cum + prep.cue_tokens
            return Outcome(name, True, k + 1, f"stopped after step {k + 1}: the forced answer "
                           f"{pred} here is correct (forced oracle)", pred, True, used, used + r.answer_tokens)
    return Outcome(name, False, None, "", r.predicted_full, r.correct_full, r.tokens_full,
                   r.tokens_full + r.answer_tokens)


def replay(
    trace: Trace,
    policies: Sequence[str | Policy],
    *,
    tagger: str | None = None,
    counter: TokenCounter | None = None,
    config: MonitorConfig | None = None,
    presets: Mapping[str, Preset] | None = None,
    answer: AnswerMode = "stated",
    forced: Mapping[str, ForcedAnswers] | None = None,
) -> TraceResult:
    """Replay one trace under each policy (one Monitor pass; each policy then walks the same
    step records, deciding at the same boundaries the live Monitor would). With
    ``answer="forced"`` a trace without forced points in ``forced`` is excluded."""
    prep = prepare(trace, tagger=tagger, counter=counter, config=config)
    if prep.result.excluded:
        return prep.result
    if answer == "forced":
        prep.forced = forced.get(trace.id) if forced is not None else None
        if prep.forced is None:
            prep.result.excluded = "no forced-answer points"
            return prep.result
    for p in policies:
        o = apply_policy(prep, p, presets, answer)
        prep.result.outcomes[o.policy] = o
    return prep.result


# --- many traces, in worker processes ---------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init(
    policies: Sequence[str],
    tagger: str | None,
    config: MonitorConfig | None,
    presets: Mapping[str, Preset] | None = None,
    answer: AnswerMode = "stated",
    forced: Mapping[str, ForcedAnswers] | None = None,
) -> None:
    _WORKER["answer"] = answer
    _WORKER["forced"] = forced
    _WORKER["presets"] = dict(presets) if presets is not None else None
    _WORKER["policies"] = list(policies)
    _WORKER["tagger"] = tagger
    _WORKER["counter"] = counter_for(None)
    _WORKER["config"] = config


def _run(batch: list[Trace]) -> list[TraceResult]:
    w = _WORKER
    return [replay(t, w["policies"], tagger=w["tagger"], counter=w["counter"], config=w["config"],
                   presets=w["presets"], answer=w.get("answer", "stated"), forced=w.get("forced"))
            for t in batch]


def _prep(batch: list[Trace]) -> list[Prepared]:
    w = _WORKER
    return [prepare(t, tagger=w["tagger"], counter=w["counter"], config=w["config"]) for t in batch]


def replay_many(
    traces: Sequence[Trace],
    policies: Sequence[str],
    *,
    tagger: str | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 16,
    config: MonitorConfig | None = None,
    presets: Mapping[str, Preset] | None = None,
    answer: AnswerMode = "stated",
    forced: Mapping[str, ForcedAnswers] | None = None,
) -> list[TraceResult]:
    """Replay every trace; ``workers`` processes (default: all cores; 1 = in-process).
    ``progress(n)`` is called with the number of traces just finished. ``answer="forced"``
    grades stops by the forced answers in ``forced``."""
    if answer == "forced" and forced is None:
        raise ConfigError("answer mode 'forced' needs the forced-answer points (load_forced)")
    return _map(_run, traces, policies, tagger, workers, progress, batch_size, config, presets,
                answer, forced)


def prepare_many(
    traces: Sequence[Trace],
    *,
    tagger: str | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 16,
    config: MonitorConfig | None = None,
) -> list[Prepared]:
    """``prepare`` every trace, in worker processes; then ``apply_policy`` is cheap."""
    return _map(_prep, traces, [], tagger, workers, progress, batch_size, config, None)


def _map(
    fn: Callable[[list[Trace]], list[Any]],
    traces: Sequence[Trace],
    policies: Sequence[str],
    tagger: str | None,
    workers: int | None,
    progress: Callable[[int], None] | None,
    batch_size: int,
    config: MonitorConfig | None,
    presets: Mapping[str, Preset] | None,
    answer: AnswerMode = "stated",
    forced: Mapping[str, ForcedAnswers] | None = None,
) -> list[Any]:
    return map_batches(fn, traces, workers=workers, batch_size=batch_size, initializer=_init,
                       initargs=(list(policies), tagger, config, presets, answer, forced),
                       progress=progress)


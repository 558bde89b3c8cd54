"""Replay recorded traces through the Monitor, exactly as DESIGN.md's protocol says.

Per trace (one Monitor pass, shared by every policy):

- thinking tokens, full = every thinking step; used after a stop at step k = steps 1..k plus
  the forcing cue. Steps are counted one by one (each with the blank line before it).
- total tokens charge the recorded answer section in full, stopped or not.
- predicted answer after a stop = the candidate current at step k (none → wrong); replay
  cannot ask the model, so this is a conservative stand-in for a live stop.
- not stopped: the recorded final answer (from the answer section), graded by us.
- the thinking never closed (cut off by the recording's token limit) → excluded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from tracestop.answers import AnswerFormat, equivalent, extract_candidate, infer_format
from tracestop.evaluate.data import Trace
from tracestop.monitor import Monitor
from tracestop.policies import Never, Policy, TraceState, bind_gold, parse_policy
from tracestop.segment import split_thinking
from tracestop.tokens import TokenCounter, counter_for

__all__ = ["Outcome", "TraceResult", "replay", "replay_many", "policy_specs"]


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
    answer_format: str
    n_steps: int
    tokens_full: int
    answer_tokens: int
    predicted_full: str | None
    correct_full: bool
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    excluded: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcomes"] = {k: asdict(v) for k, v in self.outcomes.items()}
        return d


_LONE_LETTER = re.compile(r"^\W*\(?([A-J])\)?\W*$")
_LONE_YESNO = re.compile(r"\b(YES|NO)\b", re.I)


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
        hits = _LONE_YESNO.findall(answer_text)
        if hits:
            return hits[-1].upper()
    if trace.final_answer:
        return trace.final_answer
    return last_candidate


def policy_specs(specs: Sequence[str]) -> list[str]:
    """The policies to report: those asked for, then ``none`` and ``oracle``, deduplicated."""
    out = list(dict.fromkeys([*specs, "none", "oracle"]))
    for s in out:
        parse_policy(s)  # validate early: a bad spec is a ConfigError before any work
    return out


def replay(
    trace: Trace,
    policies: Sequence[str | Policy],
    *,
    tagger: str | None = None,
    counter: TokenCounter | None = None,
) -> TraceResult:
    """Replay one trace under each policy (one Monitor pass; each policy then walks the same
    step records, deciding at the same boundaries the live Monitor would)."""
    fmt = infer_format(trace.question, trace.benchmark)
    counter = counter or counter_for(trace.model)
    gold = trace.gold or ""
    base = TraceResult(trace.id, trace.benchmark, trace.model, trace.split, gold, fmt, 0, 0, 0, None, False)
    thinking, answer = split_thinking(trace.trace)
    if answer is None:
        base.excluded = "thinking not closed (cut off)"
        return base
    if not thinking.strip():
        base.excluded = "empty thinking"
        return base
    m = Monitor(Never(), tagger=tagger, question=trace.question, answer_format=fmt,
                model=trace.model, count_tokens=counter)
    m.feed(trace.trace)
    m.end()
    recs = m.records
    if not recs:
        base.excluded = "empty thinking"
        return base

    def is_correct(pred: str | None) -> bool:
        return pred is not None and equivalent(gold, pred, fmt)

    answer_tokens = counter(m.answer_text)
    full = recs[-1].tokens_cum
    predicted_full = recorded_answer(m.answer_text, trace, fmt, m.answer.current)
    correct_full = is_correct(predicted_full)
    cue_tokens = counter(m.forcing_suffix)
    result = TraceResult(
        trace.id, trace.benchmark, trace.model, trace.split, gold, fmt, len(recs), full,
        answer_tokens, predicted_full, correct_full,
    )
    for p in policies:
        pol = bind_gold(parse_policy(p), is_correct)
        spec = p if isinstance(p, str) else p.spec()
        stop = None
        for k in range(1, m.n_decided + 1):
            d = pol.decide(TraceState(recs, k))
            if d.stop:
                stop = d
                break
        if stop is None or stop.step is None:
            result.outcomes[spec] = Outcome(spec, False, None, "", predicted_full, correct_full,
                                            full, full + answer_tokens)
            continue
        k = stop.step
        pred = recs[k].answer.current
        used = recs[k].tokens_cum + cue_tokens
        result.outcomes[spec] = Outcome(spec, True, k + 1, stop.reason, pred, is_correct(pred),
                                        used, used + answer_tokens)
    return result


# --- many traces, in worker processes ---------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init(policies: Sequence[str], tagger: str | None) -> None:
    _WORKER["policies"] = list(policies)
    _WORKER["tagger"] = tagger
    _WORKER["counter"] = counter_for(None)


def _run(batch: list[Trace]) -> list[TraceResult]:
    return [replay(t, _WORKER["policies"], tagger=_WORKER["tagger"], counter=_WORKER["counter"]) for t in batch]


def replay_many(
    traces: Sequence[Trace],
    policies: Sequence[str],
    *,
    tagger: str | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 16,
) -> list[TraceResult]:
    """Replay every trace; ``workers`` processes (default: all cores; 1 = in-process).
    ``progress(n)`` is called with the number of traces just finished."""
    workers = workers or os.cpu_count() or 1
    batches = [list(traces[i : i + batch_size]) for i in range(0, len(traces), batch_size)]
    out: list[TraceResult] = []
    if workers <= 1 or len(batches) <= 1:
        _init(policies, tagger)
        for b in batches:
            out.extend(_run(b))
            if progress:
                progress(len(b))
        return out
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(list(policies), tagger)) as ex:
        for res in ex.map(_run, batches):
            out.extend(res)
            if progress:
                progress(len(res))
    return out


def iter_outcomes(results: Iterable[TraceResult]) -> Iterable[tuple[TraceResult, Outcome]]:
    for r in results:
        for o in r.outcomes.values():
            yield r, o

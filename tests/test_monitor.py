from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import R1_TRACE, PrefixTagger, chunk, scripted
from tracestop.evaluate.data import Trace
from tracestop.evaluate.replay import live_question, out_of_fold_scorer, replay
from tracestop.monitor import Monitor, MonitorConfig
from tracestop.policies import TraceState, parse_policy
from tracestop.segment import split_thinking
from tracestop.tag.rules import RuleTagger
from tracestop.tokens import counter_for

POLICIES = ["traces-shift:window=3,delta=0.6", "traces-count:k=2", "consistency:k=2",
            "budget:tokens=300", "none"]


def fingerprint(m: Monitor):
    steps = [(r.tagged.step, r.type, r.tagged.candidate, r.answer) for r in m.records[: m.kept_steps]]
    d = m.decision
    return steps, (d.step, d.reason) if d else None, m.truncated_thinking


def live(text: str, parts: list[str], policy: str, **kw) -> Monitor:
    m = Monitor(policy, tagger=RuleTagger(), **kw)
    for p in parts:
        if m.feed(p).stop:
            break
    m.end()
    return m


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), max_len=st.sampled_from([1, 5, 40, 300]))
def test_chunking_does_not_change_steps_tags_or_decisions(sample_traces, seed, max_len):
    rng = random.Random(seed)
    for rec in rng.sample(sample_traces, 4):
        for policy in rng.sample(POLICIES, 2):
            kw = {"question": rec["question"], "benchmark": rec["benchmark"], "model": rec["model"]}
            whole = live(rec["trace"], [rec["trace"]], policy, **kw)
            parts = live(rec["trace"], chunk(rec["trace"], rng, max_len), policy, **kw)
            assert fingerprint(parts) == fingerprint(whole)


def test_replay_stops_where_the_live_monitor_stops(sample_traces):
    """Offline replay walks the same records and decides at the same boundaries."""
    checked = 0
    for rec in sample_traces:
        if rec["gold"] is None or split_thinking(rec["trace"])[1] is None:
            continue
        t = Trace(rec["id"], rec["benchmark"], rec["model"], rec["question"], rec["gold"], rec["trace"])
        res = replay(t, POLICIES, tagger="rules")
        for policy in POLICIES:
            # replay scores a dev-split trace with the answer scorer's out-of-fold model
            scorer = out_of_fold_scorer(t.question) if t.split == "dev" else None
            # a live request has the question text and the model name, never the benchmark
            m = Monitor(policy, tagger=RuleTagger(), question=live_question(t), model=t.model,
                        count_tokens=counter_for(None), config=MonitorConfig(answer_scorer=scorer))
            m.feed(t.trace)
            m.end()
            o = res.outcomes[policy]
            assert o.stopped == m.stopped, (t.id, policy)
            if m.stopped:
                assert o.step == m.decision.step + 1
                assert o.reason == m.decision.reason
                checked += 1
    assert checked > 5


def test_reasoning_field_and_inline_markers_agree():
    thinking, answer = split_thinking(R1_TRACE)
    inline = Monitor("traces-count:k=2", tagger=RuleTagger())
    inline.feed(R1_TRACE)
    inline.end()
    field = Monitor("traces-count:k=2", tagger=RuleTagger())
    for i in range(0, len(thinking), 7):
        field.feed_thinking(thinking[i : i + 7])
    field.feed_answer(answer)
    field.end()
    assert fingerprint(inline) == fingerprint(field)


def test_truncation_and_forcing_suffix():
    m = Monitor("traces-count:k=1,types=verification", tagger=PrefixTagger(), model="qwq")
    trace = scripted("[formula_substitution] 12 - 5 = 7 apples remain here.",
                     "[final_conclusion] So the answer is 7.",
                     "[verification] Let me check 7 + 5 = 12. Yes.",
                     "[other] something else entirely happens now.")
    for ch in trace:
        if m.feed(ch).stop:
            break
    assert m.stopped
    assert m.truncated_thinking.endswith("Let me check 7 + 5 = 12. Yes.")
    assert m.forcing_suffix == "\n</think>\n\n**Final Answer**\n"
    assert m.answer.current == "7"
    rep = m.report()
    assert rep["stopped"] and rep["step"] == 3 and rep["answer"] == "7"
    assert [s["type"] for s in rep["steps"]] == ["formula_substitution", "final_conclusion", "verification"]
    # after a stop, further input is ignored and the decision stays
    assert m.feed("more text\n\nand more text here").stop


def test_gemma_template_and_choice_cue():
    m = Monitor("none", tagger=PrefixTagger(), model="google/gemma-4-12B-it", benchmark="gpqa-diamond")
    assert m.answer_format == "choice"
    assert m.forcing_suffix.startswith("\n<channel|>")


def test_trace_state_window_counts():
    m = Monitor("none", tagger=PrefixTagger())
    m.feed(scripted("[verification] a check of the earlier result.",
                    "[other] some unrelated text in between.",
                    "[final_conclusion] So the answer is 3.",
                    "[verification] yes, three is right indeed.", close=False))
    m.end()
    s = TraceState(m.records)
    assert s.evaluative_in_last(2) == 2
    assert s.evaluative_in_last(4) == 3
    assert s.count_since([parse_policy("traces-count").types[0]], 0) == 1
    with pytest.raises(IndexError):
        s.record(10)


def test_counter_is_pluggable():
    class Words:
        name = "words"

        def __call__(self, text: str) -> int:
            return len(text.split())

    m = Monitor("none", tagger=PrefixTagger(), count_tokens=Words())
    m.feed("one two three four five six seven\n\neight nine ten eleven twelve thirteen")
    m.end()
    assert m.thinking_tokens == 13
    assert m.report()["token_counter"] == "words"


def test_eval_default_rows_are_what_a_live_request_gets(data_root):
    """`eval`'s `default` rows equal `Monitor("default", question=..., model=...)` live: a live
    request has the question text and the model name, never the benchmark. Checked on a sample
    of dev traces from every benchmark (same stop step, same reason, same answer)."""
    import random

    from tracestop.evaluate.data import load_traces
    from tracestop.evaluate.replay import apply_policy, prepare

    ts = load_traces(data_root, split="dev")
    by_bench: dict[str, list[Trace]] = {}
    for t in ts.traces:
        by_bench.setdefault(t.benchmark, []).append(t)
    rng = random.Random(15)
    sample = [t for b in sorted(by_bench) for t in rng.sample(by_bench[b], min(6, len(by_bench[b])))]
    counter = counter_for(None)
    checked = stopped = 0
    for t in sample:
        prep = prepare(t, counter=counter)
        if prep.result.excluded:
            continue
        o = apply_policy(prep, "default")
        m = Monitor("default", question=live_question(t), model=t.model, count_tokens=counter,
                    config=MonitorConfig(answer_scorer=out_of_fold_scorer(t.question)))
        m.feed(t.trace)
        m.end()
        assert o.stopped == m.stopped, (t.id, t.benchmark)
        if m.stopped:
            assert o.step == m.decision.step + 1, (t.id, t.benchmark)
            assert o.reason == m.decision.reason
            assert o.predicted == m.decision.details.get("answer")
            stopped += 1
        checked += 1
    assert checked >= 30 and stopped >= 3, (checked, stopped)


def test_states_read_per_delta_or_once_agree():
    """The states-answer head's inputs are kept per step and turned into contexts only when
    read: reading after every delta and once at the end give the same verdicts, one per step,
    and a step's verdict depends on the step before it (its context is that step's)."""
    q = "What is 12-5?"
    raw = R1_TRACE
    once = Monitor("none", question=q)
    often = Monitor("none", question=q)
    for part in chunk(raw, random.Random(3), 40):
        once.feed(part)
        often.feed(part)
        often.read_states()
    once.end()
    often.end()
    a, b = once.read_states(), often.read_states()
    assert len(a) == len(once.records) > 1
    assert [(v.flag, v.p, v.evidence) for v in a] == [(v.flag, v.p, v.evidence) for v in b]
    from tracestop.tag.states import StatesHead, states_context
    head, recs = StatesHead(), once.records
    for i, r in enumerate(recs):
        prev = recs[i - 1] if i else None
        c = r.tagged.candidate
        ctx = states_context(i, once.answer_format, once.reader.states_answer(r.tagged.step),
                             c.kind if c and c.step == i else "",
                             prev.answer.current if prev else None, once.reader.question,
                             prev.tagged.step.text if prev else "")
        assert head.read(r.tagged.step.text, ctx).p == a[i].p

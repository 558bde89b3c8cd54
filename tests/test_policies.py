from __future__ import annotations

import pytest

from tests.conftest import PrefixTagger, scripted
from tracestop.errors import ConfigError
from tracestop.evaluate.oracle import Oracle, bind_gold, parse_eval_policy
from tracestop.monitor import Monitor, MonitorConfig
from tracestop.policies import (
    AllOf,
    AnyOf,
    Budget,
    Consistency,
    Never,
    TracesCount,
    TracesShift,
    parse_policy,
)


def run(policy, trace, **kw):
    # only explicit answer statements count as candidates here, so the steps say exactly
    # when an answer appears (the answer scorer is tested on its own)
    kw.setdefault("config", MonitorConfig(candidates="never"))
    m = Monitor(policy, tagger=PrefixTagger(), **kw)
    m.feed(trace)
    m.end()
    return m


SHIFT = scripted(
    "[formula_substitution] 12 - 5 = 7 apples remain after giving five away.",
    "[final_conclusion] So the answer is 7.",
    "[verification] Let me check: 7 + 5 = 12. Yes.",
    "[verification] Check again, 12 - 5 = 7, correct.",
    "[verification] One more check, still 7 apples.",
    "[verification] And again, I am sure it is right.",
    "[final_conclusion] So the answer is 7, confirmed.",
    "[final_conclusion] Final: the answer is 7.",
)


def test_traces_shift_stops_with_a_reason():
    m = run("traces-shift:window=4,delta=0.75", SHIFT)
    assert m.stopped
    # answer at step 2 (index 1); window of 4 starting there is steps 2..5 (index 1..4)
    assert m.decision.step == 4
    assert m.decision.reason == (
        "stopped after step 5: answer 7 first stated at step 2, then 4 of the last 4 steps "
        "were evaluative and no new answer appeared"
    )
    assert m.report()["step"] == 5


def test_traces_shift_waits_when_a_new_answer_appears():
    trace = scripted(
        "[final_conclusion] So the answer is 7.",
        "[verification] Check: fine so far, yes.",
        "[final_conclusion] Hmm, so the answer is 8.",
        "[verification] Check the new one, 8 holds.",
        "[verification] Check again, 8 holds still.",
        "[verification] Check a third time, it is 8.",
        "[verification] And a fourth check of 8, fine.",
        "[other] more text that never ends the reasoning.",
    )
    m = run("traces-shift:window=4,delta=0.75", trace)
    assert m.decision.step == 5  # window index 2..5 starts with the new answer
    assert "answer 8 first stated at step 3" in m.decision.reason


def test_traces_shift_needs_an_answer():
    trace = scripted(*(["[verification] checking things over and over."] * 8))
    assert not run("traces-shift", trace).stopped


def test_traces_count():
    m = run("traces-count:k=2,types=verification", SHIFT)
    assert m.decision.step == 3
    assert "then 2 verification steps followed" in m.decision.reason


def test_budget_and_consistency():
    m = run(Budget(tokens=30), SHIFT)
    assert m.stopped and m.thinking_tokens >= 30
    assert m.records[m.decision.step - 1].tokens_cum < 30
    c = run(Consistency(k=2), SHIFT)
    assert c.decision.step == 6 and "agree on 7" in c.decision.reason


def test_never_and_observe():
    assert not run("none", SHIFT).stopped
    m = run("traces-count:k=1", SHIFT, observe=True)
    assert not m.stopped and m.decision is not None  # would have stopped
    assert len(m.records) == 8
    assert m.report()["observe"] is True


def test_oracle_needs_gold_and_uses_it():
    with pytest.raises(ConfigError, match="evaluation"):
        run(Oracle(), SHIFT)
    m = run(Oracle(lambda v: v == "7"), SHIFT)
    assert m.decision.step == 1


@pytest.mark.parametrize("spec", ["oracle", "none | oracle", "traces-count:k=1 & oracle"])
def test_the_live_registry_refuses_evaluation_only_policies(spec):
    with pytest.raises(ConfigError, match="'oracle' is evaluation-only"):
        parse_policy(spec)
    with pytest.raises(ConfigError, match="evaluation-only"):
        Monitor(spec, tagger=PrefixTagger())


def test_evaluation_parses_and_binds_the_oracle():
    p = bind_gold(parse_eval_policy("none | oracle"), lambda v: v == "7")
    assert isinstance(p, AnyOf) and isinstance(p.members[1], Oracle)
    assert p.spec() == "none | oracle"
    assert run(p, SHIFT).decision.step == 1


def test_composition():
    any_ = parse_policy("budget:tokens=100000 | traces-count:k=1")
    assert isinstance(any_, AnyOf)
    assert run(any_, SHIFT).decision.step == 2
    all_ = parse_policy("traces-count:k=1 & consistency:k=2")
    assert isinstance(all_, AllOf)
    m = run(all_, SHIFT)
    assert m.decision.step == 6 and "; and " in m.decision.reason


def test_no_decision_on_the_last_step():
    """The step flushed when thinking ends gets no decision: nothing would be saved."""
    trace = scripted("[final_conclusion] So the answer is 7.", "[verification] checking it again now.")
    assert not run("traces-count:k=1,types=verification", trace).stopped


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nope", "unknown policy 'nope'"),
        ("traces-shift:width=3", "unknown parameter 'width'"),
        ("traces-shift:window=0", "window must be >= 1"),
        ("traces-shift:delta=2", "delta must be in"),
        ("traces-shift:window=x", "window must be an integer"),
        ("traces-count:types=thinking", "unknown step type 'thinking'"),
        ("budget:tokens", "needs a value"),
        ("", "empty policy spec"),
        ("default:window=3", "preset 'default' takes no parameters"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy(spec)


def test_specs_round_trip():
    for spec in ["traces-shift:window=3,delta=0.5,min_count=2", "budget:tokens=10",
                 "traces-count:k=2,types=verification+meta_cognition", "none"]:
        p = parse_policy(spec)
        assert parse_policy(p.spec()) == p
    assert parse_policy("default") == parse_policy(parse_policy("default").spec())
    assert isinstance(parse_policy("full"), Never)
    assert TracesShift() == parse_policy("traces-shift")
    assert TracesCount(k=2) == parse_policy("traces-count:k=2")


def test_confident_gates_on_how_surely_the_answer_was_stated():
    # explicit statements count 1.0
    m = run("traces-count:k=1,types=verification & confident:p=0.9", SHIFT)
    assert m.stopped and m.decision.step == 2
    assert "stated with confidence 1.00 (at least 0.9)" in m.decision.reason
    # values in prose carry the answer scorer's probability, kept per candidate and per state
    trace = scripted(
        "[formula_substitution] Tom has 3 bags with 4 apples in each bag, so 3 * 4 = 12 apples.",
        "[verification] Let me check that the count is right before I go on with it.",
        "[verification] Yes, it is right, nothing to change in the sum above here.",
        "[other] more text after this point to close the last step.",
    )
    m = Monitor("none", tagger=PrefixTagger(), question="How many apples does Tom have?")
    m.feed(trace)
    m.end()
    cands = [r.tagged.candidate for r in m.records if r.tagged.candidate]
    assert cands and all(0.5 <= c.confidence <= 1.0 for c in cands)
    assert m.records[-1].answer.confidence == max(c.confidence for c in cands)
    p = cands[0].confidence
    assert p < 0.99
    for gate, stops in ((p + 0.01, False), (0.5, True)):  # the gate holds the stop back, or not
        g = Monitor(f"traces-count:k=1,types=verification & confident:p={gate:.3f}",
                    tagger=PrefixTagger(), question="How many apples does Tom have?")
        g.feed(trace)
        g.end()
        assert g.stopped is stops
    with pytest.raises(ConfigError, match="confident: p must be in"):
        parse_policy("confident:p=1.5")


def test_agree_eval_stops_when_an_answer_is_stated_while_checking():
    m = run("agree-eval:c=1,w=2,d=0.5", SHIFT)
    # step 2 (0-based 1) states 7 and is a final conclusion: 1 of the last 2 steps evaluative
    assert m.decision.step == 1
    assert "answer 7 stated at step 2 while 1 of the last 2 steps were checks" in m.decision.reason
    # needing the answer twice waits for the next step that states it (step 7)
    m = run("agree-eval:c=2,w=4,d=1.0", SHIFT)
    assert m.decision.step == 6 and "stated 2 times in a row" in m.decision.reason
    # a window longer than the trace so far: no stop at step 2; verification steps that state
    # nothing never stop it
    m = run("agree-eval:c=1,w=4,d=0.25", SHIFT)
    assert m.decision.step == 6
    assert parse_policy("agree-eval:c=1,w=4,d=0.25").spec() == "agree-eval:c=1,w=4,d=0.25"


@pytest.mark.parametrize(("spec", "message"), [
    ("agree-eval:c=0", "c (times the answer was stated) must be >= 1"),
    ("agree-eval:w=0", "w (steps looked back on) must be >= 1"),
    ("agree-eval:d=0", "d (share of evaluative steps) must be in (0, 1]"),
    ("agree-eval:d=1.5", "d (share of evaluative steps) must be in (0, 1]"),
    ("agree-eval:x=1", "unknown parameter 'x'"),
])
def test_agree_eval_validates_its_parameters(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        parse_policy(spec)


def test_the_default_preset_names_no_benchmark():
    from tracestop.policies import PRESETS

    assert all(not k.startswith("benchmark:") for k in PRESETS["default"])
    assert set(PRESETS["default"]) >= {"math", "choice", "yesno", "*"}


CHECKED = scripted(
    "[formula_substitution] 12 - 5 = 7, so the answer is 7.",
    "[formula_substitution] Recomputing the sum, the answer is 7.",
    "[verification] Let me check it: 7 + 5 = 12, so the answer is 7.",
    "[verification] Checking once more, the answer is 7.",
    "[meta_cognition] I think I am done here.",
    "[final_conclusion] Final: the answer is 7.",
)


def test_checked_consistency_counts_only_restatements_made_while_checking():
    # plain consistency stops at the second statement, made while still computing
    assert run("consistency:k=2", CHECKED).decision.step == 1
    m = run("checked-consistency:k=1", CHECKED)
    assert m.decision.step == 2
    assert m.decision.reason == ("stopped after step 3: answer 7 restated in 1 check step (the last "
                                 "at step 3) since it was first stated at step 1")
    m = run("checked-consistency:k=2", CHECKED)
    assert m.decision.step == 3 and "restated in 2 check steps (the last at step 4)" in m.decision.reason
    # combined with plain consistency: the last 4 statements agree and one of them was a check
    m = run("consistency:k=4 & checked-consistency:k=1", CHECKED)
    assert m.decision.step == 3
    assert "the last 4 candidate answers all agree on 7; and answer 7 restated in 2 check steps" in m.decision.reason
    # three checks never happen before the last step: no stop
    assert not run("checked-consistency:k=3", CHECKED).stopped
    # a new answer starts the count again: the check of 7 no longer counts for 8
    changed = scripted(
        "[final_conclusion] So the answer is 7.",
        "[verification] Let me check: the answer is 7.",
        "[formula_substitution] No wait, the answer is 8.",
        "[formula_substitution] Again, the answer is 8.",
        "[verification] Check: the answer is 8.",
        "[final_conclusion] Final: the answer is 8.",
    )
    m = run("checked-consistency:k=1", changed)
    assert m.decision.step == 1
    m = run("checked-consistency:k=2", changed)
    assert not m.stopped
    assert parse_policy("checked-consistency:k=2").spec() == "checked-consistency:k=2"
    with pytest.raises(ConfigError, match="checked-consistency: k"):
        parse_policy("checked-consistency:k=0")


QUIET = scripted(
    "[formula_substitution] 12 - 5 = 7, so the answer is 7.",
    "[verification] Let me check it: 7 + 5 = 12, so the answer is 7.",
    "[verification] Both givens are used, nothing is left out.",
    "[meta_cognition] I wonder whether the question means something else.",
    "[heuristic_intuition] It reads plainly enough.",
    "[final_conclusion] Final: the answer is 7.",
)


def test_quiet_stops_after_a_checked_answer_and_steps_without_a_new_one():
    m = run("quiet:n=2,c=2", QUIET)
    assert m.decision.step == 3
    assert m.decision.reason == ("stopped after step 4: answer 7 restated in a verification step at "
                                 "step 2, then 2 steps without a new answer")
    assert run("quiet:n=1,c=2", QUIET).decision.step == 2
    # stated only twice: c=3 never holds
    assert not run("quiet:n=2,c=3", QUIET).stopped
    # the last statement not made while checking: no stop
    unchecked = scripted(
        "[formula_substitution] 12 - 5 = 7, so the answer is 7.",
        "[formula_substitution] Recomputing, the answer is 7.",
        "[verification] Both givens are used, nothing is left out.",
        "[meta_cognition] I wonder whether the question means something else.",
        "[heuristic_intuition] It reads plainly enough.",
        "[final_conclusion] Final: the answer is 7.",
    )
    assert not run("quiet:n=2,c=2", unchecked).stopped
    assert parse_policy("quiet:n=2,c=2").spec() == "quiet:n=2,c=2"
    with pytest.raises(ConfigError, match="quiet: n"):
        parse_policy("quiet:n=0")
    with pytest.raises(ConfigError, match="must be >= 2"):
        parse_policy("quiet:c=1")

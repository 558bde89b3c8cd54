from __future__ import annotations

from tracestop._types import StepType
from tracestop.monitor import Monitor
from tracestop.scorer import N_FEATURES, AnswerScorer, ScorerInput, featurize, question_numbers
from tests.conftest import PrefixTagger


def x(sentence, value, type_=StepType.FORMULA_SUBSTITUTION, ends=True, restates=False, q="Tom has 40 cats."):
    return ScorerInput(sentence, value, type_, 5, ends, restates, question_numbers(q))


def test_features_are_stable_and_in_range():
    f = featurize(x("So, 40 cobras have 2800 spots in total.", "2800"))
    assert f == featurize(x("So, 40 cobras have 2800 spots in total.", "2800"))
    assert all(0 <= i < N_FEATURES for i in f)
    # numbers are masked: the words decide, not the digits
    assert featurize(x("So the total is 12.", "12")) == featurize(x("So the total is 99.", "99"))


def test_final_answers_outscore_intermediate_results():
    s = AnswerScorer()
    final = s.score(x("Therefore, the answer is 2450, the final result.", "2450",
                      StepType.VERIFICATION, restates=True))
    given = s.score(x("So, there are 40 cobras.", "40", StepType.CONTEXT_REPETITION, ends=False))
    assert 0.0 <= given < final <= 1.0
    assert "dev split" in s.meta


def test_conclusion_modes():
    trace = "[formula_substitution]\nSo, 40 cobras have 2800 spots in total here.\n\n[other] and more text here."
    scored = Monitor("none", tagger=PrefixTagger(), conclusions="always")
    scored.feed(trace)
    scored.end()
    assert scored.records[0].tagged.candidate.value == "2800"
    never = Monitor("none", tagger=PrefixTagger(), conclusions="never")
    never.feed(trace)
    never.end()
    assert never.records[0].tagged.candidate is None

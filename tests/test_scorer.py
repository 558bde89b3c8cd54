from __future__ import annotations

from tests.conftest import PrefixTagger
from tracestop._types import StepType
from tracestop.monitor import Monitor
from tracestop.scorer import N_FEATURES, AnswerScorer, ScorerInput, featurize, question_numbers


def x(sentence, value, type_=StepType.FORMULA_SUBSTITUTION, last=True, mentions=0, q="Tom has 40 cats."):
    cue = sentence.lower().startswith(("so", "therefore"))
    return ScorerInput(sentence, value, type_, 5, last, cue, mentions, question_numbers(q))


def test_features_are_stable_and_in_range():
    f = featurize(x("So, 40 cobras have 2800 spots in total.", "2800"))
    assert f == featurize(x("So, 40 cobras have 2800 spots in total.", "2800"))
    assert all(0 <= i < N_FEATURES for i in f)
    # numbers are masked: the words decide, not the digits
    assert featurize(x("So the total is 12.", "12")) == featurize(x("So the total is 99.", "99"))


def test_final_answers_outscore_intermediate_results():
    s = AnswerScorer()
    final = s.score(x("Therefore, the answer is 2450, the final result.", "2450",
                      StepType.VERIFICATION, mentions=2))
    given = s.score(x("So, there are 40 cobras.", "40", StepType.CONTEXT_REPETITION, last=False))
    assert 0.0 <= given < final <= 1.0
    assert "dev split" in s.meta


def test_step_inputs_count_earlier_mentions():
    from tracestop.scorer import remember, step_inputs

    mentions: dict[str, int] = {}
    first = step_inputs("We get 12 here. So the total is 2,450.", StepType.OTHER, 0, mentions, frozenset({"12"}))
    assert [(i.value, i.mentions, i.last_sentence, i.cue) for i in first] == [
        ("12", 0, False, False), ("2450", 0, True, True)]
    remember(mentions, first)
    again = step_inputs("Yes, 2450 again.", StepType.OTHER, 1, mentions, frozenset())
    assert again[0].mentions == 1


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


def test_question_ask_names_what_is_asked():
    from tracestop.scorer import question_ask

    ask = question_ask("There were 25 men and 15 women. How many women are left if 22 men stayed?")
    assert {"women", "left"} <= ask
    assert "how" not in ask and "many" not in ask
    assert question_ask("") == frozenset()


def test_naming_what_is_asked_raises_the_score():
    from tracestop.scorer import question_ask

    ask = question_ask("After an hour, some people left. How many women are left at the party?")
    s = AnswerScorer()
    plain = x("Therefore, there are 8 women left at the party.", "8")
    named = ScorerInput(plain.sentence, plain.value, plain.type, plain.index, plain.last_sentence,
                        plain.cue, plain.mentions, plain.question_numbers, ask)
    other = ScorerInput("Therefore, there are 8 chairs in the hall.", "8", plain.type, plain.index,
                        True, True, 0, plain.question_numbers, ask)
    assert s.score(named) > s.score(plain)
    assert s.score(named) > s.score(other)


def test_remember_text_counts_what_the_scorer_inputs_would():
    from tracestop.scorer import remember, remember_text, step_inputs

    text = "We get 12 here. So the total is 2,450. Again, 12 apples and 2450."
    a: dict[str, int] = {}
    b: dict[str, int] = {}
    remember(a, step_inputs(text, StepType.OTHER, 0, {}, frozenset()))
    remember_text(b, text)
    assert a == b == {"12": 1, "2450": 1}

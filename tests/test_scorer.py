from __future__ import annotations

from tests.conftest import PrefixTagger
from tracestop._types import StepType
from tracestop.answers.question import question_numbers
from tracestop.answers.scorer import N_FEATURES, AnswerScorer, ScorerInput, featurize
from tracestop.monitor import Monitor, MonitorConfig


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
    from tracestop.answers.scorer import remember, step_inputs

    mentions: dict[str, int] = {}
    first = step_inputs("We get 12 here. So the total is 2,450.", StepType.OTHER, 0, mentions, frozenset({"12"}))
    assert [(i.value, i.mentions, i.last_sentence, i.cue) for i in first] == [
        ("12", 0, False, False), ("2450", 0, True, True)]
    remember(mentions, first)
    again = step_inputs("Yes, 2450 again.", StepType.OTHER, 1, mentions, frozenset())
    assert again[0].mentions == 1


def test_conclusion_modes():
    trace = "[formula_substitution]\nSo, 40 cobras have 2800 spots in total here.\n\n[other] and more text here."
    scored = Monitor("none", tagger=PrefixTagger(), config=MonitorConfig(candidates="always"))
    scored.feed(trace)
    scored.end()
    assert scored.records[0].tagged.candidate.value == "2800"
    never = Monitor("none", tagger=PrefixTagger(), config=MonitorConfig(candidates="never"))
    never.feed(trace)
    never.end()
    assert never.records[0].tagged.candidate is None


def test_question_ask_names_what_is_asked():
    from tracestop.answers.question import question_ask

    ask = question_ask("There were 25 men and 15 women. How many women are left if 22 men stayed?")
    assert {"women", "left"} <= ask
    assert "how" not in ask and "many" not in ask
    assert question_ask("") == frozenset()


def test_naming_what_is_asked_raises_the_score():
    from tracestop.answers.question import question_ask

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
    from tracestop.answers.scorer import remember, remember_text, step_inputs

    text = "We get 12 here. So the total is 2,450. Again, 12 apples and 2450."
    a: dict[str, int] = {}
    b: dict[str, int] = {}
    remember(a, step_inputs(text, StepType.OTHER, 0, {}, frozenset()))
    remember_text(b, text)
    assert a == b == {"12": 1, "2450": 1}


def test_the_following_step_adds_features_only_once_known():
    from tracestop.answers.scorer import with_next

    base = x("So she pays 32 dollars.", "32")
    ended = featurize(with_next([base], "", None)[0])
    assert set(ended) - set(featurize(base))  # "nothing follows" is a feature of its own
    check = featurize(with_next([base], "Wait, let me verify: 96 / 3 = 32. Yes.", StepType.VERIFICATION)[0])
    more = featurize(with_next([base], "Next, the tax on 32 is 4.", StepType.FORMULA_SUBSTITUTION)[0])
    assert check != more and set(check) - set(featurize(base))
    assert with_next([], "text", StepType.VERIFICATION) == []


def test_the_following_step_moves_the_score():
    from tracestop.answers.scorer import with_next

    s = AnswerScorer()
    x0 = x("So each person pays 32 dollars.", "32", StepType.FORMULA_SUBSTITUTION)
    checked = s.score(with_next([x0], "Wait, let me double-check: 12 + 43 + 15 + 4 + 22 = 96, "
                                      "and 96 / 3 = 32. Yes, that's right.", StepType.VERIFICATION)[0])
    went_on = s.score(with_next([x0], "Then we need to add the tip of 15% on 32, which is 4.8.",
                                StepType.FORMULA_SUBSTITUTION)[0])
    assert checked > went_on


class _Fixed:
    """A stand-in answer scorer: every value scores ``p``; it records what it was asked."""

    def __init__(self, p: float) -> None:
        self.p = p
        self.seen: list[ScorerInput] = []

    def score(self, x: ScorerInput) -> float:
        self.seen.append(x)
        return self.p


def test_prose_values_are_judged_one_step_late():
    m = Monitor("none", tagger=PrefixTagger(), question="How much does each pay?")
    fake = _Fixed(0.9)
    m.reader._scorer = fake  # type: ignore[assignment]
    m.feed("[formula_substitution]\nSo each person pays 32 dollars here.\n\n"
           "[verification]\nWait, let me verify that 96 / 3 is 32 indeed.\n\n"
           "[formula_substitution]\nNow the tip adds 7 more on top of that.\n\n")
    r = m.records
    assert r[0].tagged.candidate is None and r[0].answer.current is None
    c = r[1].tagged.candidate
    # step 0's value becomes a candidate once step 1 is known, credited to step 0
    assert c is not None and (c.value, c.step, c.confidence) == ("32", 0, 0.9)
    assert r[1].answer.current == "32" and r[1].answer.since == 0
    assert fake.seen[0].next_text.startswith("[verification]") and fake.seen[0].next_type is StepType.VERIFICATION
    # the report shows it on the step that states it
    assert [s["candidate"] for s in m.report()["steps"]] == ["32", None]
    m.end()  # the last step's value is judged with nothing after it
    assert fake.seen[-1].next_text == "" and fake.seen[-1].next_type is None
    assert m.answer.current == "7"
    # no decision is taken on the last step: its record shows what it stated
    last = m.records[-1]
    assert last.tagged.candidate.step == last.index == 2 and last.answer.current == "7"
    assert last.tokens_cum == m.records[-2].tokens_cum + last.tagged.tokens


def test_values_below_the_threshold_stay_out():
    m = Monitor("none", tagger=PrefixTagger())
    m.reader._scorer = _Fixed(0.2)  # type: ignore[assignment]
    m.feed("[formula_substitution]\nSo each person pays 32 dollars here.\n\n[verification]\nYes, that holds.\n\n")
    m.end()
    assert all(r.tagged.candidate is None for r in m.records) and m.answer.current is None


def test_question_unit_names_the_unit_asked_for():
    from tracestop.answers.question import question_unit

    assert question_unit("Each guest pays $25. How many guests make both venues cost the same?") == "guest"
    assert question_unit("She earns $8 an hour. How many more hours must she work?") == "hour"
    assert question_unit("Pens cost $2. How much money did Theo spend?") == "$"
    assert question_unit("How many dollars are left?") == "$"
    assert question_unit("What percent of the class passed?") == "%"
    assert question_unit("Find the value of x.") == ""
    assert question_unit("") == ""


def test_value_unit_reads_the_unit_a_value_is_given():
    from tracestop.answers.scorer import value_unit

    assert value_unit("Yep, so at 10 guests, both venues cost $250.", "250") == "$"
    assert value_unit("Yep, so at 10 guests, both venues cost $250.", "10") == "guest"
    assert value_unit("The total is 1,245 dollars.", "1245") == "$"
    assert value_unit("That leaves 45 more apples.", "45") == "apple"
    assert value_unit("So 3 of 4 is 75%.", "75") == "%"
    assert value_unit("So the answer is 12.", "12") == ""
    assert value_unit("So the answer is 12.", "7") == ""


def test_a_value_in_another_unit_than_asked_scores_lower():
    from dataclasses import replace

    from tracestop.answers.question import question_unit

    unit = question_unit("A venue charges $200 plus $5 per guest. How many guests make both cost the same?")
    s = AnswerScorer()
    cost = replace(x("So both venues cost $250 for that many.", "250"), ask_unit=unit)
    guests = replace(x("So both venues cost the same for 250 guests.", "250"), ask_unit=unit)
    assert s.score(guests) > s.score(cost)
    # without a unit asked for, the unit feature is silent
    assert featurize(replace(cost, ask_unit="")) == featurize(x("So both venues cost $250 for that many.", "250"))


def test_the_monitor_scores_values_against_the_unit_its_question_asks_for():
    from tracestop import Monitor

    trace = ("<think>\nThe first venue charges 200 dollars plus 5 dollars per guest, the second 25 "
             "dollars per guest.\n\nSetting 200 + 5g = 25g gives 20g = 200, so g = 10.\n\n"
             "So at 10 guests, both venues cost $250.\n\n"
             "Wait, let me double-check: 200 + 5 * 10 = 250 and 25 * 10 = 250. Yes.\n\n"
             "That settles it.\n</think>\n\nThe answer is 10.")
    sure = {}
    for asks, q in (("guests", "How many guests make the two venues equal in cost?"),
                    ("money", "How much money does the party cost where both venues cost the same?")):
        m = Monitor("none", question=q)
        m.feed(trace)
        m.end()
        assert m.answer.current == "250"
        sure[asks] = m.answer.confidence
    # "$250" answers a question about money better than one about a number of guests
    assert sure["guests"] < sure["money"]


def test_features_are_named_in_weights_file_order():
    from tracestop.answers.scorer import FEATURES, N_HASH

    names = [n for n, _ in FEATURES]
    assert len(set(names)) == len(names) and N_HASH + len(names) == N_FEATURES
    assert len(AnswerScorer()._coef) == N_FEATURES
    x = ScorerInput("So the answer is 42.", "42", StepType.FINAL_CONCLUSION, 0, True, True, 0,
                    frozenset({"42"}))
    dense = {names[i - N_HASH] for i in featurize(x) if i >= N_HASH}
    assert dense == {"type=final_conclusion", "in_question", "last_sentence", "log_index", "cue",
                     "log_mentions", "integer", "bias"}


def test_last_ask_is_the_regexs_last_match():
    import random

    from tracestop.answers.question import _ASK, _last_ask

    rng = random.Random(0)
    pieces = ["?", ".", "!", " ", "a", "How many", "\n", "??", "3.5", "x", "?!", ".?"]
    texts = ["", "?", "no question", "Why? Because.", "a.b?c!d?", "What is 12-5?", "How many?? Two.", "x" * 3000,
             *("".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(3000))]
    for text in texts:
        asks = _ASK.findall(text)
        assert _last_ask(text) == (asks[-1] if asks else None), text

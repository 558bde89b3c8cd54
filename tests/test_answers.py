from __future__ import annotations

import pytest

from tracestop._types import Candidate
from tracestop.answers import (
    AnswerTracker,
    equivalent,
    extract_candidate,
    extract_candidates,
    infer_format,
    normalize,
)


@pytest.mark.parametrize(
    "text,fmt,expected",
    [
        # boxed answers, nested braces
        pytest.param(r"So it is \boxed{42}.", "math", ("42", "boxed"), id="boxed"),
        pytest.param(r"\boxed{\frac{1}{2}} done", "math", (r"\frac{1}{2}", "boxed"), id="boxed-nested"),
        pytest.param(r"\boxed{\left( 3, \frac{\pi}{2} \right)}", "math",
                     (r"\left( 3, \frac{\pi}{2} \right)", "boxed"), id="boxed-tuple"),
        pytest.param(r"first \boxed{1} then \boxed{2}", "math", ("2", "boxed"), id="last-boxed-wins"),
        # stated answers
        pytest.param("So the answer is 18.", "math", ("18", "answer-is"), id="answer-is"),
        pytest.param("Therefore, the final answer is $3,000$.", "math", ("3000", "answer-is"), id="thousands"),
        pytest.param("**Final Answer**\nThe total is 540 meters.", "math", ("540", "final-answer"), id="final-answer-header"),
        pytest.param("Therefore, Susan earns $75 for the task.", "math", ("75", "conclusion"), id="conclusion"),
        # multiple choice
        pytest.param("So the answer is (B).", "choice", ("B", "answer-is"), id="choice-answer-is"),
        pytest.param("Answer: C", "choice", ("C", "answer-is"), id="choice-colon"),
        pytest.param("Therefore, I will go with F.", "choice", ("F", "conclusion"), id="choice-go-with"),
        pytest.param("Option H is the strongest principle.", "choice", ("H", "conclusion"), id="choice-option-is-best"),
        pytest.param(r"\boxed{D}", "choice", ("D", "boxed"), id="choice-boxed"),
        # yes / no
        pytest.param("So, the answer is no, mercury is not denser.", "yesno", ("NO", "answer-is"), id="yesno-answer-is"),
        pytest.param("Final: YES", "yesno", ("YES", "final-answer"), id="yesno-caps"),
    ],
)
def test_extract(text, fmt, expected):
    assert extract_candidate(text, fmt) == expected


@pytest.mark.parametrize(
    "text,fmt",
    [
        pytest.param("Let me think about this problem.", "math", id="no-answer"),
        pytest.param("Option B: more creative and better at decisions.", "choice", id="option-listed-not-chosen"),
        pytest.param("yes, that seems right", "yesno", id="lowercase-yes-is-not-an-answer"),
        pytest.param("So, is the answer 12? Let me check.", "math", id="question-is-not-a-statement"),
    ],
)
def test_no_candidate(text, fmt):
    assert extract_candidate(text, fmt) is None


def test_strong_kinds_beat_conclusions():
    text = r"Therefore x is 5. So the answer is \boxed{6}."
    assert extract_candidate(text) == ("6", "boxed")
    assert [k for _, k in extract_candidates(text)] == ["boxed"]


@pytest.mark.parametrize(
    "question,bench,fmt",
    [
        ("What is 2+2?", "gsm8k", "math"),
        ("Which is it?", "gpqa-diamond", "choice"),
        ("Is F-14 Tomcat faster than Eurofighter Typhoon?", "chainscope-iphr", "yesno"),
        ("Is the Nile longer than the Amazon?", None, "yesno"),
        ("Pick one:\nA) 1\nB) 2\nC) 3\nD) 4", None, "choice"),
        ("Find x if $x^2=4$.", None, "math"),
        # the recorded chainscope prompts (dev): a topic line, model numbers, abbreviations
        ("about books:\n\nIs Stephen King's The Bachman Books longer than Christopher Paolini's Eldest?",
         None, "yesno"),
        ("Is Boeing 737-800 slower than Airbus A380?", None, "yesno"),
        ("Did the Wright Flyer make its first flight after the Spirit of St. Louis?", None, "yesno"),
        ("Is X longer than Y? Answer yes or no.", None, "yesno"),
        # a word problem opening with a name is not a yes/no question; arithmetic is math
        ("Will buys 15 oranges. When he gets home, his sons wash 8. How many are left?", None, "math"),
        ("Is 2 - 1 = 1?", None, "math"),
        ("Does 2+2 equal 4?", None, "math"),
    ],
)
def test_infer_format(question, bench, fmt):
    assert infer_format(question, bench) == fmt


@pytest.mark.parametrize(
    "gold,pred,same",
    [
        ("18", "18", True),
        ("3000", "3,000", True),
        (r"\frac{13}{18}", "13/18", True),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})", True),
        ("145^\\circ", "145", True),
        ("0.5", r"\frac{1}{2}", True),
        ("18", "19", False),
        (r"\frac{13}{18}", r"\frac{13}{19}", False),
        # unicode math as models write it in prose
        (r"\sqrt{51}", "√51", True),
        (r"3\sqrt{13}", "3√13", True),
        (r"\frac{\sqrt{3}}{2}", "√3/2", True),
        (r"\sqrt{x+1}", "√(x+1)", True),
        (r"18+2\pi", "18 + 2π", True),
        ("-5", "−5", True),
        (r"\frac{1}{2}", "½", True),
        (r"\sqrt{52}", "√51", False),
        ("5", "√5", False),
    ],
)
def test_equivalent_math(gold, pred, same):
    assert equivalent(gold, pred, "math") is same


def test_equivalent_letters_and_yesno():
    assert equivalent("B", "(b)", "choice")
    assert not equivalent("B", "C", "choice")
    assert equivalent("NO", "no", "yesno")


def test_equivalent_off_main_thread():
    """Math-Verify's signal timeouts fail off the main thread; equivalence must not."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:
        assert ex.submit(equivalent, r"\frac{1}{3}", "0.3333333333333333", "math").result() in (True, False)
        assert ex.submit(equivalent, r"\sqrt{4}", "2", "math").result() is True


def test_normalize():
    assert normalize(r"\dfrac{1}{2}") == normalize(r"\frac{1}{2}")
    assert normalize("x = 5") == "5"
    assert normalize(r"\$1,000") == "1000"


def test_tracker_counts_restatements_and_changes():
    t = AnswerTracker("math")
    assert t.update(0, None).current is None
    s = t.update(1, Candidate("7", "answer-is", 1))
    assert (s.current, s.since, s.first_step, s.count) == ("7", 1, 1, 1)
    s = t.update(3, Candidate("7.0", "conclusion", 3))
    assert (s.current, s.since, s.count, s.changes) == ("7", 1, 2, 0)
    s = t.update(4, Candidate("8", "boxed", 4))
    assert (s.current, s.since, s.first_step, s.count, s.changes) == ("8", 4, 1, 1, 1)


def test_options_named_by_content():
    from tracestop.answers import option_texts

    q = "Which is best?\n\nA. 4.5% treasury bond\nB. 3.5% municipal bond\nC. cs\nD. c3\nJ. 4% municipal bond"
    opts = option_texts(q)
    assert opts["J"] == "4% municipal bond" and opts["C"] == "cs"
    assert extract_candidate("The answer is 4% municipal bond.", "choice", opts) == ("J", "conclusion")
    assert extract_candidate("So, *Cs* is the most plausible answer.", "choice", opts) == ("C", "conclusion")
    assert extract_candidate("Option B: 3.5% municipal bond looks weak.", "choice", opts) is None
    inline = option_texts("Pick: A) 5% certificate of deposit B) 5% government bond C) 5% corporate bond")
    assert inline["B"] == "5% government bond"


@pytest.mark.parametrize("text, letter", [
    ("Okay, I'm leaning towards A. Let's look at the options one more time.", "A"),
    ("Looking at most legal exams, Choice F is the more standard answer.", "F"),
    ("So option C remains the most likely one.", "C"),
    ("F is the only one left.", "F"),
    ("H seems like the most professional and theoretically sound archaeological answer.", "H"),
    ("So (C) is the best answer here.", "C"),
    ("F. not prevail, because she matched the description. (Yes)\nG. prevail (No)", "F"),
    ("*   G: No\n*   H: Yes, establishing associations is fundamental.\n*   I: No", "H"),
    ("E. No grounds - Incorrect.\nF. Matched description - Correct reason why she loses.", "F"),
])
def test_choice_leanings_are_candidates(text, letter):
    assert extract_candidate(text, "choice") == (letter, "conclusion")


def test_choice_rejections_are_not_candidates():
    assert extract_candidate("Option B is wrong, the force was not needed.", "choice") is None
    assert extract_candidate("A is wrong (force). C is wrong (consent to search).", "choice") is None
    assert extract_candidate("A. No physical force - Not a requirement.\nB. Falsely accused (No)", "choice") is None
    assert extract_candidate("A is a good start, but I is the question.", "choice") is None


@pytest.mark.parametrize(
    "text,value",
    [
        ("So, 550 divided by 4 is 137.5, which is 137 and 1/2.", "137\\frac{1}{2}"),
        ("So, the trip takes 3 1/2 hours.", "3\\frac{1}{2}"),
        ("Therefore the answer is 2 3/4.", "2\\frac{3}{4}"),
        ("So, the ratio is 5/3 and 7/4.", "7/4"),  # not a mixed number: 7 > 4 is improper
        ("So, the values are 12, 3/4.", "12, 3/4"),
    ],
)
def test_mixed_numbers_are_read_whole(text, value):
    assert extract_candidate(text) == (value, "answer-is" if "answer is" in text else "conclusion")


@pytest.mark.parametrize(
    "text,value",
    [
        ("Therefore, the original sum is congruent to 3 modulo 9.", "3"),
        ("So x ≡ 5 (mod 11).", "5"),
        ("So $x \\equiv 5 \\pmod{11}$.", "5"),
        ("So the remainder is 4 mod 7.", "4"),
        ("So 2^10 mod 7 = 2.", "2"),
    ],
)
def test_a_modulus_or_a_label_is_not_the_value_stated(text, value):
    assert extract_candidate(text) == (value, "conclusion")
    assert extract_candidate("So, next I need to find N modulo 1000.") is None
    # nor is a label
    assert extract_candidate("So, after step 3, the function is even.") is None
    assert extract_candidate("So I got that as equation (1).") is None
    assert extract_candidate("So it takes 4 steps.") == ("4", "conclusion")


@pytest.mark.parametrize(
    "text",
    [
        # a dev AIME trace (R1-Qwen-7B) stated this four times and was stopped on "1 ton}(2 + E[I_i])"
        "Therefore, E(k)=4 + sum_{i=1 ton}(2 + E[I_i]).",
        "Therefore, the number of regions is 4 + sum_{i=1 to25}(1 + E[I_i]).",
        "So the total is \\sum_{k=1}^{n} k^2.",
    ],
)
def test_an_equals_sign_inside_a_brace_group_states_no_value(text):
    assert extract_candidate(text) is None
    assert extract_candidate("So $\\sum_{i=1}^{10} i = 55$.") == ("55", "conclusion")
    assert extract_candidate("So a_{n=3} = 5.") == ("5", "conclusion")


def test_adjacent_boxed_values_are_one_answer():
    assert extract_candidates("The integers are \\boxed{-2} and \\boxed{1}.") == [("-2, 1", "boxed")]
    assert extract_candidates("So, the final answer is \\boxed{-2}, \\boxed{1}.") == [("-2, 1", "boxed")]
    # boxed values apart in the text stay separate statements
    assert extract_candidates("First \\boxed{3}. Then we get \\boxed{4}.") == [("3", "boxed"), ("4", "boxed")]
    assert equivalent("1,-2", "-2, 1") and equivalent("137.5", "137\\frac{1}{2}")


def test_the_answer_reader_owns_the_candidate_state():
    from tracestop._types import Step, StepType
    from tracestop.answers import AnswerReader

    r = AnswerReader("What is 6 times 7?", "math", candidates="never")
    s0 = Step(0, "Six times seven: the answer is 42.", 0, 34)
    assert r.states_answer(s0)
    got = r.observe(s0, StepType.FINAL_CONCLUSION)
    assert got.candidate is not None and got.candidate.value == "42" and got.answer.current == "42"
    s1 = Step(1, "Let me double-check the multiplication once more.", 36, 86)
    assert not r.states_answer(s1)
    assert r.observe(s1, StepType.VERIFICATION).candidate is None
    assert r.state.current == "42" and r.finish().candidate is None


def test_reader_options_are_validated():
    import pytest

    from tracestop.answers import AnswerReader
    from tracestop.errors import ConfigError
    from tracestop.monitor import MonitorConfig

    with pytest.raises(ConfigError, match="candidates"):
        AnswerReader(candidates="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="answer_threshold"):
        MonitorConfig(answer_threshold=1.5)

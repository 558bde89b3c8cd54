"""The equivalence fast path decides only what Math-Verify would decide the same way."""

from __future__ import annotations

import pytest

from tracestop.answers import equivalence
from tracestop.answers.equivalence import _fast_verdict, equivalent

# (gold, pred, what the fast path says (None: left to Math-Verify), what ``equivalent`` says)
PAIRS = [
    ("0.1", "1/10", True, True),
    ("0.1", r"\frac{1}{10}", True, True),
    ("0.333", "1/3", None, False),  # near a fraction: Math-Verify rounds, so it decides
    ("0.3333333", "1/3", None, True),  # rounded to 6 places, the same
    ("0.1234564", "0.1234565", None, True),
    ("-0", "0", True, True),
    ("-0.0", "0", True, True),
    ("1e3", "1000", None, False),  # ``e`` is Euler's number for Math-Verify
    ("1,000", "1000", None, True),  # a comma is no simple number (the normal form joins them)
    ("007", "7", None, True),
    ("75", "75.00", True, True),
    ("1/2", r"\dfrac{1}{2}", True, True),
    ("1/2", "2/4", True, True),
    (r"-\frac{1}{2}", "-0.5", True, True),
    ("0.00125", "1250", False, False),
    ("9", "1/5", False, False),
    ("120", "470.4", False, False),
    ("5", r"\frac{5}{9}", False, False),
    ("7", "B", False, False),
    ("x", "3", False, False),
    ("7", "e", None, False),  # e and i are constants, not letters: left to Math-Verify
    ("2.718282", "e", None, True),
    ("7", "i", None, False),
    ("1/0", "5", None, False),
    ("1234567890123", "1234567890123.0", None, True),  # past 12 digits: left to Math-Verify
    ("4 - 2i", "6 - 5i", False, False),  # two a + bi with different parts
    ("4 - 2i", "4 - 2 i", None, True),
    ("6 - 5i", "5", False, False),  # a non-real a + bi is no number
    ("4 + 0i", "4", None, True),
    ("3", r"(-\sqrt{3}, \sqrt{3})", False, False),  # a pair or interval symmetric about 0
    ("[-2, 2]", "2", False, False),
    ("0", "[-0, 0]", None, True),  # an interval of one point: left to Math-Verify
    ("(-1,6)", "6", False, False),  # a pair or interval of different numbers
    ("1500", "(1,500)", False, False),  # Math-Verify reads the open interval (1, 500)
    ("1", "(1, 2, 3)", False, False),
    ("3", "[3, 3]", None, True),  # the one point {3}
    ("1000000", "(1,000,000)", None, False),  # 000 is no simple number: left to Math-Verify
    ("29", "[0, 29, 29/3]", False, False),
    ("29", "(0, 29, 29/3]", None, True),  # Math-Verify reads one number out of "(a, b, c]"
    # a number against a polynomial or rational expression that is not constant
    ("2", "20 - (x2 +26/x2 )", False, False),
    ("20 - (x2 +26/x2 )", "2", False, False),
    ("2", "2x", False, False),
    ("0.5", "x^2 - 1", False, False),
    (r"\frac{3}{4}", "(x+1)(x-1)/y", False, False),
    ("2", "x - x + 2", None, True),  # constant in disguise: left to Math-Verify
    ("2", "x/x*2", None, True),
    ("0", "x2 - 2x", None, True),  # latex2sympy reads x2 as x*2
    ("2", "2^x", None, False),  # an exponent it does not read
    ("2", "x=2", None, True),  # a relation: Math-Verify takes its right side
    ("2", "k=2", None, True),
    ("2", "x \\le 2", None, False),
    ("2", "2c", None, True),  # c is a unit for Math-Verify: 2c reads as 2
    ("2", "f(x)", None, False),  # a function
    ("52", "26(26)", None, True),  # latex2sympy adds a bracketed number: not a product
    ("-14", "-7(7)x", None, False),
    ("2", "X - x + 2", None, True),  # upper case reads as lower case
]


@pytest.mark.parametrize("gold,pred,fast,same", PAIRS)
def test_fast_path_agrees_with_math_verify(gold: str, pred: str, fast: bool | None, same: bool) -> None:
    assert _fast_verdict(gold, pred) is fast
    assert equivalent(gold, pred, "math") is same
    if fast is not None:  # what it decides is what Math-Verify decides
        assert equivalence._verify(gold, pred, True) is fast


def test_expression_reader_work_is_bounded() -> None:
    import time

    from tracestop.answers.equivalence import _nonconstant

    t0 = time.process_time()
    assert _nonconstant("((x^9)^9)^9 + 1")
    assert not _nonconstant("(((((((x^9)^9)^9)^9)^9)^9)^9)^9")  # refused: not evaluated
    assert not _nonconstant("x + " * 30 + "x")  # past 80 characters
    assert time.process_time() - t0 < 0.5


def test_fast_path_skips_math_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    def verify(gold: str, pred: str, main: bool) -> bool:
        asked.append((gold, pred))
        return False

    monkeypatch.setattr(equivalence, "_verify", verify)
    equivalence._equivalent_math.cache_clear()
    try:
        assert equivalent("3/4", r"\frac{6}{8}")
        assert not equivalent("12", "12.5")
        assert not equivalent("0.333", "1/3")  # asked
    finally:
        equivalence._equivalent_math.cache_clear()
    assert asked == [("0.333", "1/3")]


_FRAGMENTS = [
    "answer", "Answer", "ANſWER", "optİon", "OPTıON", "choice", "option", "it", " is ", " seems ", " remains ",
    " the ", " my ", " best ", " correct ", " most likely ", " candidate", ".", "\n", ";", ":", ",", "(", ")",
    " fits all", " fits the data", " matches all", " is the most likely", " is a better fit", " is the closest one",
    "everything", " all the data", "it all", " matches ", " making ", " fits ", " better", "x", "  ", "\t", "K",
    " would be ", " has to be ", " consistent with ", " points to ", "A", "(C)", "**D**", "J", "go with", "ſelect",
    "leaning towards", "conclusion", "only", "right", "yes", "YES", "(yes)", "(correct)", " - ", "—", "stick with",
    "let's go with", "settle on", "confident in", "more likely", "intended answer", "standard way", "best fit",
    "F.", "H:", "*", "==>", "\\boxed{A}", "Ethyl 4-aminobenzoate",
]


def _fuzz_texts(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(_FRAGMENTS) + rng.choice(["", " "]) for _ in range(rng.randint(1, 30)))
            for _ in range(n)]


def test_span_first_finds_what_finditer_finds() -> None:
    from tracestop.answers import extract as x

    texts = [*_fuzz_texts(3000), "The answer is 4% municipal bond. Ethyl 4-aminobenzoate fits all the data.",
             "I think Perot is the best answer; everything matches Perot", "a" * 500 + " is the best option",
             ("b" * 70 + " is the best answer") * 30, "It all fits the data, " * 30, "x is the best answer " * 30]
    for text in texts:
        for pattern, fast in ((x._NAMED_CHOICE, x._NAMED_CHOICE_FAST), (x._NAMED_ENDORSE, x._NAMED_ENDORSE_FAST)):
            assert [(m.span(), m.groups()) for m in fast.finditer(text)] == \
                [(m.span(), m.groups()) for m in pattern.finditer(text)], text


def test_choice_patterns_skipped_only_where_they_cannot_match() -> None:
    from tracestop.answers import extract as x

    for text in _fuzz_texts(3000, seed=1):
        low = x._folded(text)
        for (_, pattern), (needs, blind) in zip(x._CHOICE_PATTERNS, x._CHOICE_NEEDS, strict=True):
            if needs is not None and not any(w in (low if blind else text) for w in needs):
                assert pattern.search(text) is None, (pattern.pattern, text)

"""The states-answer head (tracestop.tag.states): it loads, reads the obvious cases as a user
would meet them through the Monitor, leaves the policies' answer tracking alone, and its
honest cross-validation (tracestop.lab.honest.states_cv) runs and learns on a tiny set."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tracestop.lab.honest import (
    StatesRow,
    fit_states,
    save_states,
    states_cause,
    states_cv,
    states_errors,
)
from tracestop.monitor import Monitor
from tracestop.tag.states import (
    DEFAULT_STATES_WEIGHTS,
    StatesContext,
    StatesHead,
    StatesWeights,
    features,
)

OPTIONS = ["Roosevelt", "Taft", "Wilson", "Debs", "La Follette", "Wallace", "Thurmond", "Perot",
           "Anderson", "Nader"]
CHOICE_Q = ("Which third-party candidate's campaign echoed the Populists' critique of the two "
            "parties?\n" + "\n".join(f"{k}. {t}" for k, t in zip("ABCDEFGHIJ", OPTIONS,
                                                                    strict=True)))


def test_shipped_weights_load() -> None:
    w = StatesWeights.load(DEFAULT_STATES_WEIGHTS)
    assert len(w.vocab) == len(w.coef) > 1000
    assert "bias" in w.vocab and "r:strong" in w.vocab
    assert 0.1 < w.threshold < 0.9
    assert DEFAULT_STATES_WEIGHTS.stat().st_size < 512 * 1024  # small, committed


def test_math_answer_flagged_computation_not() -> None:
    m = Monitor("none", question="What is the product of 6 and 7?", answer_format="math")
    m.feed("<think>Let me compute 6 times 7 by repeated addition.\n\n"
           "6 + 6 = 12, 12 + 6 = 18, 18 + 6 = 24, 24 + 6 = 30, 30 + 6 = 36, 36 + 6 = 42.\n\n"
           "So the answer is 42.\n\n</think>42")
    m.end()
    assert [v.flag for v in m.states] == [False, False, True]
    assert m.states[2].p > 0.9
    assert m.states[1].p < 0.1
    steps = m.report()["steps"]
    assert [s["states_answer"] for s in steps] == [False, False, True]
    assert "answer" in steps[2]["states_evidence"]


def test_gemma_choice_answers_flagged() -> None:
    m = Monitor("none", question=CHOICE_Q, answer_format="choice")
    m.feed("<think>Let me think about each candidate and what their campaign said.\n\n"
           "Roosevelt ran as a Progressive in 1912, focused on trusts and reform.\n\n"
           "H seems like the most plausible, since Perot attacked both parties.\n\n"
           "</think>H")
    m.end()
    assert [v.flag for v in m.states] == [False, False, True]


def test_head_alone_reads_the_words() -> None:
    """Without the reader's help (no explicit statement, no candidate): the words decide."""
    head = StatesHead()
    opts = {k: t.lower() for k, t in zip("ABCDEFGHIJ", OPTIONS, strict=True)}
    ctx = StatesContext(index=30, answer_format="choice", options=opts)
    plain = StatesContext(index=30, answer_format="math", numbers=frozenset({"6", "7"}))
    yes = head.probability("Therefore, the final answer is 42.", plain)
    no = head.probability("Next, multiply both sides by 3 to get 3x + 6 = 21.", plain)
    assert yes > 0.5 > no
    assert head.probability("So the answer must be H.", ctx) > head.probability(
        "Let me look at option H again.", ctx)


def test_monitor_head_does_not_touch_candidates() -> None:
    """The head only reports: the candidates (what policies read) are the reader's."""
    text = ("<think>Let me compute 6 times 7.\n\n6 * 7 = 42, I think.\n\n"
            "So the answer is 42.\n\n</think>42")
    a = Monitor("none", question="What is 6 times 7?", answer_format="math")
    b = Monitor("none", question="What is 6 times 7?", answer_format="math")
    b.states_head = StatesHead(StatesWeights({"bias": 0}, np.array([30.0]), 0.0, 0.5, ("bias",)))
    for m in (a, b):
        m.feed(text)
        m.end()
    assert all(v.flag for v in b.states)
    assert [r.tagged.candidate for r in a.records] == [r.tagged.candidate for r in b.records]
    assert [r.answer for r in a.records] == [r.answer for r in b.records]


def _toy_rows() -> list[StatesRow]:
    rows: list[StatesRow] = []
    for k in range(12):
        tid = f"x:model-{k % 3}:bench:{k}"
        for i in range(6):
            gold = i in (3, 5)
            text = (f"So the answer is {k + 40}." if gold else
                    f"Compute {k} plus {i}: that gives {k + i}, then carry on.")
            rows.append((tid, text, StatesContext(index=i), gold, False))
    return rows


def test_states_cv_runs_and_learns_on_a_tiny_set() -> None:
    rows = _toy_rows()
    report = states_cv(None, None, "problem", folds=3, rows=rows)
    assert len(report["folds"]) == 3 and report["n_steps"] == len(rows)
    overall = report["rows"]["all"]
    assert overall["support"] == 24
    assert overall["head"]["f1"] > 0.9
    assert overall["tracker"]["f1"] == 0.0  # the toy tracker never fires
    assert overall["or"]["recall"] >= overall["head"]["recall"]


def test_states_errors_group_by_cause() -> None:
    """The error table counts each out-of-fold error once under its format, kind and cause,
    and shows the asked number of examples with the step and p."""
    rows = _toy_rows()
    # two steps that read like an answer but are not, two answers put as questions
    rows[1] = (rows[1][0], "So the answer is 99.", rows[1][2], False, False)
    rows[9] = (rows[9][0], "Is the answer 51?", rows[9][2], True, False)
    text = states_errors(None, None, "problem", folds=3, examples=1, rows=rows)
    table = [ln for ln in text.splitlines() if ln.startswith("| math |")]
    assert sum(int(ln.split("|")[4]) for ln in table) >= 1
    assert "| math | false flag | a decisive candidate (so, must be) |" in text
    assert text.count("\n  step: ") == len({ln.split("|")[2] for ln in table})
    assert states_cause("Is it 51?", StatesContext()) == "a candidate in a question"
    assert states_cause("Let me think.", StatesContext()) == "no candidate in the step's tail"


def test_fit_and_save_round_trip(tmp_path: Path) -> None:
    w = fit_states(_toy_rows(), inner_folds=3, min_count=2)
    a = save_states(tmp_path / "a.npz", w)
    b = save_states(tmp_path / "b.npz", w)
    assert a.read_bytes() == b.read_bytes()  # deterministic file
    back = StatesWeights.load(a)
    assert back.vocab == w.vocab and back.threshold == pytest.approx(w.threshold)
    ctx = StatesContext(index=3)
    assert StatesHead(back).read("So the answer is 47.", ctx).flag
    assert not StatesHead(back).read("Compute 7 plus 1: that gives 8.", ctx).flag


def test_features_use_no_gold() -> None:
    """The features are a function of the run-time context only (no flag field exists)."""
    assert "states_answer" not in StatesContext.__dataclass_fields__
    f = features("So the answer is 42.", StatesContext(strong=True, stated="answer-is"))
    assert "r:strong" in f and "r:stated=answer-is" in f and "r:none_yet" in f


GPQA_OPTS = {"A": "cs", "B": "c3", "C": "c2h", "D": "d2h"}
CHOICE_CTX = StatesContext(index=12, answer_format="choice",
                           options={k: t.lower() for k, t in zip("ABCDEFGHIJ", OPTIONS,
                                                                 strict=True)})


def test_choice_features_read_the_last_sentence() -> None:
    """A decisive option letter, an option named by its own words or by its symbol, and an
    elimination each show in the features, as the same format-free names across formats."""
    f = set(features("Let me go through them again.\nF is the only one left.", CHOICE_CTX))
    assert {"c:letter_last", "u:cand_last", "u:cand_decisive_last", "cr:is"} <= f
    elim = set(features("Roosevelt was a Progressive. So not B, Taft was the incumbent.",
                        CHOICE_CTX))
    assert "u:cand_negative_last" in elim
    words = set(features("Wait, Perot fits much better here.", CHOICE_CTX))
    assert "c:words_last" in words and "c:letter_last" not in words
    sym = set(features("So the symmetry group is $C_s$.",
                       StatesContext(answer_format="choice", options=GPQA_OPTS)))
    assert "c:words_last" in sym and "c:letter_last" not in sym  # C_s is option A, not C
    math = set(features("So x = 17.", StatesContext(answer_format="math")))
    assert {"m:last_new_number", "u:cand_last", "u:cand_decisive_last"} <= math


def test_option_verdict_list() -> None:
    text = ("A: Roosevelt - No.\nB: Taft - No.\nC: Wilson - No.\nH: Perot - Yes, he attacked "
            "both parties.\nI: Anderson - No.")
    f = set(features(text, CHOICE_CTX))
    assert {"c:list_one_pos", "c:list_neg"} <= f


LAW_OPTS = {"A": "contingent remainder pur autre vie.", "B": "vested remainder absolute.",
            "D": "shifting executory interest pur autre vie.",
            "G": "contingent executory interest pur autre vie.",
            "I": "vested executory interest pur autre vie."}


def test_option_named_by_a_phrase_of_its_own() -> None:
    """"contingent executory" is in option G only, though each word is in several options:
    the step names G by its words; words in no option, or in several, name none."""
    ctx = StatesContext(index=16, answer_format="choice", options=LAW_OPTS)
    f = set(features("Since the uncle might move, it's a contingent executory interest.", ctx))
    assert {"c:phrase_last", "c:words_last", "u:cand_last"} <= f
    g = set(features("Since the uncle might move, it's an executory interest.", ctx))
    assert not {"c:phrase_last", "c:words_last"} & g


def test_option_words_fold_to_one_token() -> None:
    """An option's own words are read as ``<W>`` (what a step says about an option carries to
    a question never seen), a run of them as one; cue words stay themselves even when one
    option holds them."""
    ctx = replace(CHOICE_CTX, options={**CHOICE_CTX.options, "J": "nader likely"})
    f = set(features("So Perot must be it. Nader likely not.", ctx))
    assert {"tt:so_<W>", "tt:<W>_must", "tt:<W>_likely", "l:<W>"} <= f
    assert not any("perot" in n or "nader" in n for n in f)
    two = set(features("It is La Follette Perot.", ctx))
    assert "tt:is_la" in two and "tt:la_<W>" in two and "tt:<W>_<W>" not in two


def test_last_sentence_cues_with_a_candidate() -> None:
    """A source's answer, a supposition and a check are named, and with a candidate in the
    last sentence also as ``u:cand_*``; a candidate is the current one or another."""
    src = set(features("I found a source: it says the answer was H.",
                       replace(CHOICE_CTX, current="B")))
    assert {"u:source_last", "u:cand_source_last", "u:cand_other"} <= src
    hyp = set(features("If the rate were 5%, the total would be 140.",
                       StatesContext(answer_format="math", current="140")))
    assert {"u:if_last", "u:cand_if_last", "u:cand_current"} <= hyp
    chk = set(features("Let me check again: 7 * 6 = 42.", StatesContext()))
    assert "u:check_last" in chk and "u:cand_current" not in chk  # no candidate yet


def test_candidate_sentence_before_the_last() -> None:
    """When the last sentence names no candidate but an earlier one of the tail does, that
    sentence's cues are read (``k:``): "Maybe the answer is B? Let's think." is a candidate in
    a hedged question, "So the answer is B. Let me go on." a decisive one near the end."""
    f = set(features("Maybe the answer is B (2.4)? Let's think.", CHOICE_CTX))
    assert "u:cand_last" not in f and "u:cand_tail" in f
    assert {"k:cand", "k:hedge", "k:question", "k:near_end"} <= f
    g = set(features("So the answer is 42. Let me go on.", StatesContext()))
    assert {"k:cand", "k:decisive", "k:near_end"} <= g and "k:hedge" not in g
    # a candidate in the last sentence: no ``k:``; an old number (the question's): none either
    assert not any(n.startswith("k:") for n in features("So the answer is 42.", StatesContext()))
    old = StatesContext(numbers=frozenset({"6"}))
    assert not any(n.startswith("k:") for n in features("Take 6 first. Then go on.", old))


def test_endorsed_candidate() -> None:
    """Gemma's endorsements ("A is the closest", "I'm confident it's H") are cues of the last
    sentence, and with a candidate in it ``u:cand_endorse_last``."""
    f = set(features("But among all the options, A is the closest.", CHOICE_CTX))
    assert {"u:endorse_last", "u:cand_endorse_last"} <= f
    g = set(features("Okay, I'm reasonably confident it's H.", CHOICE_CTX))
    assert "u:cand_endorse_last" in g
    assert "u:endorse_last" not in features("Let me look at the options again.", CHOICE_CTX)


def test_yes_no_comparison_is_a_candidate() -> None:
    """For "is X faster than Y?", a last sentence that compares a thing the question names is
    a candidate (``y:compare_last``, ``u:cand_last``); one that names no comparison is not."""
    ask = frozenset({"typhoon", "eurofighter", "blackbird", "faster"})
    ctx = StatesContext(index=7, answer_format="yesno", ask=ask)
    f = set(features("The speeds are close. This suggests that the Typhoon is slightly faster.",
                     ctx))
    assert {"y:ask_last", "y:compare_last", "u:cand_last"} <= f
    g = set(features("Let me look up the top speed of the Typhoon.", ctx))
    assert "y:ask_last" in g and "y:compare_last" not in g and "u:cand_last" not in g


def test_math_last_number_shape() -> None:
    """The last sentence's last number: integer or decimal, inside an expression, one of
    several (arithmetic)."""
    f = set(features("So the answer is 42.", StatesContext()))
    assert "m:last_integer" in f and not {"m:last_expression", "m:last_arithmetic"} & f
    g = set(features("Then 3 * 4 + 2 = 14, over \\sqrt{2} gives 9.9.", StatesContext()))
    assert {"m:last_decimal", "m:last_expression", "m:last_arithmetic"} <= g


def test_credited_is_read_only_when_known() -> None:
    """``credited`` (the tracker's credit, known one step late) is a feature only when set:
    the shipped head, read as each step is added, never sees it."""
    assert not any(n.startswith("r:") and "credited" in n
                   for n in features("So 42.", StatesContext()))
    assert "r:credited" in features("So 42.", StatesContext(credited=True))
    assert "r:not_credited" in features("So 42.", StatesContext(credited=False))
    assert not any("credited" in n for n in StatesHead().weights.vocab)
    rows = [(t, x, c, g, g and i % 2 == 0) for i, (t, x, c, g, _) in enumerate(_toy_rows())]
    report = states_cv(None, None, "problem", folds=3, rows=rows, credited=True)
    assert report["credited"] and report["rows"]["all"]["head"]["f1"] > 0.9


def test_fast_logit_is_the_sum_of_the_named_features() -> None:
    """``StatesWeights.z`` (no names built) gives the logit of ``features`` + the weights."""
    head = StatesHead()
    w = head.weights
    prev = "Let me check: 6 * 7 = 42."
    cases = [
        ("So the answer is 42.", StatesContext(index=4, current="42", previous=prev,
                                               numbers=frozenset({"6", "7"}),
                                               ask=frozenset({"product"}))),
        ("Hmm, the product is 42? Let me verify: 42 / 7 = 6.\n\nYes.",
         StatesContext(index=9, strong=True, stated="conclusion", previous=prev)),
        ("* H seems like the most plausible.\n* Not B: Taft ran as a Republican.",
         replace(CHOICE_CTX, current="H", previous="Let me weigh B and H.")),
        ("A: Roosevelt - No.\nH: Perot - Yes.\nSo the answer is (H).", CHOICE_CTX),
        ("Wait, La Follette fits; the source says Perot, but I'd go with La Follette.",
         replace(CHOICE_CTX, current="H")),
        ("So it's a contingent executory interest pur autre vie.",
         StatesContext(index=16, answer_format="choice", options=LAW_OPTS)),
        ("No, the claim does not hold. So the answer is NO.",
         StatesContext(index=2, answer_format="yesno")),
        ("Some text in a format the head was never trained on: 12.",
         StatesContext(answer_format="code")),
    ]
    for text, ctx in cases:
        _, contrib = head.contributions(text, ctx)
        assert w.z(text, ctx) == pytest.approx(w.intercept + sum(contrib), abs=1e-9)
        v = head.read(text, ctx)
        assert v.p == pytest.approx(head.probability(text, ctx))
        assert v.evidence.count(",") == 2  # three features, worked out on first read


def test_per_format_threshold_round_trip(tmp_path: Path) -> None:
    w = replace(fit_states(_toy_rows(), inner_folds=0, min_count=2), thresholds={"choice": 1.0})
    back = StatesWeights.load(save_states(tmp_path / "w.npz", w))
    assert back.threshold_for("choice") == 1.0  # never flags
    assert back.threshold_for("math") == pytest.approx(back.threshold) == pytest.approx(0.5)
    text = "So the answer is 47."
    assert StatesHead(back).read(text, StatesContext(index=3)).flag
    assert not StatesHead(back).read(text, StatesContext(index=3, answer_format="choice")).flag


def _tokens_part_by_part(text: str, letters: bool) -> tuple[list[str], list[str], list[str]]:
    """The head / tail / last-sentence tokens as ``_read`` reads them, each part on its own
    (what ``_read`` did before it read the step once where it can)."""
    from tracestop.tag.states import _BULLET, HEAD_CHARS, HEAD_WORDS, TAIL_CHARS, _tokens

    stripped = text.strip()
    nl = stripped.find("\n")
    first = _BULLET.sub("", stripped if nl < 0 else stripped[:nl])
    tail = stripped[-TAIL_CHARS:]
    start = _last_start_by_regex(tail)
    last_all = _tokens(tail[start:].strip(), letters)
    tail_toks = _tokens(tail[:start], letters) + last_all if start else last_all
    return _tokens(first[:HEAD_CHARS], letters)[:HEAD_WORDS], tail_toks, last_all[:2]


def _last_start_by_regex(tail: str) -> int:
    """Where the last sentence of ``tail`` starts, by the sentence-end regex ``_last_start``
    replaces with ``str.rfind``."""
    from tracestop.tag.states import _END_CHARS

    start = 0
    for m in re.finditer(r"[.!?](?=\s)|\n", tail.rstrip(_END_CHARS)):
        start = m.end()
    return start


@pytest.mark.parametrize("text", [
    "",
    "So the answer is 42.",
    "First, 3.5 apples. Then 2,000 more! Is it x=4? Yes: it's 7",
    "- **Step 1**: add 12 and 30.\nThat gives 42. So the answer is 42.",
    "Line one ends here.\nLine two. And the last sentence names 7 and B.",
    "word " * 40 + "and then. The end is 9",  # one line, a space at the head's end
    "abcdefghij" * 20 + " then. Last one 5",  # one line, a word across the head's end
    "*" * 290 + " " + "Short head after many bullets. The tail is 8",  # bullets: > TAIL_CHARS
    "- " * 120 + "x\nsecond line. Last 3",
    "İstanbul has 15 million people. So 15.",  # lower case changes the length
    "A NUL \0 inside. Still 3.",
    "Case A. We pick (C).\nSo the answer is C. Not D.",
    "x. " * 150,
    "The answer is 12.\n\n\n   ",
])
@pytest.mark.parametrize("fmt", ["math", "yesno", "choice"])
def test_tokens_read_once_equal_part_by_part(text: str, fmt: str) -> None:
    """``_read`` reads a short step's head, tail and last sentence in one scan where it can:
    the same tokens as reading each part on its own, the same features and logit."""
    from tracestop.tag.states import _last_start, _read

    ctx = StatesContext(answer_format=fmt, previous="Before that, 12.", current="12",
                        options={"A": "taft", "B": "wilson", "C": "debs", "D": "perot"}
                        if fmt == "choice" else {})
    for t in (text, text[:150], text[:161], text[-299:]):
        _, head, tail, last, _ = _read(t, ctx)
        assert (head, tail, last) == _tokens_part_by_part(t, fmt == "choice")
        assert _last_start(t) == _last_start_by_regex(t)


def test_last_start_and_ends_number_match_their_regexes() -> None:
    """``_last_start`` (str.rfind) and the ends-on-a-number test (the last word character)
    agree with the regexes they replace on random strings of the characters that matter."""
    import random

    from tracestop.tag.states import _LAST_WORD, _last_start

    ends_number = re.compile(r"\d[^\w]*$")
    rng = random.Random(0)
    alphabet = "ab .!?\n\t\u00a0\u2028)*1_\u0663\u00b2"
    for _ in range(20000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert _last_start(s) == _last_start_by_regex(s), repr(s)
        lw = _LAST_WORD.match(s)
        assert (lw is not None and s[lw.end() - 1].isdecimal()) == bool(ends_number.search(s)), \
            repr(s)

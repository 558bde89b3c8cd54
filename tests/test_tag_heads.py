"""The linear tagger's role head, product decoding and question-number features."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import linear_tagger_or_skip
from tracestop._types import StepType
from tracestop.tag import LinearTagger, TagContext
from tracestop.tag.linear import DENSE_NAMES, LABELS, ROLES, SA_ONLY, LinearWeights

T = StepType
_TEXTS = [
    ("Wait, let me double-check: 6*6 = 36.", TagContext(index=20, previous=T.FORMULA_SUBSTITUTION)),
    ("So the answer is \\boxed{42}.", TagContext(index=30, states_answer=True)),
    ("Okay, so we have 3 red balls and 5 blue balls.",
     TagContext(index=0, question="A bag has 3 red balls and 5 blue balls.")),
    ("Simplifying, x^2 - 5x + 6 = (x - 2)(x - 3).", TagContext(index=6)),
    ("", TagContext()),
    ("    *   Option B: more creative\n    *   plausible", TagContext(index=3)),
]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("text,ctx", _TEXTS)
def test_tag_decodes_the_product_of_type_and_role_heads(text: str, ctx: TagContext) -> None:
    t = linear_tagger_or_skip()
    w = t.weights
    idx, vals = t.encoder.encode(text, ctx)
    v = np.asarray(vals, dtype=np.float64)
    p_type = _softmax(v @ w.coef[idx].astype(np.float64) + w.intercept)
    p_role = _softmax(v @ w.role_coef[idx].astype(np.float64) + w.role_intercept)
    np.testing.assert_allclose(t.role_scores(text, ctx), p_role, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(t.scores(text, ctx), p_type, rtol=1e-4, atol=1e-6)
    joint = p_type * p_role[[ROLES.index(k.role) for k in LABELS]]
    joint /= joint.sum()
    tag = t.tag(text, ctx)
    assert joint[LABELS.index(tag.type)] >= joint.max() - 1e-5
    assert tag.confidence == pytest.approx(joint.max(), abs=1e-4)


def _dense(t: LinearTagger, text: str, ctx: TagContext, sa: bool = True) -> dict[str, float]:
    idx, vals = t.encoder.encode(text, ctx, sa=sa)
    d0 = t.encoder.dense0
    return {DENSE_NAMES[i - d0]: v for i, v in zip(idx, vals, strict=True)
            if d0 <= i < t.encoder.emb0}  # the encoder's ``emb:`` rows come after


def test_question_number_features() -> None:
    t = linear_tagger_or_skip()
    q = "A bag has 3 red balls and 15 blue balls. What is the probability of red?"
    same = _dense(t, "So there are 3 red and 15 blue balls.", TagContext(index=1, question=q))
    assert same["ctx:question_numbers"] == 1.0 and same["ctx:question_numbers=all"] == 1.0
    half = _dense(t, "3 of 18 balls: 3/18 = 1/6.", TagContext(index=5, question=q))
    assert 0.0 < half["ctx:question_numbers"] < 1.0 and "ctx:question_numbers=all" not in half
    new = _dense(t, "That gives 0.1667.", TagContext(index=5, question=q))
    assert not {"ctx:question_numbers", "ctx:no_numbers"} & set(new)
    none = _dense(t, "Let me think about this.", TagContext(index=5, question=q))
    assert none["ctx:no_numbers"] == 1.0 and "ctx:question_numbers" not in none
    # without a question: no share, but "no numbers" still fires
    assert "ctx:question_numbers" not in _dense(t, "So 3 and 15.", TagContext(index=1))
    assert _dense(t, "Hmm.", TagContext())["ctx:no_numbers"] == 1.0
    assert _dense(t, "So 3 and 15.", TagContext(index=1))["shape:digits"] > 0


def test_weights_check_the_role_head_shape() -> None:
    n = len(DENSE_NAMES) + 1
    args = (np.zeros((n, len(LABELS)), np.float32), np.zeros(len(LABELS), np.float32), ("b:x",),
            np.zeros(n, np.float32), 0.0)
    w = LinearWeights(*args, np.zeros((n, len(ROLES)), np.float32),
                      np.zeros(len(ROLES), np.float32))
    assert w.joint.shape == (n, len(LABELS))
    with pytest.raises(ValueError):
        LinearWeights(*args, np.zeros((n, 2), np.float32), np.zeros(2, np.float32))


def test_ask_tail_feature_and_sa_only_weights() -> None:
    t = linear_tagger_or_skip()
    q = "Stanley is at 10,000 feet. How many feet must Oliver climb to reach the comb?"
    said = _dense(t, "So Oliver must climb 3,000 feet.", TagContext(index=5, question=q))
    # ask words: feet, must, oliver, climb, reach, comb (6); 4 of them named
    assert said["ctx:ask_tail"] == pytest.approx(4 / 6)
    assert "ctx:ask_tail" not in _dense(t, "Let me add 2 and 3.", TagContext(index=5, question=q))
    assert "ctx:ask_tail" not in _dense(t, "So Oliver must climb 3,000 feet.", TagContext())
    # a long step: only its last characters count
    long = "Oliver must climb. " + "x " * 400 + "That gives 3,000."
    assert "ctx:ask_tail" not in _dense(t, long, TagContext(index=5, question=q))
    assert _dense(t, "x " * 400 + "he must climb 3,000 feet", TagContext(question=q))[
        "ctx:ask_tail"] == pytest.approx(3 / 6)
    # the feature is the states-answer head's: ``tag`` does not compute it, the type and role
    # heads give it no weight
    assert "ctx:ask_tail" not in _dense(t, "So Oliver must climb 3,000 feet.",
                                        TagContext(index=5, question=q), sa=False)
    w = t.weights
    for name in SA_ONLY:
        row = len(w.vocab) + DENSE_NAMES.index(name)
        assert not w.coef[row].any() and not w.role_coef[row].any()
        assert not w.joint[row].any()
        assert w.sa_coef[row] != 0.0


def test_feature_table_orders_the_rows_and_matches_the_docs() -> None:
    """The encoder's offsets come from one table, and docs/tagger.md shows that table."""
    from pathlib import Path

    from tracestop.tag.linear import DENSE_FEATURES, GRAM_FEATURES

    assert DENSE_NAMES == tuple(n for f in DENSE_FEATURES for n in f.names)
    assert len(set(DENSE_NAMES)) == len(DENSE_NAMES)
    assert set(SA_ONLY) <= set(DENSE_NAMES)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "tagger.md").read_text("utf-8")
    rows = [line for line in doc.splitlines()
            if line.startswith(("| vocabulary |", "| dense |"))]
    assert len(rows) == len(GRAM_FEATURES) + len(DENSE_FEATURES)
    for row, g in zip(rows, GRAM_FEATURES, strict=False):
        assert f"`{g.prefix}:` {g.what} | {g.value} |" in row
    for row, f in zip(rows[len(GRAM_FEATURES):], DENSE_FEATURES, strict=True):
        assert f"`{f.names[0]}`" in row and f"`{f.names[-1]}`" in row and f.how in row


def test_cue_features() -> None:
    """Feature version 6: cue-word groups (capped body counts, the head's groups), one-letter
    variables and LaTeX."""
    t = linear_tagger_or_skip()
    check = _dense(t, "Wait, let me check this: if n = 3, then f(3) = 9, which matches.\n"
                      "  a_1 = 3 so it is correct.",
                   TagContext(index=4, previous=T.CASE_CONSIDERATION), sa=False)
    assert check["cue:verify"] == 1.0  # check, matches, correct: 3 of the group (the cap)
    assert check["cue:head=verify"] == 1.0 and check["cue:head=meta"] == 1.0
    assert check["cue:case"] == pytest.approx(1 / 3) and "cue:head=case" not in check
    assert check["math:variables"] == pytest.approx(2 / 5)  # n, f (a_1 is "a": a word)
    assert "math:latex" not in check and "cue:conclude" not in check
    final = _dense(t, "So the answer is $\\boxed{42}$.", TagContext(index=9), sa=False)
    assert final["math:latex"] == 1.0 and "math:variables" not in final
    assert final["cue:conclude"] == pytest.approx(2 / 3)  # answer, boxed
    assert final["cue:head=conclude"] == 1.0  # "answer" is in the head
    # the head's groups read its first words only
    late = _dense(t, "one two three four five six seven check", TagContext(index=2), sa=False)
    assert "cue:head=verify" not in late and late["cue:verify"] == pytest.approx(1 / 3)

"""The linear tagger's hot path (tracestop.tag.linear): the rule verdict with its gates read
from token bits, and the token-id tables of the grams, give what the plain definitions give."""

from __future__ import annotations

import pytest

from tests.conftest import linear_tagger_or_skip
from tracestop.tag import TagContext
from tracestop.tag import linear as lin
from tracestop.tag.rules import RULES, step_head

#: Steps that reach every rule and every gate kind: letter runs, several words, symbols only
#: (``×``, ``÷``: no ``_WORD`` token), a backslash, apostrophes, non-ASCII letters.
TEXTS = [
    "", "\n\n  \n", "x" * 700 + " so the answer is 4",
    "Wait, let me double-check that calculation.", "Let me verify: 3 * 14 = 42. Yes.",
    "So, probability is 26/36=13/18.\n\nSame answer.", "So the answer is 42.",
    "**Final Answer**\n\\boxed{7}", "final answer: 7", "Alternatively, we could use a table.",
    "Hmm, is there another way?", "I'm not sure this is right.", "Hold on, no. That can't be.",
    "Let me re-read the question.", "The problem says x > 2.", "Okay, so I need to find x.",
    "I recall that the formula for area is pi r^2.", "Case 2: x < 0.", "B) 12: plausible",
    "What if n = 0?", "Oops, actually it is 5.", "That's approximately 3.14, close to pi.",
    "which corresponds to option C", "To recap, we have x = 2.", "Let me try substituting.",
    "Simplify: 2x + 4 = 10, so x = 3.", "6 × 7 = 42", "84 ÷ 2 is 42", "a+b", "x^{2}", "≈ 2",
    "Yes, consistent with before.", "It looks good; it seems solid.", "see if it checks out",
    "That matches the earlier result.", "I'm confident the choice is D.", "confusing? no",
    "l'hôpital's rule: the limit is 1", "İstanbul \u212a check", "don't re-check; it's fine",
    "    *   Option A: **Toluene** is `nitrated` first.\n    *   This is plausible.",
    "12. Option (b): $\\frac{1}{2}$ <= 3 ... " * 30,
]
_Q = "Oliver climbs 1200 feet, then 1800 more. How many feet must Oliver climb in total?"
CONTEXTS = [TagContext(index=0), TagContext(index=2, states_answer=True, question=_Q),
            TagContext(index=30, states_answer=True), TagContext(index=9, question=_Q)]


def _bits(enc: lin.Encoder, target: str) -> int:
    out = 0
    for i in map(enc._ids.__getitem__, lin._WORD.findall(target)):
        out |= enc._ids.bits[i]
    return out


def test_gate_pieces_are_necessary() -> None:
    """Each gate string's piece lies inside one token of any target holding the string (so the
    token bits pass wherever ``Rule.gate`` passes)."""
    for rule in RULES:
        for g in rule.gate:
            p = lin._piece(g)
            for s in (g, f"x{g}y", f" {g}, "):
                if p is None:
                    assert not lin._PIECE.findall(g)
                else:
                    assert any(p in tok for tok in lin._WORD.findall(s)), (g, s)


@pytest.mark.parametrize("text", TEXTS)
def test_masked_verdict_is_the_rule_scan(text: str) -> None:
    """``_masked_verdict`` (gates on token bits) picks the rule ``Rule.matches`` picks
    first."""
    enc = linear_tagger_or_skip().encoder
    head, body = step_head(text), text[: lin.BODY_CHARS].lower()
    for ctx in CONTEXTS:
        want = next((lin._LABEL_POS[r.type] for r in RULES if r.matches(head, body, ctx)),
                    lin._NO_VERDICT)
        hb, bb = _bits(enc, head), _bits(enc, body)
        assert lin._masked_verdict(head, body, ctx, hb, bb) == want


@pytest.mark.parametrize("text", TEXTS)
def test_token_ids_give_the_string_grams(text: str) -> None:
    """The grams looked up by token ids (unigram rows per id, bigrams by id pairs) are the
    vocabulary rows of ``gram_names`` in order, and ``encode`` appends them first."""
    enc = linear_tagger_or_skip().encoder
    pos = {g: i for i, g in enumerate(enc.vocab)}
    want = [pos[g] for g in lin.gram_names(text) if g in pos]
    for ctx in CONTEXTS:
        idx, _ = enc.encode(text, ctx)
        assert idx[: len(want)] == want
        assert all(i >= enc.dense0 for i in idx[len(want):])


def test_token_ids_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``_TOKENS_MAX`` ids a new token gets id 0: no gram rows, every gate bit; the
    features stay the same as an encoder's with room for it."""
    t = linear_tagger_or_skip()
    texts = [*TEXTS, "zzqx checkzz wibble = 3", "so qqq rechecking the flibbertigibbet",
             "so oliver must climbzz 3000 feet in total, the flibbertigibbet said"]
    roomy = lin.Encoder(t.weights.vocab)
    want = [roomy.encode(text, ctx, sa=True) for text in texts for ctx in CONTEXTS]
    full = lin.Encoder(t.weights.vocab)
    monkeypatch.setattr(lin, "_TOKENS_MAX", len(full._ids.bits))
    assert [full.encode(text, ctx, sa=True) for text in texts for ctx in CONTEXTS] == want
    assert full._ids["flibbertigibbet"] == 0
    assert full._ids.bits[0] == lin._ALL_GATES
    assert all(rows[0] is None for rows in full._ids.rows)
    assert all(len(t) == len(roomy._ids.bits)
               for t in (*roomy._ids.rows, *roomy._ids.follow, roomy._ids.long))
    # every vocabulary bigram is keyed by its tokens' ids
    moo, mhh, mbb = full._pairs
    assert len(moo) + len(mhh) + len(mbb) == sum(
        1 for g in full.vocab if g.partition(":")[0] in ("oo", "hh", "bb"))
    for (a, b), i in list(mbb.items())[:50]:
        name = full.vocab[i].partition(":")[2]
        ids = [full._ids[w] for w in name.split(" ")]
        assert ids == [a, b]

"""The offline word encoder (tracestop.tag.embed) and its rows in the linear tagger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tracestop.tag import TagContext
from tracestop.tag import linear as lin
from tracestop.tag.embed import Embedding, load_embedding


def _corpus() -> list[str]:
    # "verify" and "confirm" occur in the same contexts, "simplify" in others
    out = []
    for i in range(60):
        out.append(f"let me verify the result again carefully number {i} now")
        out.append(f"let me confirm the result again carefully number {i} now")
        out.append(f"we simplify the fraction and expand the product term {i} here")
        out.append(f"we factor the fraction and expand the product term {i} here")
    return out


def test_build_embedding_puts_same_context_words_together() -> None:
    pytest.importorskip("scipy")
    from tracestop.lab.train import build_embedding

    emb = build_embedding(_corpus(), words=50, dim=4, min_count=2)
    assert emb.vectors.shape == (len(emb.words), 4)
    v = emb.vectors / np.linalg.norm(emb.vectors, axis=1, keepdims=True)
    row = {w: i for i, w in enumerate(emb.words)}

    def cos(a: str, b: str) -> float:
        return float(v[row[a]] @ v[row[b]])

    assert cos("verify", "confirm") > cos("verify", "simplify") + 0.3
    assert cos("simplify", "factor") > cos("simplify", "confirm") + 0.3
    # deterministic: a second build gives the same vectors
    again = build_embedding(_corpus(), words=50, dim=4, min_count=2)
    assert again.words == emb.words
    assert np.array_equal(again.vectors, emb.vectors)


def test_mean_skips_unknown_tokens() -> None:
    emb = Embedding(("a", "b"), np.asarray([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32))
    assert emb.mean(["a", "b", "zz", "="]) == pytest.approx([0.5, 1.0])
    assert emb.mean(["zz"]) is None
    assert emb.mean([]) is None


def test_encoder_rows_and_weights_roundtrip(tmp_path: Path) -> None:
    from tracestop.lab.train import save_weights

    emb = Embedding(("verify", "check", "simplify"),
                    np.asarray([[1, 0], [0.5, 0.5], [0, 1]], dtype=np.float32))
    vocab = ["h:verify", "b:verify"]
    enc = lin.Encoder(vocab, emb)
    plain = lin.Encoder(vocab)
    assert enc.n_features == plain.n_features + 4
    text = "Verify:\nwe simplify and check."
    ctx = TagContext(index=3)
    idx, vals = enc.encode(text, ctx)
    pidx, pvals = plain.encode(text, ctx)
    # the encoder's rows come last, after the same rows as without it
    assert idx[:len(pidx)] == pidx and vals[:len(pvals)] == pvals
    extra = dict(zip(idx[len(pidx):], vals[len(pvals):], strict=True))
    e0 = enc.emb0
    assert enc.name(e0) == "emb:h0" and enc.name(e0 + 3) == "emb:b1"
    assert extra[e0] == pytest.approx(1.0) and extra[e0 + 1] == pytest.approx(0.0)  # head: verify
    # body tokens: verify, simplify, check known -> mean of the three
    assert extra[e0 + 2] == pytest.approx(0.5) and extra[e0 + 3] == pytest.approx(0.5)

    n = enc.n_features
    rng = np.random.default_rng(0)
    w = lin.LinearWeights(rng.standard_normal((n, len(lin.LABELS))).astype(np.float32),
                          np.zeros(len(lin.LABELS), np.float32), tuple(vocab),
                          np.zeros(n, np.float32), 0.0,
                          rng.standard_normal((n, len(lin.ROLES))).astype(np.float32),
                          np.zeros(len(lin.ROLES), np.float32), emb)
    from tracestop.lab.train import save_embedding

    save_embedding(tmp_path / "e.npz", emb)
    with pytest.raises(ValueError):
        save_weights(tmp_path / "w.npz", w)  # an encoder needs its file named
    save_weights(tmp_path / "w.npz", w, embed_file="e.npz")
    loaded = lin.LinearTagger.load(tmp_path / "w.npz")
    assert loaded.weights.embed is not None
    assert loaded.weights.embed.words == emb.words
    direct = lin.LinearTagger(weights=w)
    got = loaded.tag(text, ctx)
    want = direct.tag(text, ctx)
    assert got.type == want.type
    assert got.confidence == pytest.approx(want.confidence, rel=1e-3)  # float16 vectors
    assert load_embedding(tmp_path / "e.npz") is loaded.weights.embed


_TEXTS = [
    "Let me double-check the result: 3 + 4 = 7, so the answer is 7.",
    "Wait, maybe I misread the problem.\nThe question asks for the total number of apples.",
    "**Option C:** the enzyme binds the substrate, which fits the data.",
    "x" * 700 + " so we simplify the fraction and verify it",
    "",
    "= + - 12 34",
]


def test_folded_word_rows_give_the_dense_logits() -> None:
    """``tag`` reads the encoder through folded word rows; its logits equal the dense
    ``emb:`` rows' (the mean vector times their weights)."""
    rng = np.random.default_rng(1)
    words = ("let", "me", "double", "check", "result", "answer", "wait", "misread", "problem",
             "question", "option", "enzyme", "fits", "data", "simplify", "verify", "so", "the")
    emb = Embedding(words, rng.standard_normal((len(words), 3)).astype(np.float32))
    vocab = ["h:let", "b:check", "b:the"]
    enc = lin.Encoder(vocab, emb)
    n = enc.n_features
    w = lin.LinearWeights(rng.standard_normal((n, len(lin.LABELS))).astype(np.float32),
                          rng.standard_normal(len(lin.LABELS)).astype(np.float32), tuple(vocab),
                          np.zeros(n, np.float32), 0.0,
                          rng.standard_normal((n, len(lin.ROLES))).astype(np.float32),
                          rng.standard_normal(len(lin.ROLES)).astype(np.float32), emb)
    assert w.joint.shape[0] == n + 2 * len(words)
    tagger = lin.LinearTagger(weights=w)
    for i, text in enumerate(_TEXTS):
        ctx = TagContext(index=i, question="How many apples?")
        idx, vals = enc.encode(text, ctx)
        fidx, fvals = enc.encode(text, ctx, fold=True)
        assert max(idx) < n and (not fidx or max(fidx) < w.joint.shape[0])
        dense = np.asarray(vals) @ w.joint[idx].astype(np.float64)
        folded = np.asarray(fvals) @ w.joint[fidx].astype(np.float64)
        assert folded == pytest.approx(dense, abs=1e-4)
        tag = tagger.tag(text, ctx)
        assert tag.type == lin.LABELS[int(np.argmax(dense))]
        assert tag.evidence.startswith("features: ")
    # a folded row has a readable name
    assert enc.name(enc.n_dense) == "emb:head=let"
    assert enc.name(enc.n_dense + len(words)) == "emb:body=let"

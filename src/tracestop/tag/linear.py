"""The linear tagger: learned-vocabulary n-grams + rule cues + context, softmax weights, numpy.

Features (all sparse; the table, in row order, is ``GRAM_FEATURES`` + ``DENSE_FEATURES``, and
``Encoder.encode`` derives every offset from it):

- ``h:`` / ``hh:`` word unigrams / bigrams of the step's head (its first ``HEAD_TOKENS``
  words, bullets stripped), ``o:`` / ``oo:`` its first word and first two words;
- ``b:`` / ``bb:`` word unigrams / bigrams of the start of the step (first ``MAX_TOKENS``
  tokens of its first ``BODY_CHARS`` characters) and ``t:`` unigrams of its last
  ``TAIL_CHARS`` characters; numbers dropped (folded to ``#``, which is no token); each
  group scaled by 1/sqrt(count).
  The grams are looked up in a vocabulary learned at training time (grams seen in the
  training steps; stored in the weights file), unseen grams are dropped;
- ``rule:`` the rule tagger's verdict (the first firing cue rule of
  ``tracestop.tag.rules.RULES``, so the scan stops as early as the rule tagger's);
- ``ctx:`` whether the step states an answer, a bucket of its index, the previous step's type;
- ``shape:`` length, lines, digits, ``=`` signs, bullets, a trailing colon, a question mark,
  overlap with the question's words; ``ctx:`` whether the step writes no number, and the
  share of its numbers already written in the question (all of them: a flag of its own);
- ``cue:`` (feature version 6) per-type cue-word groups (``CUE_WORDS``: verify, conclude,
  meta, case, ...): a capped count in the body and whether the head names one, so a group's
  weight carries over to wordings a model family in the training data never used; ``math:``
  one-letter variables and LaTeX;
- ``ctx:ask_tail`` (states-answer head only, ``SA_ONLY``): the share of the words of what the
  question asks for ("How many feet must Oliver climb?" → feet, oliver, climb, ...) named in
  the step's last ~200 characters, where a step states its answer ("so he must climb 3,000
  feet"). Emitted only by ``encode(..., sa=True)`` (``states_answer``, its training): ``tag``
  skips it, and the type and role heads, trained without it, hold zero weights there.

Three heads share the features: a 14-way softmax (the step type, trained with square-root-
balanced class weights), a 3-way softmax (the macro role, unweighted) and a logistic
``states_answer`` head (does the step put forward a candidate answer to the whole question).
``tag`` decodes the product of the first two, p(type) * p(role of the type): the role head
keeps the roles' priors (the stopping criteria consume roles), the type head ranks the
types; the sum
of their logits is one matrix (``LinearWeights.joint``), so decoding costs one row take.
Weights are trained by ``scripts/train_tagger.py`` (``tracestop.lab.train``) and shipped in
``weights/linear.npz``; they are loaded lazily once per path and shared by all instances.

``tag()`` returns a ``LinearTag``: its ``evidence`` (the top features) is formatted on first
read, as the Monitor never reads it. ``Encoder.encode`` is the hot path (p50 budget 50 us per
step, docs/tagger.md): it tokenizes once where it can and looks each token up once (a small
id; unigram rows, bigrams, the rule gates' bits and the word-length flag are then read by id);
the rule scan walks ``RULES`` in order, each gate tested first on the token bits; the question's ask words are computed only for ``sa=True``. ``tests/test_tag.py`` and
``tests/tag/test_linear_fast.py`` check it against the plain definitions.
"""

from __future__ import annotations

import math
import operator
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from itertools import pairwise
from pathlib import Path

import numpy as np

from tracestop._types import StepType, Tag
from tracestop.answers.question import question_ask
from tracestop.tag.base import TagContext
from tracestop.tag.embed import Embedding, load_embedding
from tracestop.tag.rules import RULES, step_head

#: The default context (a frozen value, shared).
_NO_CONTEXT = TagContext()

__all__ = [
    "DEFAULT_WEIGHTS",
    "DENSE_NAMES",
    "FEATURE_VERSION",
    "LABELS",
    "ROLES",
    "SA_ONLY",
    "Encoder",
    "LinearTagger",
    "LinearWeights",
    "gram_names",
]

#: Bump when the features change; the weights file records it and a mismatch is an error.
FEATURE_VERSION = 6
MAX_TOKENS = 80
HEAD_TOKENS = 6
BODY_CHARS = 600
TAIL_CHARS = 200
LABELS: tuple[StepType, ...] = tuple(StepType)
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "linear.npz"

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?|[=+\-*/^√≈?:()\\$<>]")
_NUM = re.compile(r"\d+(?:\.\d+)?")
#: What ``_TOKEN.findall(_NUM.sub("#", s))`` yields, in one pass: ``#`` is no token, so a
#: folded number never was one either (checked on every recorded step, tests/test_tag.py).
#: Possessive (``++``, ``?+``): the same tokens (the greedy first try always matches, nothing
#: backtracks), without the engine keeping backtrack points (~15% faster ``findall``).
_WORD = re.compile(r"[a-z]++(?:'[a-z]++)?+|[=+\-*/^√≈?:()\\$<>]")
#: Characters that can continue a ``_WORD`` token (a cut before any other cuts no token).
_WORD_GOES_ON = frozenset("abcdefghijklmnopqrstuvwxyz'")
_INDEX_BUCKETS = (0, 1, 2, 3, 6, 11, 21, 41)  # lower bounds


@dataclass(frozen=True, slots=True)
class GramFeature:
    """A namespace of sparse gram features: names ``prefix:gram`` from the learned vocabulary,
    what the grams are, and the value of each found gram."""

    prefix: str
    what: str
    value: str


#: The gram namespaces (sparse rows ``0 .. len(vocab)-1``), in vocabulary-prefix order.
GRAM_FEATURES: tuple[GramFeature, ...] = (
    GramFeature("o", "the head's first word", "1"),
    GramFeature("oo", "the head's first two words", "1"),
    GramFeature("h", f"word unigrams of the head (its first {HEAD_TOKENS} words)",
                "1/sqrt(head words)"),
    GramFeature("hh", "word bigrams of the head", "1/sqrt(head words - 1)"),
    GramFeature("b", f"unigrams of the body (first {MAX_TOKENS} tokens of its first "
                     f"{BODY_CHARS} characters, numbers dropped)", "1/sqrt(body tokens)"),
    GramFeature("bb", "bigrams of the body", "1/sqrt(body tokens - 1)"),
    GramFeature("t", f"unigrams of the last {TAIL_CHARS} characters (steps longer than "
                     f"{BODY_CHARS} characters only)", "1/sqrt(tail tokens)"),
)
_SPACES = tuple(g.prefix for g in GRAM_FEATURES)


@dataclass(frozen=True, slots=True)
class DenseFeature:
    """A block of dense feature rows: their names in row order and how the value is computed
    (a feature whose value would be 0 is left out of ``Encoder.encode``'s output)."""

    key: str
    names: tuple[str, ...]
    how: str


def _one(name: str, how: str) -> DenseFeature:
    return DenseFeature(name, (name,), how)


#: Per-type cue words (feature version 6): what a step does, in words most model families
#: use, pooled per group so a group's weight carries over to wordings a family in the training
#: data never used. A word belongs to one group; the body's tokens are counted.
CUE_WORDS: dict[str, tuple[str, ...]] = {
    "verify": ("check", "checking", "checked", "checks", "verify", "verifying", "verification",
               "verified", "confirm", "confirms", "confirmed", "plug", "plugging", "sanity",
               "double", "consistent", "matches", "correct", "indeed"),
    "conclude": ("therefore", "thus", "hence", "final", "answer", "boxed", "conclude",
                 "conclusion"),
    "meta": ("wait", "hmm", "mistake", "confused", "confusing", "actually", "oops", "misread",
             "reconsider", "overthinking", "overcomplicating"),
    "case": ("case", "cases", "suppose", "if", "consider", "example", "instance", "scenario"),
    "pattern": ("pattern", "patterns", "notice", "noticed", "symmetry", "symmetric", "cycle",
                "cycles", "period", "periodic", "repeat", "repeats", "repeating", "every",
                "similarly", "always", "regularity"),
    "define": ("recall", "remember", "defined", "definition", "formula", "known", "theorem",
               "property", "law", "principle", "means", "refers"),
    "restate": ("problem", "question", "asks", "given", "options", "statement"),
    "alternative": ("alternatively", "another", "different", "instead", "approach", "method",
                    "alternative"),
    "numeric": ("approximately", "roughly", "about", "units", "estimate", "around", "approx"),
    "recap": ("far", "recap", "summarize", "summary", "earlier", "found", "previously"),
    "symbolic": ("simplify", "simplifies", "factor", "expand", "rewrite", "solve", "solving",
                 "substitute", "substituting", "equation", "equations", "express"),
}
_CUE_GROUPS = tuple(CUE_WORDS)
#: word -> its group's position + 1 (so ``filter(None, ...)`` keeps every hit)
_CUE_OF1 = {w: j + 1 for j, k in enumerate(_CUE_GROUPS) for w in CUE_WORDS[k]}
#: min(3, count) / 3
_CUE_VALUE = tuple(min(c, 3) / 3.0 for c in range(MAX_TOKENS + 1))
#: one-letter tokens that count as variables (a and i are words)
_VARIABLE_TOKENS = frozenset("bcdefghjklmnopqrstuvwxyz")


#: The dense features, in row order after the grams (``Encoder.dense0``). Every offset
#: ``Encoder.encode`` writes to is derived from this table; docs/tagger.md lists it.
DENSE_FEATURES: tuple[DenseFeature, ...] = (
    DenseFeature("rule:first", (*(f"rule:first={t.value}" for t in LABELS), "rule:first=none"),
                 "1 for the type of the first cue rule of tracestop.tag.rules.RULES that fires "
                 "(none: no rule fires)"),
    _one("ctx:states_answer", "1 when the context says the step states an answer"),
    DenseFeature("ctx:index", tuple(f"ctx:index>={b}" for b in _INDEX_BUCKETS),
                 "1 for every bucket whose lower bound the step's index reaches"),
    DenseFeature("ctx:previous",
                 (*(f"ctx:previous={t.value}" for t in LABELS), "ctx:previous=none"),
                 "1 for the previous step's type (none: not known)"),
    _one("shape:log_chars", "log(1 + characters) / 8"),
    _one("shape:lines", "min(line breaks, 20) / 10"),
    _one("shape:digits", "5 x the body's number characters / its length"),
    _one("shape:equals", "min('=' signs in the body, 10) / 5"),
    _one("shape:bullet", "1 when the step starts with a bullet (*, -, •)"),
    _one("shape:ends_colon", "1 when the step ends with ':'"),
    _one("shape:question", "1 when the body holds '?'"),
    _one("shape:indented", "1 when the step (after leading line breaks) starts with a space or a tab"),
    _one("shape:short", "1 for a step under 80 characters"),
    _one("shape:bias", "always 1 (LinearWeights.joint holds the decoder's intercepts here)"),
    _one("ctx:question_overlap",
         "share of the body's words (over 3 letters) that occur in the question"),
    _one("ctx:question_overlap>0.5", "1 when that share is over 0.5"),
    _one("ctx:no_numbers", "1 when the body writes no number"),
    _one("ctx:question_numbers", "share of the body's numbers already written in the question"),
    _one("ctx:question_numbers=all", "1 when all of them are"),
    _one("ctx:ask_tail", "states-answer head only (SA_ONLY): min(1, 2 x the question's ask "
                         "words named in the step's tail / the ask words, s-forms included)"),
    DenseFeature("cue:body", tuple(f"cue:{k}" for k in _CUE_GROUPS),
                 "min(3, body tokens in the group's word list (CUE_WORDS)) / 3"),
    DenseFeature("cue:head", tuple(f"cue:head={k}" for k in _CUE_GROUPS),
                 "1 when one of the head's words is in the group's word list"),
    _one("math:variables", "min(10, one-letter body tokens other than a and i) / 5"),
    _one("math:latex", "1 when the body holds a backslash (LaTeX)"),
)
DENSE_NAMES: tuple[str, ...] = tuple(n for f in DENSE_FEATURES for n in f.names)
#: Dense features only the states-answer head uses (``Encoder.encode(..., sa=True)``; the type
#: and role heads are trained without them, so their weights there are 0).
SA_ONLY: tuple[str, ...] = ("ctx:ask_tail",)
#: dense row of each name, and the first row of each block, relative to ``Encoder.dense0``
_ROW = {n: i for i, n in enumerate(DENSE_NAMES)}
_FIRST = {f.key: _ROW[f.names[0]] for f in DENSE_FEATURES}
_VERDICT0 = _FIRST["rule:first"]
_STATES = _FIRST["ctx:states_answer"]
_INDEX0 = _FIRST["ctx:index"]
_PREV0 = _FIRST["ctx:previous"]
_LOG_CHARS = _ROW["shape:log_chars"]
_LINES = _ROW["shape:lines"]
_DIGITS = _ROW["shape:digits"]
_EQUALS = _ROW["shape:equals"]
_BULLET = _ROW["shape:bullet"]
_ENDS_COLON = _ROW["shape:ends_colon"]
_QUESTION_MARK = _ROW["shape:question"]
_INDENTED = _ROW["shape:indented"]
_SHORT = _ROW["shape:short"]
#: ``shape:bias`` (always 1.0; the decoder's intercepts live in its row of ``joint``)
_BIAS = _ROW["shape:bias"]
_Q_OVERLAP = _ROW["ctx:question_overlap"]
_Q_OVERLAP_HALF = _ROW["ctx:question_overlap>0.5"]
_NO_NUMBERS = _ROW["ctx:no_numbers"]
_Q_NUMBERS = _ROW["ctx:question_numbers"]
_Q_NUMBERS_ALL = _ROW["ctx:question_numbers=all"]
_ASK_TAIL = _ROW["ctx:ask_tail"]
_CUE_BODY0 = _FIRST["cue:body"]
_CUE_HEAD0 = _FIRST["cue:head"]
_VARIABLES = _ROW["math:variables"]
_LATEX = _ROW["math:latex"]
_LABEL_POS = {t: i for i, t in enumerate(LABELS)}
#: The cue rules whose first match is the ``rule:first=`` feature.
_VERDICT_RULES = RULES
_NO_VERDICT = len(LABELS)
#: A gate string's "piece": its longest maximal run of a-z letters, else its first ``_WORD``
#: symbol. Every run of letters of a target lies inside one of its ``_WORD`` tokens and every
#: symbol of the class is a token of its own, so where a gate string occurs in a target its
#: piece occurs inside some token of that target: a necessary condition, as the gate itself is
#: (``Rule.gate`` never changes a match, so neither does this weaker pre-check).
_PIECE = re.compile("[a-z]+|" + _WORD.pattern.rpartition("|")[2])


def _piece(g: str) -> str | None:
    pieces = _PIECE.findall(g)
    return max(pieces, key=lambda p: (p[0].isalpha(), len(p))) if pieces else None


_GATE_PIECES: dict[str, int] = {}  # piece -> its bit
for _r in _VERDICT_RULES:
    for _g in _r.gate:
        _p = _piece(_g)
        if _p is not None:
            _GATE_PIECES.setdefault(_p, 1 << len(_GATE_PIECES))


_ALL_GATES = (1 << len(_GATE_PIECES)) - 1
#: Token ids handed out per encoder (its vocabulary's tokens, then new tokens as they come;
#: the recorded steps' bodies hold under 20k distinct tokens): past it a new token gets id 0
#: (no gram rows, every gate bit: the gates are pre-checks only), so a stream of new words
#: fills at most ~32 MB of tables (measured with tracemalloc, random 4-12 letter words).
_TOKENS_MAX = 1 << 17
#: The bigrams a token starts when it starts none (shared; never written to).
_NO_PAIRS: dict[int, int] = {}


class _TokenIds(dict[str, int]):
    """token -> a small id (> 0) and, per id, its unigram rows (``o h b t``; None: not in the
    vocabulary) and the bits of the gate pieces it contains. A token is looked up once per
    step; the grams and the rule gates then read lists and int-keyed dicts."""

    def __init__(self, unigram_maps: tuple[dict[object, int], ...]) -> None:
        super().__init__()
        self._unigram_maps = unigram_maps
        #: per space of ``unigram_maps``: id -> row (id 0: none)
        self.rows: tuple[list[int | None], ...] = tuple([None] for _ in unigram_maps)
        self.bits: list[int] = [_ALL_GATES]
        #: per bigram space (``hh``, ``bb``): id -> {second token's id: row} of the bigrams the
        #: token starts (``_NO_PAIRS``: none), so a bigram is two small lookups, int keys
        self.follow: tuple[list[dict[int, int]], ...] = ([_NO_PAIRS], [_NO_PAIRS])
        #: id -> 1 for a token of more than 3 characters (id 0: any length, not read)
        self.long: list[int] = [0]
        self._lock = threading.Lock()

    def __missing__(self, token: str) -> int:
        with self._lock:  # the tables grow together; an id is published last
            hit = self.get(token)
            if hit is not None:
                return hit
            n = len(self.bits)
            if n >= _TOKENS_MAX:
                return 0
            for rows, m in zip(self.rows, self._unigram_maps, strict=True):
                rows.append(m.get(token))
            bits = 0
            for piece, bit in _GATE_PIECES.items():
                if piece in token:
                    bits |= bit
            self.bits.append(bits)
            for follow in self.follow:
                follow.append(_NO_PAIRS)
            self.long.append(1 if len(token) > 3 else 0)
            self[token] = n
            return n


def _gate_test(gate: tuple[str, ...]) -> tuple[int, tuple[str, ...]] | None:
    """A rule's gate as (the bits of its strings' pieces: any passes, the strings without a
    piece: tested with ``in``); None for no gate."""
    if not gate:
        return None
    bits = 0
    plain: list[str] = []
    for g in gate:
        p = _piece(g)
        if p is None:
            plain.append(g)
        else:
            bits |= _GATE_PIECES[p]
    return bits, tuple(plain)


#: ``Rule.matches`` unrolled (same checks, same order) for the hot loop of ``Encoder.encode``,
#: with the gates as token bits (``_masked_verdict``).
_MASKED_SCAN = tuple(
    (r.where == "head", _gate_test(r.gate), r.pattern.search, _LABEL_POS[r.type],
     (r.needs_answer, r.max_index, r.max_len)
     if (r.needs_answer or r.max_index is not None or r.max_len is not None) else None)
    for r in _VERDICT_RULES
)
_or = operator.or_
_BUCKET_TOP = _INDEX_BUCKETS[-1]
_LONGER_THAN_3 = (3).__lt__
_PAIR_SPACES = frozenset(("oo", "hh", "bb"))
_SCALES = tuple(1.0 / math.sqrt(k) if k else 0.0 for k in range(512))


def _scale(k: int) -> float:
    """``1 / sqrt(k)`` (tabled)."""
    return _SCALES[k] if k < 512 else 1.0 / math.sqrt(k)

_QSets = tuple[str, frozenset[str], frozenset[str]]
_QCACHE: list[_QSets] = [("", frozenset(), frozenset())]
_ASets = tuple[str, frozenset[str], float]
_ACACHE: list[_ASets] = [("", frozenset(), 0.0)]


def _ask_words(question: str) -> frozenset[str]:
    """The words of what ``question`` asks for (``tracestop.answers.question.question_ask``), each kept in
    its ``s`` form too, so a step's raw tokens can be probed."""
    words = question_ask(question)
    return frozenset(words | {w + "s" for w in words})


def _question_sets(question: str) -> _QSets:
    """(question, its content words, its numbers), cached: one Monitor asks about the same
    question."""
    for hit in _QCACHE:
        if hit[0] is question or hit[0] == question:
            return hit
    q = question[:3000]
    words = frozenset(t for t in _TOKEN.findall(q.lower()) if len(t) > 3)
    hit = (question, words, frozenset(_NUM.findall(q)))
    _QCACHE.insert(0, hit)
    del _QCACHE[8:]
    return hit


def _ask_sets(question: str) -> _ASets:
    """(question, its ask words (with ``s`` forms), 2 / their number), cached apart from
    ``_question_sets``: only the states-answer head's view (``encode(..., sa=True)``) reads
    them, so ``tag`` never pays for ``question_ask``."""
    for hit in _ACACHE:
        if hit[0] is question or hit[0] == question:
            return hit
    ask = _ask_words(question[:3000])
    hit = (question, ask, 2.0 / len(ask) if ask else 0.0)
    _ACACHE.insert(0, hit)
    del _ACACHE[8:]
    return hit


def _question_words(question: str) -> frozenset[str]:
    """Content words of the question (more than 3 letters)."""
    return _question_sets(question)[1]


def _tokens(s: str) -> list[str]:
    return _WORD.findall(s)


def _texts(text: str) -> tuple[str, str, str]:
    """(head, body, tail): the lower-cased pieces every feature reads (bounded length)."""
    head = step_head(text)
    body = text[:BODY_CHARS].lower()
    tail = text[-TAIL_CHARS:].lower() if len(text) > BODY_CHARS else ""
    return head, body, tail


def _grams(head: str, body: str, tail: str) -> tuple[list[str], ...]:
    """The gram strings per namespace of ``_SPACES`` (without prefixes)."""
    ht = _tokens(head)[:HEAD_TOKENS]
    bt = _tokens(body)[:MAX_TOKENS]
    tt = _tokens(tail) if tail else []
    hb = [a + " " + b for a, b in pairwise(ht)]
    bb = [a + " " + b for a, b in pairwise(bt)]
    return ht[:1], hb[:1], ht, hb, bt, bb, tt


def gram_names(text: str) -> list[str]:
    """All prefixed gram names of ``text`` (what a vocabulary is built from)."""
    out: list[str] = []
    for space, grams in zip(_SPACES, _grams(*_texts(text)), strict=True):
        out += [f"{space}:{g}" for g in grams]
    return out


def build_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """Sorted gram names seen at least ``min_count`` times in ``texts`` (deterministic)."""
    counts: dict[str, int] = {}
    for text in texts:
        for g in set(gram_names(text)):
            counts[g] = counts.get(g, 0) + 1
    return sorted(g for g, n in counts.items() if n >= min_count)


class Encoder:
    """Maps a step to sparse feature ids (rows of the weight matrix) and values.

    Rows ``0 .. len(vocab)-1`` are grams, then ``DENSE_NAMES``. Bigrams are looked up by
    token pairs (no string joins at run time).
    """

    def __init__(self, vocab: Sequence[str], embed: Embedding | None = None) -> None:
        self.vocab = tuple(vocab)
        self.embed = embed
        maps: dict[str, dict[object, int]] = {s: {} for s in _SPACES}
        for i, name in enumerate(self.vocab):
            space, _, gram = name.partition(":")
            key: object = tuple(gram.split(" ")) if space in _PAIR_SPACES else gram
            maps[space][key] = i
        self._maps = tuple(maps[s] for s in _SPACES)
        #: every token of the vocabulary gets an id; the bigram spaces are keyed by id pairs
        #: the encoder's words folded into rows of their own (``encode(..., fold=True)``):
        #: word -> its row among the head words' and among the body words' (after the
        #: ``emb:`` rows; ``LinearWeights.joint`` holds each word's vector times the weights)
        words = embed.words if embed is not None else ()
        self.n_dense = len(self.vocab) + len(DENSE_NAMES) + 2 * (embed.dim if embed else 0)
        self._fold_head: dict[object, int] = {w: self.n_dense + j for j, w in enumerate(words)}
        self._fold_body: dict[object, int] = {
            w: self.n_dense + len(words) + j for j, w in enumerate(words)}
        self._ids = ids = _TokenIds((*self._maps[0::2], self._fold_head, self._fold_body))
        pairs: dict[str, dict[tuple[int, int], int]] = {s: {} for s in _PAIR_SPACES}
        for i, name in enumerate(self.vocab):
            space, _, gram = name.partition(":")
            if space in _PAIR_SPACES:
                a, b = gram.split(" ")
                pairs[space][ids[a], ids[b]] = i
            else:
                ids[gram]  # gives the token its id
        for w in words:
            ids[w]  # every word with a vector gets an id (never past the cap)
        self._pairs = (pairs["oo"], pairs["hh"], pairs["bb"])
        for follow, space in zip(ids.follow, ("hh", "bb"), strict=True):
            for (first, second), i in pairs[space].items():
                if follow[first] is _NO_PAIRS:
                    follow[first] = {}
                follow[first][second] = i
        self.dense0 = len(self.vocab)
        #: the encoder's rows (``emb:h0`` ..., ``emb:b0`` ...) come after ``DENSE_NAMES``
        self.emb0 = self.dense0 + len(DENSE_NAMES)
        k = embed.dim if embed is not None else 0
        self._emb_head = list(range(self.emb0, self.emb0 + k))
        self._emb_body = list(range(self.emb0 + k, self.emb0 + 2 * k))
        self.n_features = self.emb0 + 2 * k
        #: index -> the rows of its ``ctx:index>=`` buckets (indices past the last are equal)
        self._buckets = tuple(
            tuple(self.dense0 + _INDEX0 + k for k, lo in enumerate(_INDEX_BUCKETS) if i >= lo)
            for i in range(_BUCKET_TOP + 1)
        )

    def name(self, i: int) -> str:
        """The readable name of feature row ``i``."""
        if i < self.dense0:
            return self.vocab[i]
        if i < self.emb0:
            return DENSE_NAMES[i - self.dense0]
        if i >= self.n_dense:  # a folded word row
            j = i - self.n_dense
            assert self.embed is not None
            n = len(self.embed.words)
            return f"emb:head={self.embed.words[j]}" if j < n else f"emb:body={self.embed.words[j - n]}"
        k = (self.n_features - self.emb0) // 2
        j = i - self.emb0
        return f"emb:h{j}" if j < k else f"emb:b{j - k}"

    def encode(self, text: str, context: TagContext = _NO_CONTEXT,
               sa: bool = False, fold: bool = False) -> tuple[list[int], list[float]]:
        """Parallel lists of feature rows and values (a row may repeat; consumers sum);
        ``sa``: with the ``SA_ONLY`` features (the states-answer head's view); ``fold``: the
        encoder's mean vectors as their words' rows (each known head word 1 / known head
        words, each known body word likewise), rows of ``LinearWeights.joint`` only: the same
        logits, without summing vectors per step.

        The rows come in a fixed order: the grams (``GRAM_FEATURES``), then the dense
        features in ``DENSE_FEATURES`` order (zero values left out)."""
        head = step_head(text)
        body = text[:BODY_CHARS].lower()
        n = len(text)
        find = _WORD.findall
        k = len(head)
        ids = self._ids
        tid = ids.__getitem__
        gates = ids.bits.__getitem__
        if body.startswith(head) and (k == len(body) or body[k] not in _WORD_GOES_ON):
            # the head is the body's first k characters and no token crosses k: tokenize once
            ht = find(body, 0, k)
            hids = [*map(tid, ht)]
            head_bits = reduce(_or, filter(None, map(gates, hids)), 0)
            if k < len(body):
                rest = find(body, k)
                bt = ht + rest
                rids = [*map(tid, rest)]
                body_bits = reduce(_or, filter(None, map(gates, rids)), head_bits)
                bids = hids + rids
            else:
                bt = ht
                bids = hids
                body_bits = head_bits
        else:
            ht = find(head)
            hids = [*map(tid, ht)]
            head_bits = reduce(_or, filter(None, map(gates, hids)), 0)
            bt = find(body)
            bids = [*map(tid, bt)]
            body_bits = reduce(_or, filter(None, map(gates, bids)), 0)
        whole = n <= BODY_CHARS and len(bt) <= MAX_TOKENS  # bt holds every token of the step
        if len(bt) > MAX_TOKENS:
            bt = bt[:MAX_TOKENS]
            bids = bids[:MAX_TOKENS]
        idx: list[int] = []
        vals: list[float] = []
        self._grams_into(idx, vals, hids[:HEAD_TOKENS], bids, "$" in body)
        tt = None
        if n > BODY_CHARS:
            tt = find(text[-TAIL_CHARS:].lower())
            if tt:
                ids_t = [i for i in map(self._maps[-1].get, tt) if i is not None]  # t:
                if ids_t:
                    idx += ids_t
                    vals += [_scale(len(tt))] * len(ids_t)
        d = self.dense0
        n_sparse = len(idx)
        idx.append(d + _VERDICT0 + _masked_verdict(head, body, context, head_bits, body_bits))
        if context.states_answer:
            idx.append(d + _STATES)
        if context.index >= 0:
            idx += self._buckets[min(_BUCKET_TOP, context.index)]
        prev = context.previous
        idx.append(d + _PREV0 + (_NO_VERDICT if prev is None else _LABEL_POS[prev]))
        vals += [1.0] * (len(idx) - n_sparse)
        nums = _NUM.findall(body)
        _shape_into(idx, vals, d, text, body, nums)
        question = context.question
        if question:
            last = _QCACHE[0]
            if last[0] is not question:
                last = _question_sets(question)
            # share of the body's words (> 3 letters) that occur in the question; the
            # question's word set holds only such words, so all tokens can be probed
            n_words = (sum(map(ids.long.__getitem__, bids)) if 0 not in bids
                       else sum(map(_LONGER_THAN_3, map(len, bt))))
            if n_words:
                ov = sum(map(last[1].__contains__, bt)) / n_words
                if ov:
                    idx.append(d + _Q_OVERLAP)
                    vals.append(ov)
                    if ov > 0.5:
                        idx.append(d + _Q_OVERLAP_HALF)
                        vals.append(1.0)
        if not nums:
            idx.append(d + _NO_NUMBERS)
            vals.append(1.0)
        elif question:
            # share of the step's numbers already written in the question (restating the
            # problem re-uses its numbers; a computation makes new ones)
            qn = sum(map(last[2].__contains__, nums)) / len(nums)
            if qn:
                idx.append(d + _Q_NUMBERS)
                vals.append(qn)
                if qn == 1.0:
                    idx.append(d + _Q_NUMBERS_ALL)
                    vals.append(1.0)
        if sa and question and (asks := _ask_sets(question))[1]:
            # what the question asks for, named near the step's end (where a step states its
            # answer: "so he must climb 3,000 feet"); the states-answer head's feature
            if tt is None:
                tt = bt[-40:] if whole else find(text[-TAIL_CHARS:].lower())
            hits = len(asks[1].intersection(tt))
            if hits:
                idx.append(d + _ASK_TAIL)
                vals.append(min(1.0, hits * asks[2]))
        _cues_into(idx, vals, d, ht, bt, body)
        emb = self.embed
        if emb is not None and fold:
            rows = ids.rows
            for rw, tok in ((rows[4], hids[:HEAD_TOKENS]), (rows[5], bids)):
                hit = [r for r in map(rw.__getitem__, tok) if r is not None]
                if hit:
                    idx += hit
                    vals += [1.0 / len(hit)] * len(hit)
        elif emb is not None:
            # the offline encoder (optional; docs/tagger.md): the mean word vector of the head and of
            # the body (tracestop.tag.embed)
            hv = emb.mean(ht[:HEAD_TOKENS])
            if hv is not None:
                idx += self._emb_head
                vals += hv
            bv = emb.mean(bt)
            if bv is not None:
                idx += self._emb_body
                vals += bv
        return idx, vals

    def _grams_into(self, idx: list[int], vals: list[float], hids: list[int],
                    bids: list[int], zero: bool) -> None:
        """Append the head and body grams found in the vocabulary (``o oo h hh b bb``), from
        the token ids of the head (its first ``HEAD_TOKENS``) and of the body (its first
        ``MAX_TOKENS``); ``zero``: row 0 may be among the body's unigrams (its gram holds
        ``$``), so they are not filtered by truth."""
        ro, rh, rb = self._ids.rows[:3]
        moo = self._pairs[0]
        fhh, fbb = self._ids.follow  # bigrams: (first token's pairs).get(second token)
        nh = len(hids)
        if nh:
            i = ro[hids[0]]
            if i is not None:
                idx.append(i)
                vals.append(1.0)
            if nh > 1:
                i = moo.get((hids[0], hids[1]))
                if i is not None:
                    idx.append(i)
                    vals.append(1.0)
            n0 = len(idx)
            idx += filter(None, map(rh.__getitem__, hids))  # rows of o h hh bb t are > 0
            if len(idx) > n0:
                vals += [_SCALES[nh]] * (len(idx) - n0)
            if nh > 1:
                n0 = len(idx)
                idx += filter(None, map(dict.get, map(fhh.__getitem__, hids), hids[1:]))
                if len(idx) > n0:
                    vals += [_SCALES[nh - 1]] * (len(idx) - n0)
        nbt = len(bids)
        if nbt:
            n0 = len(idx)
            if zero:
                idx += [i for i in map(rb.__getitem__, bids) if i is not None]
            else:
                idx += filter(None, map(rb.__getitem__, bids))
            if len(idx) > n0:
                vals += [_SCALES[nbt]] * (len(idx) - n0)
            if nbt > 1:
                n0 = len(idx)
                idx += filter(None, map(dict.get, map(fbb.__getitem__, bids), bids[1:]))
                if len(idx) > n0:
                    vals += [_SCALES[nbt - 1]] * (len(idx) - n0)


def _masked_verdict(head: str, body: str, context: TagContext, head_bits: int,
                    body_bits: int) -> int:
    """``rule:first``: the label position of the first cue rule that fires (``Rule.matches``:
    same checks, same order, with each gate tested first on the targets' token bits,
    ``_TokenIds.bits`` of the head's and of the body's tokens OR-ed), ``_NO_VERDICT`` when
    none does."""
    states = context.states_answer
    index = context.index
    for on_head, gate, search, pos, cond in _MASKED_SCAN:
        if cond is not None:  # (needs_answer, max_index, max_len): a few rules only
            needs_answer, max_index, max_len = cond
            if needs_answer and not states:
                continue
            if max_index is not None and index > max_index:
                continue
            if max_len is not None and len(body) > max_len:
                continue
        if on_head:
            target = head
            bits = head_bits
        else:
            target = body
            bits = body_bits
        if gate is not None and not bits & gate[0]:
            for g in gate[1]:
                if g in target:
                    break
            else:
                continue
        if search(target) is not None:
            return pos
    return _NO_VERDICT


def _cues_into(idx: list[int], vals: list[float], d: int, ht: list[str], bt: list[str],
               body: str) -> None:
    """Append the ``cue:`` features and ``math:variables`` / ``math:latex`` (``DENSE_FEATURES``
    order, zero values left out): per-group counts of ``CUE_WORDS`` in the body's tokens, the
    groups named in the head, one-letter variables and LaTeX."""
    hits = [*filter(None, map(_CUE_OF1.get, bt))]  # group position + 1 of each cue word
    if hits:
        base = d + _CUE_BODY0 - 1
        for j in sorted(set(hits)):
            idx.append(base + j)
            vals.append(_CUE_VALUE[hits.count(j)])
    if ht:
        seen = [*filter(None, map(_CUE_OF1.get, ht[:HEAD_TOKENS]))]
        if seen:
            base = d + _CUE_HEAD0 - 1
            for j in sorted(set(seen)):
                idx.append(base + j)
                vals.append(1.0)
    variables = sum(map(_VARIABLE_TOKENS.__contains__, bt))
    if variables:
        idx.append(d + _VARIABLES)
        vals.append(min(variables, 10) / 5.0)
    if "\\" in body:
        idx.append(d + _LATEX)
        vals.append(1.0)


def _shape_into(idx: list[int], vals: list[float], d: int, text: str, body: str,
                nums: list[str]) -> None:
    """Append the ``shape:`` features (``DENSE_FEATURES`` order; zero values left out)."""
    n = len(text)
    stripped = text.lstrip("\n")
    nb = len(body) or 1
    if n:
        idx.append(d + _LOG_CHARS)
        vals.append(math.log1p(n) / 8.0)
    lines = text.count("\n")
    if lines:
        idx.append(d + _LINES)
        vals.append(min(lines, 20) / 10.0)
    digits = sum(map(len, nums))
    if digits:
        idx.append(d + _DIGITS)
        vals.append(digits / nb * 5.0)
    eq = body.count("=")
    if eq:
        idx.append(d + _EQUALS)
        vals.append(min(eq, 10) / 5.0)
    if stripped.lstrip()[:1] in ("*", "-", "•"):
        idx.append(d + _BULLET)
        vals.append(1.0)
    if text.rstrip().endswith(":"):
        idx.append(d + _ENDS_COLON)
        vals.append(1.0)
    if "?" in body:
        idx.append(d + _QUESTION_MARK)
        vals.append(1.0)
    if stripped[:1] in (" ", "\t"):
        idx.append(d + _INDENTED)
        vals.append(1.0)
    if n < 80:
        idx.append(d + _SHORT)
        vals.append(1.0)
    idx.append(d + _BIAS)  # always on: ``LinearWeights.joint`` holds the intercepts here
    vals.append(1.0)


#: The role head's classes, in order (the order the roles first occur in ``LABELS``).
ROLES = tuple(dict.fromkeys(t.role for t in LABELS))
_exp = math.exp


@dataclass(frozen=True, slots=True)
class LinearWeights:
    """A trained model: the type head ``coef`` (n_features, 14), ``intercept`` (14,), the
    vocabulary, the states-answer head ``sa_coef`` (n_features,), ``sa_intercept``, and the
    role head ``role_coef`` (n_features, 3), ``role_intercept`` (3,) over ``ROLES`` (a
    softmax trained on the macro role of each step; ``tag`` decodes the role with it)."""

    coef: np.ndarray
    intercept: np.ndarray
    vocab: tuple[str, ...]
    sa_coef: np.ndarray
    sa_intercept: float
    role_coef: np.ndarray
    role_intercept: np.ndarray
    #: the offline encoder whose ``emb:`` rows follow ``DENSE_NAMES`` (None: no such rows)
    embed: Embedding | None = None
    #: The decoder's weights (n_features, 14), derived, not stored: the type head plus the
    #: role head's column of each type's role, both intercepts folded into the always-on
    #: ``shape:bias`` row, so ``x @ joint`` is log p(type) + log p(role of the type) up to a
    #: constant (the product of the two heads).
    joint: np.ndarray = field(init=False, repr=False, compare=False)
    #: ``coef`` with the folded word rows (the evidence of a ``tag``), derived
    explain_coef: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.vocab) + len(DENSE_NAMES) + (2 * self.embed.dim if self.embed else 0)
        k = len(ROLES)
        if (self.coef.shape != (n, len(LABELS)) or self.sa_coef.shape != (n,)
                or self.role_coef.shape != (n, k) or self.role_intercept.shape != (k,)):
            raise ValueError(f"weights have shapes {self.coef.shape} / {self.sa_coef.shape} / "
                             f"{self.role_coef.shape}, expected {(n, len(LABELS))} / {(n,)} / "
                             f"{(n, k)}")
        cols = [ROLES.index(t.role) for t in LABELS]
        joint = np.ascontiguousarray(self.coef + self.role_coef[:, cols], dtype=np.float32)
        joint[len(self.vocab) + _BIAS] += self.intercept + self.role_intercept[cols]
        coef = self.coef
        if self.embed is not None:
            # the folded word rows (``Encoder.encode(..., fold=True)``): each word's vector
            # times the ``emb:h`` / ``emb:b`` weights, so a mean of rows is the mean vector's
            # contribution
            e0, k = len(self.vocab) + len(DENSE_NAMES), self.embed.dim
            vec = self.embed.vectors.astype(np.float64)

            def folded(m: np.ndarray) -> np.ndarray:
                return np.vstack([m, vec @ m[e0:e0 + k], vec @ m[e0 + k:e0 + 2 * k]])

            joint = np.ascontiguousarray(folded(joint.astype(np.float64)), dtype=np.float32)
            coef = np.ascontiguousarray(folded(coef.astype(np.float64)), dtype=np.float32)
        object.__setattr__(self, "joint", joint)
        object.__setattr__(self, "explain_coef", coef)


_TYPE_SLOT = Tag.__dict__["type"]
_CONF_SLOT = Tag.__dict__["confidence"]
_EVIDENCE_SLOT = Tag.__dict__["evidence"]


class LinearTag(Tag):
    """A ``Tag`` whose evidence string is formatted on first read.

    The Monitor reads only ``type`` / ``role``; naming the top features (a sort of the
    contributions and a string) costs several microseconds per step, so it is deferred to
    the first ``.evidence`` read (reports, the ``tag`` CLI). Until then the tag holds the
    step's feature rows and values. Compares and hashes like a ``Tag`` with the same fields.
    """

    __slots__ = ("_why",)
    _why: tuple[Encoder, np.ndarray, list[int], np.ndarray, int] | None

    def __init__(self, type: StepType, confidence: float, evidence: str | None = None,
                 why: tuple[Encoder, np.ndarray, list[int], np.ndarray, int] | None = None
                 ) -> None:
        _TYPE_SLOT.__set__(self, type)
        _CONF_SLOT.__set__(self, confidence)
        _EVIDENCE_SLOT.__set__(self, evidence)
        object.__setattr__(self, "_why", why)

    @property
    def evidence(self) -> str:
        ev: str | None = _EVIDENCE_SLOT.__get__(self, Tag)
        if ev is None:
            assert self._why is not None  # set until the evidence is formatted
            ev = _explain(*self._why)
            _EVIDENCE_SLOT.__set__(self, ev)
            object.__setattr__(self, "_why", None)
        return ev

    @evidence.setter
    def evidence(self, value: str) -> None:  # dataclass __setstate__ (pickle) sets fields
        _EVIDENCE_SLOT.__set__(self, value)
        object.__setattr__(self, "_why", None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Tag):
            return (self.type, self.confidence, self.evidence) == (
                other.type, other.confidence, other.evidence)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.type, self.confidence, self.evidence))

    def __reduce__(self) -> tuple[object, tuple[StepType, float, str]]:
        return (Tag, (self.type, self.confidence, self.evidence))


def _explain(enc: Encoder, coef: np.ndarray, idx: list[int], v: np.ndarray, c: int) -> str:
    """``features: a, b, c``: the (up to 3, distinct) features with the largest positive
    contributions to class ``c``, ties in feature order."""
    contrib = (coef.take(idx, 0)[:, c] * v).tolist()
    order = sorted(range(len(contrib)), key=contrib.__getitem__, reverse=True)[:3]
    feats: list[str] = []
    for j in order:
        if contrib[j] <= 0:
            break
        n = enc.name(idx[j])
        if n not in feats:
            feats.append(n)
    return "features: " + (", ".join(feats) if feats else "bias")


_CACHE: dict[Path, LinearWeights] = {}
_LOCK = threading.Lock()


def _load(path: Path) -> LinearWeights:
    key = path.resolve()
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    with _LOCK:
        if key not in _CACHE:
            if not key.exists():
                raise FileNotFoundError(
                    f"no tagger weights at {key}: run `python scripts/train_tagger.py`"
                )
            with np.load(key) as z:
                version = int(z["feature_version"])
                labels = [str(s) for s in z["labels"]]
                if version != FEATURE_VERSION or labels != [t.value for t in LABELS]:
                    raise ValueError(
                        f"{key} was trained for feature version {version} with labels "
                        f"{labels}; this code needs version {FEATURE_VERSION}: retrain with "
                        "`python scripts/train_tagger.py`"
                    )
                _CACHE[key] = LinearWeights(
                    np.ascontiguousarray(z["coef"], dtype=np.float32),
                    np.ascontiguousarray(z["intercept"], dtype=np.float32),
                    tuple(str(s) for s in z["vocab"]),
                    np.ascontiguousarray(z["sa_coef"], dtype=np.float32),
                    float(z["sa_intercept"]),
                    np.ascontiguousarray(z["role_coef"], dtype=np.float32),
                    np.ascontiguousarray(z["role_intercept"], dtype=np.float32),
                    # the offline encoder, a file next to this one (``embed``: its name)
                    load_embedding(key.parent / str(z["embed"])) if "embed" in z else None,
                )
    return _CACHE[key]


_ENCODERS: dict[int, tuple[LinearWeights, Encoder]] = {}


def _encoder(w: LinearWeights) -> Encoder:
    hit = _ENCODERS.get(id(w))
    if hit is not None and hit[0] is w:
        return hit[1]
    enc = Encoder(w.vocab, w.embed)
    _ENCODERS[id(w)] = (w, enc)
    return enc


class LinearTagger:
    """Softmax regression over ``Encoder.encode``; evidence names the top-weighted features.

    Decoding picks the type that maximises p(type) * p(its macro role) under the type head
    and the role head (``scores`` / ``role_scores``); the confidence is that product,
    normalised over the 14 types. ``states_answer(text, context)`` is the probability that the
    step puts forward a candidate answer (``context.states_answer`` should be the answer
    extractor's verdict, as the Monitor gives it).
    """

    name = "linear"

    def __init__(self, weights: LinearWeights | None = None,
                 path: Path | str | None = None) -> None:
        self._path = Path(path) if path is not None else DEFAULT_WEIGHTS
        self._weights = weights
        self._enc: Encoder | None = None

    @classmethod
    def load(cls, path: Path | str = DEFAULT_WEIGHTS) -> LinearTagger:
        """A tagger reading (lazily, cached per path) the weights file at ``path``."""
        return cls(path=path)

    @property
    def weights(self) -> LinearWeights:
        """The model (loaded on first use)."""
        if self._weights is None:
            self._weights = _load(self._path)
        return self._weights

    @property
    def encoder(self) -> Encoder:
        if self._enc is None:
            self._enc = _encoder(self.weights)
        return self._enc

    def _logits(self, text: str, context: TagContext) -> tuple[np.ndarray, list[int],
                                                               np.ndarray, np.ndarray]:
        w = self.weights
        idx, vals = self.encoder.encode(text, context)
        v = np.array(vals, dtype=np.float32)
        rows = w.coef.take(idx, 0)
        z = v @ rows
        z += w.intercept
        return z, idx, v, rows

    def scores(self, text: str, context: TagContext = _NO_CONTEXT) -> np.ndarray:
        """Class probabilities in the order of ``LABELS``."""
        z = self._logits(text, context)[0]
        z = np.exp(z - z.max())
        p: np.ndarray = z / z.sum()
        return p

    def states_answer(self, text: str, context: TagContext = _NO_CONTEXT) -> float:
        """Probability that the step puts forward a candidate answer to the whole question."""
        w = self.weights
        idx, vals = self.encoder.encode(text, context, sa=True)
        z = float(np.asarray(vals, dtype=np.float32) @ w.sa_coef[idx]) + w.sa_intercept
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0

    def role_scores(self, text: str, context: TagContext = _NO_CONTEXT) -> np.ndarray:
        """The role head's probabilities in the order of ``ROLES``."""
        w = self.weights
        idx, vals = self.encoder.encode(text, context)
        z = np.asarray(vals, dtype=np.float32) @ w.role_coef.take(idx, 0) + w.role_intercept
        z = np.exp(z - z.max())
        p: np.ndarray = z / z.sum()
        return p

    def tag(self, text: str, context: TagContext = _NO_CONTEXT) -> Tag:
        w = self._weights or self.weights
        enc = self._enc or self.encoder
        idx, vals = enc.encode(text, context, fold=True)
        v = np.array(vals, dtype=np.float32)
        # the product of the two heads, p(type) * p(role of the type): the type head is trained
        # with balanced class weights (it ranks the types), the unweighted role head brings the
        # roles' priors back (the stopping criteria consume roles); one matrix, ``joint``
        zl = v.dot(w.joint.take(idx, 0)).tolist()  # == v @ rows, with less dispatch
        top = max(zl)
        c = zl.index(top)
        conf = 1.0 / sum([_exp(x - top) for x in zl])
        return LinearTag(LABELS[c], min(max(conf, 0.0), 1.0), None,
                         (enc, w.explain_coef, idx, v, c))

"""The states-answer head: does a step put forward a candidate answer to the whole question?

A small logistic model, numpy only at run time, that reads each step as the Monitor sees it:
the step's text, the question's facts (options, numbers, what it asks for), the previous
step's text and the answer reader's picture (the explicit statement it found, the candidate it
credited to the step, the current tracked candidate). It never changes what the reader tracks
or what a policy sees: the Monitor only reports its verdict per step (``StatesVerdict``:
flag, probability, one line of evidence). docs/tagger.md, "States-answer head".

Features (all named strings, looked up in the vocabulary stored with the weights; unseen
names are dropped; ``features`` builds them; at run time ``StatesWeights.z`` sums the same
weights without building the names, and the evidence names them on first read):

- ``o:`` the head's first word, ``h:`` / ``hh:`` unigrams / bigrams of the head (first line,
  bullets stripped, first ``HEAD_WORDS`` words), ``t:`` / ``tt:`` unigrams / bigrams of the
  tail (the last ``TAIL_CHARS`` characters), ``l:`` / ``ll:`` the first word / two words of the
  tail's last sentence, and ``FORMAT:tt:`` / ``FORMAT:l:`` / ``FORMAT:ll:`` those crossed with
  the answer format; numbers fold to ``#``, option letters of a multiple-choice question to
  ``<L>`` and the words found in one of its options only (cue words aside) to ``<W>``, a run
  of them as one ("so <W> must be the answer" carries to a question never seen);
- ``r:`` the reader: an explicit statement (``r:strong``), a candidate credited to the step
  (``r:stated``, by kind), the current candidate named in the step / its tail / its last
  sentence, no candidate yet (``r:none_yet``);
- ``u:`` the last sentence: a question, a hedge, a conclusion, a negation, a source ("the
  source says"), a supposition ("if", "would"), a check ("verify", "indeed"); ``u:cand_*`` a
  candidate of the format (a new number, an option, yes / no, a comparison) in the last
  sentence / the tail and how the last sentence puts it, and whether it is the current
  candidate or another, the same names for every format;
- ``m:`` math: the tail's / the last sentence's last number new to the question, the step
  ending on a number, boxed, the last sentence's last number an integer or a decimal, in an
  expression (√, /, ^, \\frac), one of three or more, the last value sentence, the
  question's ask words named in the tail / the last sentence; ``c:`` choice: option letters
  (``cl:`` / ``cr:`` the words around each letter of the last sentence), option contents, an
  option's own words, a phrase of its own (two consecutive content words in that option
  only), compact symbol or leading number named in the last sentence / tail / body,
  option-by-option verdict lists; ``y:`` yes / no in the tail, head or last sentence, the
  question's ask words in the last sentence, with a comparison word ("so the Typhoon is
  faster");
- ``p:`` position (index buckets, short / long step), ``v:`` the previous step (current
  candidate named in its tail, ending on a question); ``r:credited`` / ``r:not_credited``
  only when ``StatesContext.credited`` is known (one step late; the shipped head never sees
  it);
- all of the above but the grams also crossed with the answer format (``FORMAT|name``).
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from tracestop.answers.extract import value_sentences

__all__ = [
    "DEFAULT_STATES_WEIGHTS",
    "STATES_VERSION",
    "StatesContext",
    "StatesHead",
    "StatesVerdict",
    "StatesWeights",
    "features",
    "states_context",
]

#: Bump when the features change; the weights file records it and a mismatch is an error.
STATES_VERSION = 4
HEAD_WORDS = 8
#: the head's words are read from its first characters only
HEAD_CHARS = 160
TAIL_CHARS = 300
DEFAULT_STATES_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "states.npz"

#: ``[a-z]+(?:'[a-z]+)?|[#=?:]`` and ``\d+(?:[.,]\d+)*``, written to start with a character
#: class: the regex engine then skips straight to the next place a match can start
_TOKEN = re.compile(r"[a-z#=?:](?:(?<=[a-z])[a-z]*(?:'[a-z]+)?)?")
_NUM = re.compile(r"\d\d*(?:[.,]\d+)*")
#: an option letter, not in a word nor a symbol (C_s, C_2h): ``(?<![A-Za-z])([A-J])(?![A-Za-z_])``
#: written to start with the letter (the regex engine skips to the next one), the look-behind
#: after it (two characters: the one before is no letter)
_LETTER = re.compile(r"([A-J])(?<![A-Za-z][A-J])(?![A-Za-z_])")
_AS_LETTER = {"qqletter": "<L>"}
_BULLET = re.compile(r"^[\s*\-•#>]+")
_WORDS = re.compile(r"[a-z0-9%.][a-z0-9%.]*")  # [a-z0-9%.]+, class first
#: the last word character of a string, found from its end: the step ends on a number
#: (``\d[^\w]*$``) exactly when it is a digit (``\d`` is ``str.isdecimal``, a digit is a word character)
_LAST_WORD = re.compile(r"(?s:.*)\w")
_INDEX_BUCKETS = (0, 1, 3, 6, 11, 21, 41, 81)
_END_CHARS = " \t\n.!?*)"
_CAND_LAST = frozenset(("m:last_new_number", "c:letter_last", "c:letters_last", "c:words_last",
                        "c:wordss_last", "y:yesno_last", "y:compare_last"))
_CAND_TAIL = frozenset(("m:tail_new_number", "c:letter_tail", "c:letters_tail", "c:words_tail",
                        "c:wordss_tail", "y:yes_tail", "y:no_tail"))
#: how the last sentence puts a candidate (``u:cand_*``), in the order they are named
_CAND_HOW = {d: f"u:cand_{d[2:]}" for d in ("u:question_last", "u:hedge_last", "u:decisive_last",
                                             "u:negative_last", "u:source_last", "u:if_last",
                                             "u:check_last", "u:endorse_last")}
#: ``p:index*`` by step index, up to the last bucket's start
_INDEX_NAMES = tuple(f"p:index{max(lo for lo in _INDEX_BUCKETS if lo <= i)}"
                     for i in range(_INDEX_BUCKETS[-1] + 1))
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_CONTENT = re.compile(r"[a-z][a-z0-9]{2,}")
_COMPACT = re.compile(r"[a-z0-9][a-z0-9]*(?:\.[a-z0-9]+)*")  # class first
_SYMBOLS = re.compile(r"[\\$_{}^*]")
_STOP = frozenset((
    "the", "and", "for", "with", "that", "this", "are", "was", "were", "not", "but", "from",
    "its", "their", "than", "more", "less", "all", "any", "only", "both", "each", "which",
    "what", "who", "has", "have", "had", "been", "being", "into", "onto", "over", "under",
    "can", "could", "should", "would", "will", "may", "might", "must", "one", "two", "there",
))
_OPTION_LINE = re.compile(r"(?m)^[\s*\-•>]*\(?([A-J])[).:]\**\s*(.*)$")
_POSITIVE = frozenset(("yes", "true", "correct", "matches", "fits", "consistent", "best",
                       "right"))
_NEGATIVE = frozenset(("no", "not", "false", "incorrect", "wrong", "unlikely", "isn't",
                       "doesn't", "eliminate", "eliminated", "eliminates", "eliminating", "ruled"))
_HEDGE = frozenset(("seem", "seems", "likely", "plausible", "probably", "perhaps", "maybe",
                    "might", "leaning", "guess", "suspect", "appear", "appears"))
_DECISIVE = frozenset(("so", "therefore", "thus", "hence", "answer", "final", "conclude",
                       "correct", "choose", "pick", "select"))
_DECISIVE_PHRASES = ("must be", "only one", "go with")
_YES_NO = frozenset(("yes", "no"))
#: the words of a comparison (a yes / no question such as "is X faster than Y?")
_COMPARE = frozenset((
    "faster", "slower", "larger", "smaller", "bigger", "higher", "lower", "longer", "shorter",
    "more", "less", "earlier", "later", "before", "after", "older", "younger", "heavier",
    "lighter", "denser", "greater", "fewer", "further", "farther", "closer", "taller", "deeper",
    "wider", "hotter", "colder", "stronger", "weaker", "north", "south", "east", "west"))
#: what a source says ("the source says J"), a supposition ("if ... would be"), a check
_SOURCE = frozenset(("source", "sources", "says", "said", "according", "found", "search",
                     "searching", "reference", "references", "bank", "key", "provided", "given",
                     "website", "textbook"))
_CUES_EXTRA = ("answer", "option", "options", "choice", "question", "because", "which", "about",
               "then", "correct", "best", "most", "likely")
_IF = frozenset(("if", "would", "suppose", "assume", "assuming", "what"))
_CHECK = frozenset(("check", "checks", "verify", "verifies", "verified", "confirm", "confirms",
                    "confirmed", "indeed", "again", "recheck", "double"))
#: a candidate endorsed ("fits", "the closest", "most likely", "I'm confident it's H")
_ENDORSE = frozenset(("fits", "fit", "matches", "match", "aligns", "align", "closest",
                      "confident", "leaning", "lean", "standard", "perfectly", "best",
                      "plausible", "consistent", "strongest", "accurate", "appropriate",
                      "suitable", "ideal", "remaining", "left", "sure"))
_CUES = (_HEDGE | _DECISIVE | _NEGATIVE | _POSITIVE | _SOURCE | _IF | _CHECK | _ENDORSE
         | frozenset(_CUES_EXTRA))
#: a sentence end in a tail: ``.!?`` before a space, or a line end
_SENT_END = re.compile(r"[.!?](?=\s)|\n")
_YES_NO_WORD = re.compile(r"\b(?:yes|no)\b", re.IGNORECASE)
#: the cue groups of the sentence that holds the tail's last candidate (``k:``)
_K_CUES = (("k:hedge", _HEDGE), ("k:decisive", _DECISIVE), ("k:negative", _NEGATIVE),
           ("k:source", _SOURCE), ("k:if", _IF), ("k:check", _CHECK), ("k:endorse", _ENDORSE))


@dataclass(frozen=True, slots=True)
class StatesContext:
    """What the head knows besides the step text, all of it there at run time.

    ``strong``: the reader found an explicit statement (boxed, "the answer is", an option
    cue); ``stated``: the kind of the candidate the reader credited to this step when it read
    it ("" when none); ``current``: the tracked candidate before this step (None: none yet);
    ``options``: letter → normalised option text; ``numbers`` / ``ask``: the question's numbers
    and ask words; ``previous``: the previous step's text."""

    index: int = 0
    answer_format: str = "math"
    strong: bool = False
    stated: str = ""
    current: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    numbers: frozenset[str] = frozenset()
    ask: frozenset[str] = frozenset()
    previous: str = ""
    #: whether the answer tracker credited a candidate to this step, known once the next step
    #: is read (``tracestop.policies.candidates_by_step``); None: not known (the Monitor reads
    #: the head as each step is added, so the shipped head is trained without it)
    credited: bool | None = None


class StatesVerdict:
    """The head's verdict on one step: ``flag`` (p >= the shipped threshold), ``p`` and
    ``evidence``: the three features that pushed most towards the verdict, one line, formatted
    on first read (the Monitor reads it only for its report)."""

    __slots__ = ("_evidence", "_parts", "flag", "p")

    def __init__(self, flag: bool, p: float, evidence: str = "",
                 parts: Callable[[], tuple[list[str], list[float]]] | None = None) -> None:
        self.flag = flag
        self.p = p
        self._evidence = evidence
        self._parts = parts

    @property
    def evidence(self) -> str:
        if self._parts is not None:
            names, contrib = self._parts()
            order = sorted(range(len(names)), key=lambda i: -contrib[i] if self.flag
                           else contrib[i])[:3]
            self._evidence = ", ".join(f"{names[i]} {contrib[i]:+.2f}" for i in order)
            self._parts = None
        return self._evidence

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, StatesVerdict) and (self.flag, self.p, self.evidence)
                == (other.flag, other.p, other.evidence))

    def __hash__(self) -> int:
        return hash((self.flag, self.p))

    def __repr__(self) -> str:
        return f"StatesVerdict(flag={self.flag}, p={self.p:.3f}, evidence={self.evidence!r})"


def _tokens(text: str, letters: bool) -> list[str]:
    """Lower-case words, numbers as ``#``, the question's option letters as ``<L>``
    (``letters``), and ``=`` ``?`` ``:``."""
    if letters:
        low = _NUM.sub(" # ", _LETTER.sub(" qqletter ", text).lower().replace("#", " "))
        toks = _TOKEN.findall(low)
        return list(map(_AS_LETTER.get, toks, toks))  # "qqletter" → "<L>", the rest as is
    return _TOKEN.findall(_NUM.sub(" # ", text.lower().replace("#", " ")))


def _has_value(text: str, value: str) -> bool:
    v = value.strip()
    if not v:
        return False
    if v.replace(".", "", 1).replace(",", "").lstrip("-").isdigit():
        if v.replace(",", "")[-3:] not in text:  # a quick no: its last 3 characters are
            return False                          # there, unbroken, in any match
        nums = _NUM.findall(text)
        vv = v.replace(",", "")
        if "," not in text:  # no number holds a comma
            return vv in nums
        return any(n.replace(",", "") == vv for n in nums)
    if len(v) == 1 and v.isalpha():
        up = v.upper()
        return up in text and up in _LETTER.findall(text)
    return v.lower() in text.lower()


def _last_start(tail: str) -> int:
    """Where the tail's last sentence (or line) starts: after the last sentence end before its
    own end (a sentence end is never inside a token: the tail's tokens are those before it
    followed by those after)."""
    body = tail.rstrip(_END_CHARS)
    start = body.rfind("\n") + 1  # after the last line end
    n = len(body) - 1  # a sentence end is followed by a space: never the body's last character
    for c in ".!?":  # the last one followed by a space, after ``start``
        i = body.rfind(c, start, n)
        while i >= 0 and not body[i + 1].isspace():  # ``\s`` is ``str.isspace``
            i = body.rfind(c, start, i)
        if i >= 0:
            start = i + 1
    return start


#: ``_option_facts``: distinct word, compact text and leading number → letter, the letters,
#: phrase → letter, the words folded to ``<W>``
_OptionFacts = tuple[dict[str, str], dict[str, str], dict[str, str], frozenset[str],
                     dict[tuple[str, str], str], frozenset[str]]


@lru_cache(maxsize=256)
def _option_facts(options: tuple[tuple[str, str], ...]) -> _OptionFacts:
    """Per question, once: word → letter for content words in one option only; compact short
    option text ("c2h", "cs") → letter; leading number → letter; the letters; phrase → letter
    for pairs of consecutive content words in one option only ("contingent executory" when
    "executory" and "contingent" are each in several)."""
    words: dict[str, set[str]] = {}
    pairs: dict[tuple[str, str], set[str]] = {}
    for k, v in options:
        content = _content(v)
        for w in set(content):
            words.setdefault(w, set()).add(k)
        for pr in set(pairwise(content)):
            pairs.setdefault(pr, set()).add(k)
    distinct = {w: next(iter(ks)) for w, ks in words.items() if len(ks) == 1}
    phrases = {pr: next(iter(ks)) for pr, ks in pairs.items() if len(ks) == 1
               and pr[0] not in distinct and pr[1] not in distinct}  # else the words tell
    compact: dict[str, set[str]] = {}
    numbers: dict[str, set[str]] = {}
    for k, v in options:
        c = v.replace(" ", "")
        if 1 < len(c) <= 12 and not c.replace(".", "").isdigit():
            compact.setdefault(c, set()).add(k)
        m = _NUM.match(v)
        if m:
            numbers.setdefault(m.group().replace(",", ""), set()).add(k)
    one_c = {c: next(iter(ks)) for c, ks in compact.items() if len(ks) == 1}  # ambiguous out
    one_n = {n: next(iter(ks)) for n, ks in numbers.items() if len(ks) == 1}
    fold = frozenset(w for w in distinct if w not in _CUES)  # not "likely", "correct"
    return distinct, one_c, one_n, frozenset(k for k, _ in options), phrases, fold


def _fold(toks: list[str], fold: frozenset[str]) -> list[str]:
    """``toks`` with the options' own words as ``<W>``, a run of them as one."""
    out: list[str] = []
    for t in toks:
        if t in fold:
            if out and out[-1] == "<W>":
                continue
            t = "<W>"
        out.append(t)
    return out


def _content(text: str) -> list[str]:
    """The content words of a lower-case text, in order (``_CONTENT``, not in ``_STOP``)."""
    return [w for w in _CONTENT.findall(text) if w not in _STOP]


def _choice(text: str, tail: str, last: str, toks: list[str], first: str, ctx: StatesContext,
            facts: _OptionFacts, dense: list[str]) -> None:
    """The multiple-choice features (module docstring, ``c:``); ``toks``: the last
    sentence's tokens."""
    distinct, compact, numbers, letters, phrases, _ = facts
    letters_all = letters.intersection(_LETTER.findall(text))
    letters_tail = letters.intersection(_LETTER.findall(tail)) if letters_all else letters_all
    letters_last = letters.intersection(_LETTER.findall(last)) if letters_tail else letters_tail
    if letters_tail:
        dense.append("c:letter_tail" if len(letters_tail) == 1 else "c:letters_tail")
    if letters_all:
        dense.append("c:letter_body" if len(letters_all) == 1 else "c:letters_body")
    if letters_last:
        dense.append("c:letter_last" if len(letters_last) == 1 else "c:letters_last")
        if ctx.current is not None:
            dense.append("c:last_current" if ctx.current in letters_last else "c:last_new")
        for i, t in enumerate(toks):
            if t == "<L>":
                dense.append(f"cl:{toks[i - 1]}" if i else "cl:^")
                dense.append(f"cr:{toks[i + 1]}" if i + 1 < len(toks) else "cr:$")
    low_tail = " " + " ".join(_WORDS.findall(tail.lower())) + " "
    low = " " + " ".join(_WORDS.findall(text.lower())) + " "
    named_tail = [k for k, v in ctx.options.items() if f" {v} " in low_tail]
    by_content = [k for k, v in ctx.options.items() if f" {v} " in low]
    if named_tail:
        dense.append("c:content_tail" if len(named_tail) == 1 else "c:contents_tail")
    if by_content:
        dense.append("c:content_body" if len(by_content) == 1 else "c:contents_body")
    if first[:2].rstrip(":.)") in letters and len(first) > 1:
        dense.append("c:starts_option")
    # the option's own words, compact symbols and numbers in the last sentence / the tail
    for name, part in (("last", last), ("tail", tail)):
        low_part = part.lower()
        hits: dict[str, int] = {}
        if distinct or phrases:
            content = _content(low_part)
            for w in content:
                k = distinct.get(w)
                if k is not None:
                    hits[k] = hits.get(k, 0) + 1
            said = [phrases[pr] for pr in pairwise(content) if pr in phrases] if phrases else []
            if said:
                dense.append(f"c:phrase_{name}")
                for k in said:
                    hits[k] = hits.get(k, 0) + 2
        if compact:
            for w in _COMPACT.findall(_SYMBOLS.sub("", low_part)):
                k = compact.get(w)
                if k is not None:
                    hits[k] = hits.get(k, 0) + 2
        if numbers:
            for n in _NUM.findall(part):
                k = numbers.get(n.replace(",", ""))
                if k is not None:
                    hits[k] = hits.get(k, 0) + 2
        strong = [k for k, c in hits.items() if c >= 2]
        if strong:
            dense.append(f"c:words_{name}" if len(strong) == 1 else f"c:wordss_{name}")
            if name == "last" and ctx.current is not None:
                dense.append("c:words_current" if ctx.current in strong else "c:words_new")
    # an option-by-option verdict list: how many options it keeps / rejects
    pos = neg = 0
    for m in _OPTION_LINE.finditer(text):
        words = _TOKEN.findall(m.group(2).lower())
        if not _POSITIVE.isdisjoint(words) or "✓" in m.group(2):
            pos += 1
        elif not _NEGATIVE.isdisjoint(words) or "✗" in m.group(2):
            neg += 1
    if pos or neg:
        dense.append("c:list_one_pos" if pos == 1 else ("c:list_pos" if pos else "c:list_no_pos"))
        if neg >= 2:
            dense.append("c:list_neg")


def _cand_sentence(tail: str, start: int, fmt: str, ctx: StatesContext,
                   facts: _OptionFacts | None, dense: list[str]) -> None:
    """``k:`` how the sentence that holds the tail's last candidate (before the last sentence:
    a new number, an option letter, yes / no) puts it, and how far before the end it is."""
    before = tail[:start]
    pos = -1
    if fmt == "math":
        for m in _NUM.finditer(before):
            if m.group().replace(",", "") not in ctx.numbers:
                pos = m.start()
    elif facts is not None:
        letters = facts[3]
        for m in _LETTER.finditer(before):
            if m.group(1) in letters:
                pos = m.start()
    else:
        for m in _YES_NO_WORD.finditer(before):
            pos = m.start()
    if pos < 0:
        return
    e = _SENT_END.search(before, pos)
    end = e.end() if e is not None else start
    seg = before[:end]
    sent = seg[_last_start(seg):].strip()
    words = set(_TOKEN.findall(sent.lower()))
    dense.append("k:cand")
    dense += [name for name, cues in _K_CUES if not cues.isdisjoint(words)]
    if sent.endswith("?"):
        dense.append("k:question")
    if len(tail) - end < 80:
        dense.append("k:near_end")


def features(text: str, ctx: StatesContext) -> list[str]:
    """The step's feature names (module docstring); duplicates count once."""
    fmt, head_toks, tail_toks, last_toks, dense = _read(text, ctx)
    out: list[str] = []
    if head_toks:
        out.append(f"o:{head_toks[0]}")
    out += [f"h:{t}" for t in head_toks]
    out += [f"hh:{a}_{b}" for a, b in pairwise(head_toks)]
    out += [f"t:{t}" for t in tail_toks]
    tt = [f"{a}_{b}" for a, b in pairwise(tail_toks)]
    out += ["tt:" + g for g in tt]
    out += [f"{fmt}:tt:" + g for g in tt]
    if last_toks:
        out.append(f"l:{last_toks[0]}")
        out.append(f"{fmt}:l:{last_toks[0]}")
        if len(last_toks) > 1:
            out.append(f"ll:{last_toks[0]}_{last_toks[1]}")
            out.append(f"{fmt}:ll:{last_toks[0]}_{last_toks[1]}")
    out += dense
    out += [f"{fmt}|{d}" for d in dense]
    out.append("bias")
    return out


def _read(text: str, ctx: StatesContext
          ) -> tuple[str, list[str], list[str], list[str], list[str]]:
    """What ``features`` names, in parts: the format, the head / tail / last-sentence tokens
    (head and last sentence cut to their first words) and the dense features."""
    fmt = ctx.answer_format
    choice = fmt == "choice" and bool(ctx.options)
    stripped = text.strip()
    nl = stripped.find("\n")
    line = stripped if nl < 0 else stripped[:nl]
    first = _BULLET.sub("", line)
    tail = stripped[-TAIL_CHARS:]
    start = _last_start(tail)
    last = tail[start:].strip()
    n = len(stripped)
    # the head's tokens are those of the step before ``head_end``: the bullets cut from the
    # head are no token and touch none (a letter's look-behind sees no letter either way)
    head_end = min(len(line), len(line) - len(first) + HEAD_CHARS)
    if head_end >= n and n <= TAIL_CHARS:  # a one-line step, the head and the tail in full
        last_all = _tokens(last, choice)
        head_words = tail_toks = _tokens(tail[:start], choice) + last_all if start else last_all
    elif (not choice and n <= TAIL_CHARS and stripped[head_end] in " \t\n"
          and "\0" not in stripped and len(low := stripped.lower()) == n):
        # a step that is its own tail, read once: no token spans the head's end (a space or
        # the line end) nor the last sentence's start, and a lower case that keeps the length
        # keeps the positions; a NUL is put at each and the tokens read between them
        cuts = sorted({head_end, start} - {0})
        low = _NUM.sub(" # ", "\0".join([low[i:j] for i, j in pairwise((0, *cuts, n))])
                       .replace("#", " "))
        k = low.index("\0")
        if len(cuts) == 1:
            head_words = _TOKEN.findall(low, 0, k)
            tail_toks = head_words + _TOKEN.findall(low, k + 1)
            last_all = tail_toks[len(head_words):] if start else tail_toks
        else:
            k2 = low.index("\0", k + 1)
            a, b, c = (_TOKEN.findall(low, 0, k), _TOKEN.findall(low, k + 1, k2),
                       _TOKEN.findall(low, k2 + 1))
            tail_toks = a + b + c
            head_words, last_all = (a, c) if head_end < start else (a + b, b + c)
    else:
        last_all = _tokens(last, choice)
        tail_toks = _tokens(tail[:start], choice) + last_all if start else last_all
        head_words = _tokens(first[:HEAD_CHARS], choice)
    facts = _option_facts(tuple(ctx.options.items())) if choice else None
    if facts is not None:
        fold = facts[5]
        if fold:
            head_words, tail_toks, last_all = (_fold(head_words, fold), _fold(tail_toks, fold),
                                               _fold(last_all, fold))
    head_toks = head_words[:HEAD_WORDS]
    last_toks = last_all[:2]
    dense: list[str] = []
    # the reader
    if ctx.strong:
        dense.append("r:strong")
    if ctx.stated:
        dense += ["r:stated", f"r:stated={ctx.stated}"]
    if ctx.current is None:
        dense.append("r:none_yet")
    else:
        if _has_value(stripped, ctx.current):  # the tail and the last sentence are in it
            dense.append("r:current_body")
            if _has_value(tail, ctx.current):
                dense.append("r:current_tail")
                if _has_value(last, ctx.current):
                    dense.append("r:current_last")
    # the last sentence: a question, a hedge, a conclusion, a negation
    if last.endswith("?"):
        dense.append("u:question_last")
    low_last = last.lower()
    last_words = set(last_all)  # the cue words are plain words: untouched by the folding
    if not _HEDGE.isdisjoint(last_words):
        dense.append("u:hedge_last")
    if (not _DECISIVE.isdisjoint(last_words) or "must be" in low_last or "only one" in low_last
            or "go with" in low_last):  # _DECISIVE_PHRASES
        dense.append("u:decisive_last")
    if not _NEGATIVE.isdisjoint(last_words) or "✗" in last:
        dense.append("u:negative_last")
    if not _SOURCE.isdisjoint(last_words):
        dense.append("u:source_last")
    if not _IF.isdisjoint(last_words):
        dense.append("u:if_last")
    if not _CHECK.isdisjoint(last_words):
        dense.append("u:check_last")
    if not _ENDORSE.isdisjoint(last_words) or "most likely" in low_last:
        dense.append("u:endorse_last")
    # per format
    if fmt == "math":
        # the tail's numbers are those before the last sentence and the last sentence's (no
        # number spans a sentence end): the last one is the last sentence's when it has one
        last_nums = _NUM.findall(last)
        nums = last_nums if last_nums or not start else _NUM.findall(tail[:start])
        if nums:
            dense.append("m:tail_number")
            if nums[-1].replace(",", "") not in ctx.numbers:
                dense.append("m:tail_new_number")
        else:
            dense.append("m:tail_no_number")
        lw = _LAST_WORD.match(tail)  # as re.search(r"\d[^\w]*$", tail)
        if lw is not None and tail[lw.end() - 1].isdecimal():
            dense.append("m:ends_number")
        if "\\boxed" in text:
            dense.append("m:boxed")
        vs = value_sentences(text)  # memoised: the answer reader has just read them
        if vs:
            offset, value, sent, cue = vs[-1]
            dense.append("m:vs_cue" if cue else "m:vs")
            if offset + len(sent) >= len(text.rstrip()) - 3:
                dense.append("m:vs_last_cue" if cue else "m:vs_last")
            if value.replace(",", "") not in ctx.numbers:
                dense.append("m:vs_new")
            if ctx.previous and _has_value(ctx.previous, value):
                dense.append("m:vs_prev")
            if ctx.current is not None and value.strip() == ctx.current.strip():
                dense.append("m:vs_current")
            if len(vs) == 1:
                dense.append("m:vs_one")
        if ctx.ask:
            low = tail.lower()
            named = len([w for w in ctx.ask if w in low])
            if named:
                dense.append("m:ask_tail")
                if 2 * named >= len(ctx.ask):
                    dense.append("m:ask_tail_half")
                if any(w in low_last for w in ctx.ask):
                    dense.append("m:ask_last")
                    if last_nums:  # _NUM.search(last)
                        dense.append("m:ask_last_number")
        if last_nums:
            dense.append("m:last_number")
            if last_nums[-1].replace(",", "") not in ctx.numbers:
                dense.append("m:last_new_number")
            dense.append("m:last_decimal" if "." in last_nums[-1] else "m:last_integer")
            if any(c in last for c in "√/^π") or "\\frac" in last or "\\sqrt" in last:
                dense.append("m:last_expression")
            if len(last_nums) >= 3:
                dense.append("m:last_arithmetic")
    elif facts is not None:  # choice
        _choice(stripped, tail, last, last_all, first, ctx, facts, dense)
    elif fmt == "yesno":
        tail_words = set(tail_toks)
        if "yes" in tail_words:
            dense.append("y:yes_tail")
        if "no" in tail_words:
            dense.append("y:no_tail")
        if not _YES_NO.isdisjoint(head_words):
            dense.append("y:yesno_head")
        if not _YES_NO.isdisjoint(last_words):
            dense.append("y:yesno_last")
        # a comparison that answers a comparative question ("so the Typhoon is faster")
        if ctx.ask and not ctx.ask.isdisjoint(last_words):
            dense.append("y:ask_last")
            if not _COMPARE.isdisjoint(last_words) and not ctx.ask.isdisjoint(
                    last_words - _COMPARE):
                dense.append("y:compare_last")
    # a candidate of the format (a new number, an option, yes / no) in the last sentence / the
    # tail, and how the last sentence puts it: the same names for every format
    if not _CAND_LAST.isdisjoint(dense):
        dense.append("u:cand_last")
        dense += [_CAND_HOW[d] for d in _CAND_HOW if d in dense]
        if ctx.current is not None:
            dense.append("u:cand_current" if "r:current_last" in dense else "u:cand_other")
    if not _CAND_TAIL.isdisjoint(dense):
        dense.append("u:cand_tail")
        if start and "u:cand_last" not in dense:
            _cand_sentence(tail, start, fmt, ctx, facts, dense)
    # position and the previous step
    index = ctx.index
    dense.append(_INDEX_NAMES[index] if 0 <= index < len(_INDEX_NAMES)
                 else _INDEX_NAMES[-1] if index > 0 else "p:index0")
    if len(stripped) < 80:
        dense.append("p:short")
    elif len(stripped) > 1000:
        dense.append("p:long")
    if ctx.credited is not None:
        dense.append("r:credited" if ctx.credited else "r:not_credited")
    if ctx.previous:
        prev_tail = ctx.previous[-TAIL_CHARS:]
        if ctx.current is not None and _has_value(prev_tail, ctx.current):
            dense.append("v:current_tail")
        if prev_tail.rstrip().endswith("?"):
            dense.append("v:question")
    return fmt, head_toks, tail_toks, last_toks, dense


#: the gram groups of ``features`` ("h:word"); the last three are also crossed with the format
_GRAMS = ("o", "h", "hh", "t", "tt", "l", "ll")
_CROSSED_GRAMS = ("tt", "l", "ll")
#: one format's weights by group: gram groups keyed by the gram, "d" dense features keyed by
#: name, each already summed with its format-crossed twin; "bias"
_Tables = dict[str, dict[Any, float]]
#: bigram groups: keyed by the pair of tokens (no string built per bigram at run time)
_PAIRS = ("hh", "tt", "ll")
_ZERO = itertools.repeat(0.0)
#: ``StatesWeights._tables_for``: the intercept plus the bias, then the ``dict.get`` of the
#: groups o, h, hh, t, tt, l, ll, d
_Get = Callable[[Any, float], float]
_Getters = tuple[float, _Get, _Get, _Get, _Get, _Get, _Get, _Get, _Get]


def _tables(by_name: Mapping[str, float], fmt: str) -> _Tables:
    """``by_name`` regrouped for ``fmt`` (``StatesWeights.z``): one lookup per distinct gram
    or dense feature, no feature name built."""
    out: _Tables = {g: {} for g in (*_GRAMS, "d")}
    crossed: list[tuple[str, str, float]] = []
    formats = {n[:n.find("|")] for n in by_name if "|" in n}
    for name, w in by_name.items():
        if name == "bias":
            continue
        bar, colon = name.find("|"), name.find(":")
        if bar >= 0 and (colon < 0 or bar < colon):
            if name[:bar] == fmt:
                crossed.append(("d", name[bar + 1:], w))
            continue
        group, rest = name[:colon], name[colon + 1:]
        if group in _GRAMS:
            out[group][rest] = out[group].get(rest, 0.0) + w
        elif group in formats and rest.split(":", 1)[0] in _CROSSED_GRAMS:
            if group == fmt:
                g, gram = rest.split(":", 1)
                crossed.append((g, gram, w))
        else:
            out["d"][name] = out["d"].get(name, 0.0) + w
    for g, key, w in crossed:
        out[g][key] = out[g].get(key, 0.0) + w
    for g in _PAIRS:  # "a_b" → ("a", "b"): tokens hold no "_"
        out[g] = {tuple(k.split("_")): w for k, w in out[g].items()}
    out["bias"] = {"": by_name.get("bias", 0.0)}
    return out


@dataclass(frozen=True, slots=True)
class StatesWeights:
    """Vocabulary (feature name → column), weights, intercept, decision threshold."""

    vocab: Mapping[str, int]
    coef: np.ndarray
    intercept: float
    threshold: float
    names: tuple[str, ...] = ()
    #: answer format → its own decision threshold (formats not named use ``threshold``)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    #: feature name → weight, as Python floats (the evidence; training)
    by_name: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    #: answer format → its weights regrouped (``_tables``), built on first use per format
    _by_format: dict[str, _Tables] = field(default_factory=dict, init=False, compare=False,
                                           repr=False)
    #: answer format → ``_tables_for(format)``, built on first use per format
    _getters: dict[str, _Getters] = field(default_factory=dict, init=False, compare=False,
                                          repr=False)

    def __post_init__(self) -> None:
        if not self.by_name:
            coef = self.coef.tolist()
            self.by_name.update((n, float(coef[i])) for n, i in self.vocab.items())

    def z(self, text: str, ctx: StatesContext) -> float:
        """The logit of one step: the sum of its features' weights, each feature once, as
        ``features`` names them, without building the names."""
        fmt, head, tail, last, dense = _read(text, ctx)
        g = self._getters.get(fmt)
        if g is None:
            g = self._getters[fmt] = self._tables_for(fmt)
        base, o, h, hh, t, tt, lg, ll, d = g
        z = base
        if head:
            z += o(head[0], 0.0)
            z += sum(map(h, set(head), _ZERO))
            z += sum(map(hh, set(pairwise(head)), _ZERO))
        z += sum(map(t, set(tail), _ZERO))
        z += sum(map(tt, set(pairwise(tail)), _ZERO))
        if last:
            z += lg(last[0], 0.0)
            if len(last) > 1:
                z += ll((last[0], last[1]), 0.0)
        return z + sum(map(d, set(dense), _ZERO))

    def _tables_for(self, fmt: str) -> _Getters:
        """``fmt``'s tables (``_tables``, kept in ``_by_format``) as ``z`` reads them: the
        intercept plus the bias, then each group's ``dict.get`` in the order ``z`` adds them."""
        t = self._by_format.get(fmt)
        if t is None:
            t = self._by_format[fmt] = _tables(self.by_name, fmt)
        return (self.intercept + t["bias"][""], t["o"].get, t["h"].get, t["hh"].get,
                t["t"].get, t["tt"].get, t["l"].get, t["ll"].get, t["d"].get)

    @classmethod
    def load(cls, path: str | Path) -> StatesWeights:
        with np.load(Path(path), allow_pickle=False) as z:
            version = int(z["version"])
            if version != STATES_VERSION:
                raise ValueError(f"{path}: states-answer weights version {version}, the code "
                                 f"needs {STATES_VERSION} (retrain: scripts/train_states.py)")
            names = tuple(str(s) for s in z["vocab"])
            by_format = {str(f): float(t) for f, t in zip(z["formats"], z["format_thresholds"],
                                                            strict=True)}
            return cls({n: i for i, n in enumerate(names)}, np.asarray(z["coef"], np.float64),
                       float(z["intercept"]), float(z["threshold"]), names, by_format)

    def threshold_for(self, answer_format: str) -> float:
        """The decision threshold of ``answer_format``'s steps."""
        return self.thresholds.get(answer_format, self.threshold)

    def arrays(self) -> dict[str, Any]:
        """The arrays ``load`` reads back (``np.savez`` them)."""
        names = self.names or tuple(sorted(self.vocab, key=self.vocab.__getitem__))
        return {"version": np.array(STATES_VERSION), "vocab": np.array(names),
                "coef": self.coef.astype(np.float32), "intercept": np.array(self.intercept),
                "threshold": np.array(self.threshold),
                "formats": np.array(sorted(self.thresholds), dtype=str),
                "format_thresholds": np.array([self.thresholds[f] for f in sorted(self.thresholds)],
                                              dtype=np.float64)}


_CACHE: dict[str, StatesWeights] = {}
_LOCK = threading.Lock()


def _weights(path: str | Path) -> StatesWeights:
    key = str(path)
    w = _CACHE.get(key)
    if w is None:
        with _LOCK:
            w = _CACHE.get(key)
            if w is None:
                w = _CACHE[key] = StatesWeights.load(path)
    return w


class StatesHead:
    """The states-answer head (module docstring). Weights load on first use, cached per path;
    ``weights`` may also be a ``StatesWeights`` (cross-validation)."""

    def __init__(self, weights: StatesWeights | str | Path | None = None) -> None:
        self._given = weights if isinstance(weights, StatesWeights) else None
        self._path: str | Path = (DEFAULT_STATES_WEIGHTS if weights is None
                                  or isinstance(weights, StatesWeights) else weights)

    @property
    def weights(self) -> StatesWeights:
        w = self._given
        if w is None:  # loaded once per path (``_weights``), then kept here
            w = self._given = _weights(self._path)
        return w

    def columns(self, names: Iterable[str]) -> list[int]:
        """The vocabulary columns of ``names`` (each once, unseen names dropped)."""
        vocab = self.weights.vocab
        return sorted({vocab[n] for n in names if n in vocab})

    def contributions(self, text: str, ctx: StatesContext) -> tuple[list[str], list[float]]:
        """The step's features in the vocabulary and their weights (the evidence)."""
        get = self.weights.by_name.get
        names, contrib = [], []
        for n in dict.fromkeys(features(text, ctx)):
            c = get(n)
            if c is not None:
                names.append(n)
                contrib.append(c)
        return names, contrib

    def probability(self, text: str, ctx: StatesContext) -> float:
        """p(the step states an answer)."""
        z = self.weights.z(text, ctx)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def read(self, text: str, ctx: StatesContext) -> StatesVerdict:
        """The verdict on one step (its evidence is worked out and formatted on first read)."""
        w = self._given
        if w is None:
            w = self.weights
        z = w.z(text, ctx)
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        return StatesVerdict(p >= w.thresholds.get(ctx.answer_format, w.threshold), p,
                             parts=lambda: self.contributions(text, ctx))


def states_context(index: int, answer_format: str, strong: bool, stated: str,
                   current: str | None, question: Any, previous: str) -> StatesContext:
    """A ``StatesContext`` from the Monitor's pieces (``question``: the reader's
    ``QuestionFacts``)."""
    return StatesContext(index, answer_format, strong, stated, current,
                         _options_map(question.options), question.numbers, question.ask, previous)


@lru_cache(maxsize=256)
def _options_map(options: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
    """A question's options as a read-only mapping, built once per question, not per step."""
    return MappingProxyType(dict(options))

"""Candidate answers stated in a step: ``\\boxed{…}``, "the answer is …", "**Final Answer**",
option letters, YES/NO, and values in concluding sentences.

Extraction is regex-based and cheap; it never decides whether two answers are the same
(``tracestop.answers.equivalence`` does).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from functools import lru_cache

from tracestop.answers.formats import AnswerFormat
from tracestop.answers.question import norm_option

__all__ = [
    "conclusions",
    "extract_candidate",
    "extract_candidates",
    "value_key",
    "value_sentences",
]

# --- extraction -----------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FINAL_ANSWER = re.compile(r"\*\*\s*final answer\s*:?\s*\*\*\s*:?\s*", re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"\b(?:final answer|the answer|answer)\s+(?:is|would be|should be|must be|will be)\s*:?\s*",
    re.IGNORECASE,
)
_CONCLUSION = re.compile(
    r"(?:^|(?<=[.!?\n])\s*)(?:so|therefore|thus|hence|finally|in conclusion)\b[, ]",
    re.IGNORECASE,
)
#: ``-?\$?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?%?``, written to open with a character class
#: (the regex engine then skips to the next ``-``, ``$`` or digit): the same matches
_NUMBER = re.compile(
    r"[-$\d](?:(?<=-)\$?\d+|(?<=\$)\d+|(?<=\d)\d*)(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?%?"
)
_LATEX_VALUE = re.compile(r"\\d?frac\{[^{}]*\}\{[^{}]*\}|\\sqrt\{[^{}]*\}|\\pi")

_LETTER = r"\(?\**([A-J])\**\)?(?![A-Za-z0-9'])"
_CHOICE_PATTERNS = (
    ("boxed", re.compile(r"\\boxed\s*\{\s*\(?([A-J])\)?\s*\}")),
    (
        "answer-is",
        re.compile(
            r"\b(?:answer|choice|option)\s*(?:is|would be|should be|must be|remains|=|:)\s*(?:option\s+|choice\s+)?"
            + _LETTER,
            re.IGNORECASE,
        ),
    ),
    (
        "conclusion",
        re.compile(
            r"\b(?:go with|choose|select|pick|leaning (?:towards?|toward)|conclusion(?: remains| is)?:?)\s+(?:option\s+|choice\s+)?"
            + _LETTER,
            re.IGNORECASE,
        ),
    ),
    (
        "conclusion",
        re.compile(
            r"\b(?:option|choice)\s+\(?([A-J])\)?\s+(?:is|remains|seems)\s+(?:the\s+|much\s+|clearly\s+|definitely\s+)?"
            r"(?:(?:more|most)\s+)?(?:best|correct|right|likely|standard|strongest|only)",
            re.IGNORECASE,
        ),
    ),
    (
        # "F is the only one left", "H seems like the most sound answer" (a capital letter
        # directly before "is" is an option, not the article)
        "conclusion",
        re.compile(
            r"(?<![\w'])(?<![Oo]ption )(?<![Cc]hoice )\(?\**([A-J])\**\)?\s+(?:is|seems|looks)\s+(?:like\s+)?(?:the\s+|clearly\s+|definitely\s+)*"
            r"(?:only|most|best|correct|right)\b"
        ),
    ),
    (
        # an option list judged line by line: "F. not prevail, because ... (Yes)", "H: Yes, ...",
        # "F. Matched description - Correct reason ..."
        "conclusion",
        re.compile(
            r"(?im)^[ \t]*(?:[*-][ \t]*)?\(?([A-J])[.):][ \t]*(?:yes\b|[^\n]*\((?:yes|correct)\)[ \t]*$"
            r"|[^\n]*?[ \t][-–—][ \t]*correct\b)"
        ),
    ),
    (
        # "Let's stick with E", "I'm more confident in C", "Everything confirms Option A",
        # "Matches Option A", "consistent with choice A" (issue 16: mid-trace Gemma answers)
        "conclusion",
        re.compile(
            r"\b(?:stick with|settle on|settling on|confident (?:in|with|about)|lean towards?|"
            r"confirms?|(?:consistent|matches|match|fits?|agrees?) with|matches|points? (?:to|towards?))\s+"
            r"(?:option\s+|choice\s+|answer\s+)" + _LETTER,
            re.IGNORECASE,
        ),
    ),
    (
        "conclusion",
        re.compile(r"\b(?:stick with|settle on|confident in|let's try|let's go with)\s+[\"“']?([A-J])\b[\"”']?(?![A-Za-z0-9'])"),
    ),
    (
        # "Option E ("the thesis ...") is the most direct definition", "Choice C is the direct
        # answer", "A is the closest", "D seems more likely to be correct", ""E" is the standard"
        "conclusion",
        re.compile(
            r"(?:\b(?:[Oo]ption|[Cc]hoice)\s+|(?<![\w'])[\"“]?)\(?([A-J])\)?[\"”]?(?:\s*\([^()\n]{0,160}\))?\s+"
            r"(?:is|seems|looks|remains)\s+(?:like\s+)?(?:the\s+|a\s+|much\s+|clearly\s+|definitely\s+|still\s+)*"
            r"(?:closest|more likely|most likely|most plausible|most direct|direct answer|intended answer|"
            r"(?:much\s+)?better (?:fit|answer|choice|match)|standard (?:way|answer|definition)|strongest|"
            r"most accurate|most appropriate|best fit)\b"
        ),
    ),
    ("final-answer", re.compile(r"==>\s*\(?([A-J])\b")),
)
_YESNO_PATTERNS = (
    ("boxed", re.compile(r"\\boxed\s*\{\s*(?:\\text\{)?\s*(YES|NO|Yes|No|yes|no)\b")),
    (
        "answer-is",
        re.compile(
            r"\banswer\s+(?:is|would be|should be|must be)\s*:?\s*\**\s*(yes|no)\b", re.IGNORECASE
        ),
    ),
    ("final-answer", re.compile(r"(?<![A-Za-z])(YES|NO)(?![A-Za-z])")),
)


#: For each of ``_CHOICE_PATTERNS``, words one of which every match holds (``None``: none
#: needed), and whether they are looked for case-blind (in ``_folded`` text, for a pattern
#: read with ``re.IGNORECASE``) or as written: a step holding none of them is not searched.
_CHOICE_NEEDS: tuple[tuple[tuple[str, ...] | None, bool], ...] = (
    (None, False),
    (("answer", "choice", "option"), True),
    (("go with", "choose", "select", "pick", "leaning", "conclusion"), True),
    (("option", "choice"), True),
    (("only", "most", "best", "correct", "right"), False),
    (("yes", "correct"), True),
    (("option", "choice", "answer"), True),
    (("stick with", "settle on", "confident in", "let's try", "let's go with"), False),
    (("closest", "likely", "plausible", "direct", "intended answer", "better ", "standard ", "strongest",
      "accurate", "appropriate", "best fit"), False),
    (None, False),
)
#: the characters other than ASCII letters that ``re.IGNORECASE`` matches to one (İ, ı, ſ and
#: the Kelvin sign), as that letter
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


def _folded(text: str) -> str:
    """``text`` lower-cased so that a word a case-blind pattern can match in it is in it."""
    return text.lower() if text.isascii() else text.translate(_FOLD).lower()


#: Bounds on the work done per step (a model in a loop can write anything): a value longer than
#: ``MAX_VALUE`` characters is not an answer; only the last ``MAX_STATEMENTS`` statements of each
#: kind ("the answer is", "Final Answer", concluding sentences) and the last ``MAX_SENTENCES``
#: sentences of a step are read; a sentence longer than ``MAX_SENTENCE`` characters states no value.
MAX_VALUE = 256
MAX_STATEMENTS = 256
MAX_SENTENCES = 2048
MAX_SENTENCE = 4000


def _balanced(text: str, open_at: int) -> tuple[str, int] | None:
    """Content of the brace group whose ``{`` is at ``open_at``, and the index after it; ``None``
    when it does not close, or closes after more than ``MAX_VALUE`` characters."""
    depth = 0
    for i in range(open_at, min(len(text), open_at + MAX_VALUE + 2)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i], i + 1
    return None


_BRACE = re.compile(r"[{}]")


def _brace_pairs(text: str, start: int) -> dict[int, int]:
    """Every ``{`` at or after ``start`` that closes → the index of its ``}``: one pass with a stack."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text, start):
        i = m.start()
        if text[i] == "{":
            stack.append(i)
        elif stack:
            pairs[stack.pop()] = i
    return pairs


_DOLLARS = re.compile(r"^\$+|\$+$")
_PARENS = re.compile(r"^\\\(|\\\)$")
_BRACKETS = re.compile(r"^\\\[|\\\]$")
_MATH_DELIMS = re.compile(r"^\\\(|\\\)$|^\$|\$$")
_DIGIT = re.compile(r"\d")
_PLAIN_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?%?(?:\s+[a-zA-Z]+)*")
_PROSE_WORD = re.compile(r"\b(?:and|or|which|so|then|but|because|the|of|to|in|we|it|that)\b")
_CLAUSE_END = re.compile(r"(?<=[^\d])[.!?](?:\s|$)|\n")


def _last(matches: Iterator[re.Match[str]]) -> list[re.Match[str]]:
    """The last ``MAX_STATEMENTS`` matches, in order."""
    return list(deque(matches, maxlen=MAX_STATEMENTS))


def _clean(value: str) -> str:
    v = value.strip()
    if "$" in v:  # each pattern needs its character: a value without it is left as it is
        v = _DOLLARS.sub("", v).strip()
    if "\\" in v:
        v = _PARENS.sub("", v).strip()
        v = _BRACKETS.sub("", v).strip()
    v = v.rstrip(".,;: ").strip()
    return v


def _math_value(sentence: str) -> str | None:
    """The value a concluding sentence states: a boxed value, the right-hand side of its last
    ``=``, or its last number."""
    s = sentence.strip()
    latex = "\\" in s
    if not latex and not _DIGIT.search(s):
        return None  # every value below needs a digit or a LaTeX command
    m = _BOXED.search(s) if latex else None
    if m:
        got = _balanced(s, m.end() - 1)
        if got:
            return _clean(got[0])
    copula = None
    for copula in _COPULA.finditer(s):
        pass
    if copula is not None and _closes_a_group(s, copula.end()):
        # the last "=" sits inside a brace group (an index or a bound: "sum_{i=1 to n}(2 +
        # E[I_i])"): the sentence writes a formula, and neither its tail nor its last number
        # is a value it states
        return None
    expr = _stated_expression(s, copula)
    if expr:
        expr = _MOD_TAIL.sub("", expr) or expr  # "4 mod 7" states 4
        mixed = _MIXED.fullmatch(expr)
        return _mixed_latex(mixed) if mixed and int(mixed["num"]) < int(mixed["den"]) else expr
    # a modulus or a label is not a value stated: "congruent to 3 modulo 9" states 3, "find N
    # mod 1000" and "after step 3, the function is even" nothing
    # the value ending last (a plain number before a LaTeX one ending at the same place)
    # (``_NUMBER``'s own matches do not overlap: last to first, they end last to first)
    nums = (sorted([*_NUMBER.finditer(s), *_LATEX_VALUE.finditer(s)], key=lambda m: -m.end()) if latex
            else reversed(list(_NUMBER.finditer(s))))
    last = next((m for m in nums if not _NOT_A_VALUE.search(s, max(0, m.start() - 20), m.start())), None)
    if last is None:
        return None
    for mixed in _MIXED.finditer(s, max(0, last.start() - 24)) if "/" in s else ():
        if mixed.end() == last.end() and int(mixed["num"]) < int(mixed["den"]):
            return _mixed_latex(mixed)  # "137 and 1/2"
    return _clean(last.group(0).replace("$", "").replace(",", "").replace(" ", ""))


_NOT_A_VALUE = re.compile(
    r"(?:\bmod(?:ulo)?|\\[pb]?mod|\b(?:[Ss]tep|[Cc]ase|[Ee]quation|[Ll]emma|[Pp]age|[Cc]hapter|[Ff]igure)s?)\s*[{(]?\s*$"
)
_MOD_TAIL = re.compile(r"\s*\(?\s*(?:\bmod(?:ulo)?|\\[pb]?mod)\s*\{?\s*\d+\s*\}?\s*\)?\s*$")


def _mixed_latex(m: re.Match[str]) -> str:
    return f"{m['whole']}\\frac{{{m['num']}}}{{{m['den']}}}"


#: a mixed number, "137 1/2" or "137 and 1/2" (the last-number rule alone would keep "1/2")
_MIXED = re.compile(r"(?<![\d.,/])(?P<whole>\d+)\s+(?:and\s+)?(?P<num>\d+)\s*/\s*(?P<den>\d+)(?![\d/])")


#: ``(?:\bis\b|\bare\b|\bequals\b|\bbe\b|=)\s*(?:approximately\s+|about\s+|just\s+)?``, written
#: to open with a character class (the engine skips to candidate characters): the same matches
_COPULA = re.compile(
    r"[iabe=](?:(?<=\bi)s\b|(?<=\ba)re\b|(?<=\be)quals\b|(?<=\bb)e\b|(?<==))"
    r"\s*(?:approximately\s+|about\s+|just\s+)?"
)
_MATHY = re.compile(r"^[-+()\[\]{}\\_^.,/*\d\s√πa-zA-Z°%$]+$")
_TRAILING_WORDS = re.compile(r"(?:\s+[a-zA-Z]+\.?)+$")


def _closes_a_group(s: str, start: int) -> bool:
    """Whether ``s[start:]`` closes a brace group it did not open (one pass)."""
    depth = 0
    for ch in s[start:]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return True
    return False


def _stated_expression(sentence: str, last: re.Match[str] | None) -> str | None:
    """A compound value after the last "is"/"=" (``last``, ``_COPULA``'s last match):
    ``204_5``, ``(-1, 6)``, ``\\frac{3}{4}``, ``2\\sqrt{3}``.

    Plain numbers are left to the last-number rule; this catches what it would cut apart."""
    if last is None:
        return None
    tail = sentence[last.end() :].strip().rstrip(".")
    tail = _MATH_DELIMS.sub("", tail).strip()
    if not tail or len(tail) > 40 or not _DIGIT.search(tail) or not _MATHY.match(tail):
        return None
    if _PLAIN_NUMBER.fullmatch(tail):
        return None  # a plain number (with units): the last-number rule handles it
    core = _TRAILING_WORDS.sub("", tail)  # units: "12\\pi square units" -> "12\\pi"
    if not _DIGIT.search(core):
        return None
    if _PROSE_WORD.search(core):
        return None
    return _clean(core)


_BOX_JOIN = re.compile(r"\s*(?:,|;|\band\b|,\s*and\b)\s*")

_NAMED_CHOICE = re.compile(
    r"(?:answer|choice|option|it)\s+(?:is|would be|should be|must be|has to be)\s*:?\s*(?P<a>[^.\n;]{1,80})"
    r"|(?P<b>[^.\n;:]{1,80}?)\s+(?:is|seems|remains)\s+(?:the|my)\s+(?:best|correct|right|most \w+|strongest|final|only)\s+(?:answer|option|choice|candidate)",
    re.IGNORECASE,
)


# an option endorsed by its content (issue 16, Gemma): "Ethyl 4-aminobenzoate fits all the
# data", "Everything matches ethyl 4-aminobenzoate", "making X the most likely candidate",
# "fits Perot better"; only a span that names one option's text counts
_NAMED_ENDORSE = re.compile(
    r"(?P<c>[^.\n;:,()]{3,80}?)\s+(?:fits all|fits (?:the|this|these|all) (?:data|description|criteria|clues)"
    r"|matches (?:all|everything)|is (?:the|a) (?:much )?(?:most likely|better|best|closest)"
    r"(?: \w+){0,2}? (?:fit|match|compound|candidate|answer|option|choice|one)\b|is the most likely\b)"
    r"|(?:everything|all (?:the|of the) (?:data|evidence|clues)|it all)\s+(?:matches|fits|confirms|points to"
    r"|is consistent with|seems consistent with)\s+(?P<d>[^.\n;:,()]{3,80})"
    r"|\bmaking\s+(?P<e>[^.\n;:,()]{3,80}?)\s+the most likely"
    r"|\bfits\s+(?P<f>[^.\n;:,()]{3,80}?)\s+better\b",
    re.IGNORECASE,
)


class _SpanFirst:
    """``pattern.finditer`` for a pattern with alternatives that open with a span of up to
    ``span`` characters before a keyword phrase (the regex engine tries such a span from every
    position of the text: ~``span`` steps a character), the same matches, trying the pattern
    only where a match can start: where ``anchored`` (a lookahead) holds, or at most ``span``
    characters before where ``tail`` (a lookahead: the keyword phrase after the span) holds.
    Both must hold wherever the pattern's alternatives can start or their span end."""

    __slots__ = ("anchored", "pattern", "span", "tail")

    def __init__(self, pattern: re.Pattern[str], anchored: str, tail: str, span: int) -> None:
        self.pattern = pattern
        self.anchored = re.compile(anchored, pattern.flags)
        self.tail = re.compile(tail, pattern.flags)
        self.span = span

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        anchors = [m.start() for m in self.anchored.finditer(text)]
        tails = [m.start() for m in self.tail.finditer(text)]
        na, nt, span, match = len(anchors), len(tails), self.span, self.pattern.match
        pos = ai = ti = 0
        while True:
            # the next position at or after ``pos`` where a match can start: an anchor, or a
            # position less than ``span`` before a tail that lies after ``pos``
            while ai < na and anchors[ai] < pos:
                ai += 1
            while ti < nt and tails[ti] <= pos:
                ti += 1
            if ai == na and ti == nt:
                return
            s = min(anchors[ai] if ai < na else len(text),
                    max(tails[ti] - span, pos) if ti < nt else len(text))
            got = match(text, s)
            if got is None:
                pos = s + 1
            else:
                yield got
                pos = got.end()  # never empty: every alternative takes a character


_NAMED_CHOICE_FAST = _SpanFirst(
    _NAMED_CHOICE,
    r"(?=(?:answer|choice|option|it)\s+(?:is|would be|should be|must be|has to be))",
    r"(?=\s+(?:is|seems|remains)\s+(?:the|my)\s+(?:best|correct|right|most \w+|strongest|final|only)"
    r"\s+(?:answer|option|choice|candidate))",
    80,
)
_NAMED_ENDORSE_FAST = _SpanFirst(
    _NAMED_ENDORSE,
    r"(?=everything|all (?:the|of the) (?:data|evidence|clues)|it all|\bmaking\s|\bfits\s)",
    r"(?=\s+(?:fits all|fits (?:the|this|these|all) (?:data|description|criteria|clues)"
    r"|matches (?:all|everything)|is (?:the|a) (?:much )?(?:most likely|better|best|closest)"
    r"(?: \w+){0,2}? (?:fit|match|compound|candidate|answer|option|choice|one)\b|is the most likely\b))",
    80,
)


def _named_options(text: str, options: dict[str, str]) -> list[tuple[int, str, str]]:
    """An option chosen by its content: "the answer is *4% municipal bond*" → J."""
    texts = list(options.values())
    by_text = {t: k for k, t in options.items() if texts.count(t) == 1}  # ambiguous ones out
    out = []
    matches = [*_NAMED_CHOICE_FAST.finditer(text), *_NAMED_ENDORSE_FAST.finditer(text)]
    for m in matches:
        said = norm_option(next((g for g in m.groups() if g), ""))
        letter: str | None = by_text.get(said)
        if letter is None:
            hits = [k for t, k in by_text.items()
                    if said.endswith(" " + t) or (len(t) >= 6 and said.startswith(t))]
            letter = hits[0] if len(hits) == 1 else None
        if letter:
            out.append((m.start(), letter, "conclusion"))
    return out


def extract_candidates(
    text: str, answer_format: AnswerFormat = "math", options: dict[str, str] | None = None,
    *, conclude: bool = True,
) -> list[tuple[str, str]]:
    """Every candidate answer a step states, in order, as ``(value, kind)``.

    ``kind`` is one of ``boxed``, ``final-answer``, ``answer-is``, ``conclusion`` or
    ``statement``. ``options`` (``option_texts(question)``) lets a multiple-choice answer be
    recognised by the option's content as well as by its letter.
    """
    found: list[tuple[int, str, str]] = []
    if answer_format == "choice":
        low = _folded(text)
        for (kind, pat), (needs, blind) in zip(_CHOICE_PATTERNS, _CHOICE_NEEDS, strict=True):
            if needs is not None and not any(w in (low if blind else text) for w in needs):
                continue  # the pattern cannot match
            for m in pat.finditer(text):
                found.append((m.start(), m.group(1).upper(), kind))
        if options:
            found += _named_options(text, options)
    elif answer_format == "yesno":
        for kind, pat in _YESNO_PATTERNS:
            for m in pat.finditer(text):
                found.append((m.start(), m.group(1).upper(), kind))
    else:
        run_end = -1
        first = _BOXED.search(text)
        pairs = _brace_pairs(text, first.end() - 1) if first else {}
        for m in _BOXED.finditer(text, first.start() if first else len(text)):
            opened = m.end() - 1
            close = pairs.get(opened)
            if close is None or close - opened > MAX_VALUE + 1:
                continue  # never closes, or too long to be an answer
            content = text[opened + 1 : close]
            if content.strip():
                if found and _BOX_JOIN.fullmatch(text, run_end, m.start()):
                    # "\boxed{-2} and \boxed{1}": one answer with several parts
                    pos, value, kind = found[-1]
                    found[-1] = (pos, f"{value}, {_clean(content)}", kind)
                else:
                    found.append((m.start(), _clean(content), "boxed"))
                run_end = close + 1
        if not found:
            if "**" in text:  # both of its ``\*\*``
                for m in _last(_FINAL_ANSWER.finditer(text)):
                    v = _math_value(text[m.end() : m.end() + 200].split("\n\n")[0])
                    if v:
                        found.append((m.start(), v, "final-answer"))
            for m in _last(_ANSWER_IS.finditer(text)) if _may_say_answer(text) else ():
                rest = _CLAUSE_END.split(text[m.end() : m.end() + 200])[0]
                v = _math_value(rest)
                if v:
                    found.append((m.start(), v, "answer-is"))
            if not found and conclude:
                found += [(pos, v, "conclusion") for pos, v, _ in conclusions(text)]
    found.sort(key=lambda t: t[0])
    return [(v, k) for _, v, k in found]


def _may_say_answer(text: str) -> bool:
    """False when ``_ANSWER_IS`` cannot match: every branch holds "answer", which the case-blind
    regex also reads in any case and with a long s (``ſ``: the only other character that
    it folds onto one of a, n, s, w, e, r)."""
    low = text.lower()
    return "nswer" in low or "nſwer" in low


def conclusions(text: str) -> list[tuple[int, str, str]]:
    """Values stated in concluding sentences ("So, ... is 42.", "Therefore x = 3"), as
    ``(offset, value, sentence)``. Weak evidence: intermediate results look the same, so the
    ``AnswerReader`` accepts them only when the tagger or the answer scorer vouches for them."""
    out = []
    for m in _last(_CONCLUSION.finditer(text)):
        rest = _CLAUSE_END.split(text[m.end() : m.end() + 300])[0]
        if "?" in rest:
            continue
        v = _math_value(rest)
        if v:
            out.append((m.start(), v, text[m.start() : m.end() + len(rest)].strip()))
    return out


#: ``(?<=[^\d\s])[.!?]+(?=\s|$)|(?<=\d)[.!?](?=\s+[A-Z*]|\s*$)|\n+`` (a run of ``.!?`` after
#: a letter or sign, ending at a space; one after a digit, before a capital or the end; line
#: breaks), written to open with a character class so that the engine skips to ``.!?`` or a
#: line break: the same matches, four times faster
_VALUE_CHAR = re.compile(r"[\d\\]")
_SENTENCE_END = re.compile(
    r"[.!?\n](?:(?<=[^\d\s][.!?])[.!?]*(?=\s|$)|(?<=\d[.!?])(?=\s+[A-Z*]|\s*$)|(?<=\n)\n*)"
)
_CUE = re.compile(r"^\W*(?:so|therefore|thus|hence|finally|in conclusion|that means|which means|"
                  r"the answer|the final answer|final answer|i think|i'm confident|yes)\b", re.IGNORECASE)


@lru_cache(maxsize=16)
def value_sentences(text: str) -> tuple[tuple[int, str, str, bool], ...]:
    """Every sentence of a step that states a mathematical value, as ``(offset, value,
    sentence, cue)``; ``cue`` is true when it opens with a concluding word ("So,",
    "Therefore", "The answer"). Questions are skipped. The answer scorer decides which, if
    any, states the answer. (Memoised: the ``AnswerReader`` reads a step's values twice, as the step
    after a pending one and as a step of its own.)"""
    out: list[tuple[int, str, str, bool]] = []
    if not _VALUE_CHAR.search(text):
        return ()  # every value needs a digit or a LaTeX command (``_math_value``)
    ends = list(_SENTENCE_END.finditer(text + "\n"))
    first = max(0, len(ends) - MAX_SENTENCES)
    start = ends[first - 1].end() if first else 0
    for m in ends[first:]:
        sent = text[start : m.start()]
        offset = start
        start = m.end()
        if "?" in text[m.start() : m.end()] or len(sent) > MAX_SENTENCE or not _VALUE_CHAR.search(sent):
            continue  # (a blank sentence holds no digit either)
        v = _math_value(sent)
        if v:
            out.append((offset, v, sent.strip(), bool(_CUE.match(sent))))
    return tuple(out)


_KIND_RANK = {"boxed": 0, "final-answer": 1, "answer-is": 2, "conclusion": 3, "statement": 4}


def extract_candidate(
    text: str, answer_format: AnswerFormat = "math", options: dict[str, str] | None = None,
    *, conclude: bool = True,
) -> tuple[str, str] | None:
    """The candidate a step puts forward: its last statement of the strongest kind found.
    ``conclude=False`` skips reading math values from concluding sentences (a caller that
    reads them otherwise)."""
    cands = extract_candidates(text, answer_format, options, conclude=conclude)
    if not cands:
        return None
    best = min(_KIND_RANK[k] for _, k in cands)
    return [c for c in cands if _KIND_RANK[c[1]] == best][-1]


def value_key(value: str) -> str:
    """A stated value as a key for counting mentions: no thousands separators, ``$`` or ``%``."""
    return value.replace(",", "").lstrip("$").rstrip("%").strip()

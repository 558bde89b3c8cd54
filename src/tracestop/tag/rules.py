"""The rule tagger: ordered regex cues, first match wins, every tag names its cue.

The rules look mostly at the *head* of a step (its first line with bullets and markdown
emphasis stripped), because reasoning models announce what a step does in its first words
("Wait,", "Alternatively,", "Let me double-check", "So the answer is"). Gemma-style bullet
traces (``*   Option A: ...``) are handled by stripping the bullet before matching.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracestop._types import StepType, Tag
from tracestop.tag.base import TagContext

#: The default context (a frozen value, shared).
_NO_CONTEXT = TagContext()

__all__ = ["RULES", "Rule", "RuleTagger", "step_head"]

T = StepType
_FLAGS = 0  # head and body are lower-cased before matching

_BULLET = re.compile(r"^[\s>*#\-•·]*(?:\d{1,2}[.)]\s+)?[\s*_]*")
_EMPH = re.compile(r"[*_`]+")


def step_head(text: str, limit: int = 160) -> str:
    """The first non-empty line of ``text`` without bullets or emphasis, lower-cased."""
    nl = text.find("\n")
    line = text if nl < 0 else text[:nl]
    if not line.strip():  # rare: leading blank lines
        for line in text.split("\n"):
            if line.strip():
                break
        else:
            return ""
    if not line[:1].isalpha():  # a letter first: the bullet pattern matches nothing
        line = _BULLET.sub("", line, count=1)
    if "*" in line or "_" in line or "`" in line:
        line = _EMPH.sub("", line)
    return line[:limit].lower().strip()


@dataclass(frozen=True, slots=True)
class Rule:
    """One cue: ``pattern`` searched in the head (or the whole step when ``where='body'``).

    ``needs_answer`` restricts the rule to steps that state a candidate answer,
    ``max_index`` to early steps; ``max_len`` to steps no longer than that many characters.
    ``gate``: substrings of which at least one must occur for the pattern to have a chance
    (a fast pre-check; it never changes what matches).
    """

    type: StepType
    pattern: re.Pattern[str]
    confidence: float
    where: str = "head"
    needs_answer: bool = False
    max_index: int | None = None
    max_len: int | None = None
    gate: tuple[str, ...] = ()

    def matches(self, head: str, body: str, context: TagContext) -> re.Match[str] | None:
        if self.needs_answer and not context.states_answer:
            return None
        if self.max_index is not None and context.index > self.max_index:
            return None
        if self.max_len is not None and len(body) > self.max_len:
            return None
        target = head if self.where == "head" else body
        if self.gate and not any(g in target for g in self.gate):
            return None  # cheap substring pre-check: the regex cannot match
        return self.pattern.search(target)



def _r(type_: StepType, pattern: str, confidence: float, **kw: object) -> Rule:
    return Rule(type_, re.compile(pattern, _FLAGS), confidence, **kw)  # type: ignore[arg-type]


_VERIFY_GATE = ("check", "verif", "sure", "confirm", "sanity", "back", "see if", "right",
                "correct", "sense")
_VERIFY = (
    r"double[- ]?check|re-?check|re-?verif|\bverif|\bcheck\b|checking|make sure|\bconfirm"
    r"|sanity|plug(?:ging)? (?:it |this |them )?back|\bsubstitut\w* back|let'?s see if"
    r"|is (?:this|that) (?:right|correct)|does (?:this|that|it) make sense|cross-check"
)

#: Ordered rules; the first that matches decides. Keep specific cues before generic ones.
RULES: tuple[Rule, ...] = (
    # explicit final answers
    _r(T.FINAL_CONCLUSION, r"\*\*final answer\*\*|\\boxed\{|^final answer", 0.9, where="body",
       gate=("final answer", "\\boxed{")),
    # "Same answer." after a re-derivation is a verification (labels README)
    _r(
        T.VERIFICATION,
        r"\b(?:same|consistent) (?:answer|result)\b|\bcheck(?:s)? out\b|\bmatches\b.{0,30}"
        r"\b(?:earlier|before|previous)",
        0.75,
        where="body",
        gate=("same", "consistent", "check", "matches"),
    ),
    # another route
    _r(
        T.ALTERNATIVE_APPROACH,
        r"^(?:wait,? |but,? |hmm,? |or,? )?(?:alternatively|another (?:way|approach|method|idea)"
        r"|(?:let me|let's|i'?ll|maybe i (?:can|should)) (?:try|use|think of|consider) "
        r"(?:a |an )?(?:different|another|other) (?:way|approach|method)"
        r"|a different (?:way|approach|method)|is there another)",
        0.8,
    ),
    # checking cues in the opening words
    _r(T.VERIFICATION, r"^(?:wait|but|hmm|okay|ok|so|now|just|and|also)?[ ,.!]*"
       r"(?:let me|let's|let us|i(?:'ll| will| should| want to| need to)?|to)?\s*(?:just )?"
       r"(?:quickly |also |again )?(?:" + _VERIFY + r")", 0.8, gate=_VERIFY_GATE),
    _r(T.VERIFICATION, r"^(?:yes|yep|yeah|correct|right)\b|(?:that|this|it) "
       r"(?:seems|looks|is) (?:right|correct|consistent|solid|good)|\bseems (?:right|correct)\b",
       0.75, gate=("ye", "correct", "right", "consistent", "solid", "good")),
    _r(T.VERIFICATION, _VERIFY, 0.6, max_len=400, gate=_VERIFY_GATE),
    # stated answers worded as a conclusion
    _r(
        T.FINAL_CONCLUSION,
        r"\b(?:the (?:final |correct |right )?answer (?:is|should be|would be)"
        r"|(?:correct|best|right) (?:option|choice|answer) is|answer:|i(?:'m| am) confident"
        r"|the answer must be|so the answer)",
        0.85,
        where="body",
        gate=("answer", "option", "choice", "confident"),
    ),
    _r(
        T.FINAL_CONCLUSION,
        r"^(?:so|therefore|thus|hence|then|hmm|okay)\b",
        0.7,
        needs_answer=True,
        max_len=300,
    ),
    # doubt about the work so far (specific phrases)
    _r(
        T.META_COGNITION,
        r"i(?:'m| am) (?:not sure|confused|unsure|getting confused)"
        r"|i (?:made|might have made|must have made) a mistake|that(?:'s| is) (?:not|in)correct"
        r"|doesn'?t make sense|let me (?:re)?think|reconsider|that can'?t be|^(?:wait|hold on),? no\b",
        0.7,
        gate=("not sure", "confus", "unsure", "mistake", "correct", "sense", "let me",
              "reconsider", "that can", "wait", "hold on"),
    ),
    # problem restatement: re-reading, quoting the options, opening setup
    _r(
        T.PROBLEM_RESTATEMENT,
        r"(?:let me|let's|i'll) (?:re-?read|read|look at (?:the )?(?:options|choices|question))"
        r"|(?:look(?:ing)? at|re-?list(?:ing)?|review(?:ing)?) the (?:options|choices) again"
        r"|^the (?:question|problem) (?:asks|says|states|is asking|gives)"
        r"|^(?:question|problem|the question|the problem)\s*:",
        0.75,
        gate=("read", "option", "choice", "question", "problem"),
    ),
    _r(
        T.PROBLEM_RESTATEMENT,
        r"^(?:okay|ok|alright|all right|so|first)?[ ,]*(?:so,? )?(?:i(?:'m| am) (?:trying|asked)"
        r"|i (?:need|have) to|i've got|we (?:need|have) to|we have|there (?:is|are)"
        r"|the (?:problem|question)|given|let me (?:see|start))",
        0.65,
        max_index=3,
    ),
    # recalled facts
    _r(
        T.DEFINITION_RECALL,
        r"\bi (?:remember|recall|know that)|\brecall (?:that|the)|\bby definition|is defined as"
        r"|\b(?:the )?formula (?:for|is)|\btheorem\b|\bi found (?:a|another)? ?source"
        r"|\b(?:let me |i'll )?search|\bproperty of\b|\bin general,|\bis known (?:as|to)"
        r"|\b(?:key concept|definition)s?\s*:",
        0.65,
        gate=("remember", "recall", "know", "definition", "defined", "formula", "theorem",
              "source", "search", "property", "general", "concept"),
    ),
    # options, cases, edge conditions
    # (one cue in two rules: the anchored openings, then "case 2" anywhere in the head; the
    # same first match as the single alternation, without trying the openings at every offset)
    _r(
        T.CASE_CONSIDERATION,
        r"^(?:option |choice )?\(?[a-j]\)?\s*[.:)]\s|^(?:what about|what if|consider (?:the )?case"
        r"|case \d|in case|if |suppose |assume |for (?:n|x|k|m|the case)\b)",
        0.6,
    ),
    _r(T.CASE_CONSIDERATION, r"\bcase\s*\d", 0.6, gate=("case",)),
    # generic hesitation ("Wait,", "Hmm") without a more specific cue
    _r(T.META_COGNITION, r"^(?:wait|hold on|hmm+|oh|oops|actually)\b", 0.55),
    # numerical interpretation
    _r(
        T.NUMERICAL_INTERPRETATION,
        r"\b(?:approximately|roughly|about) \d|≈|\bclose to\b|\bwhich (?:matches|corresponds to)"
        r" (?:option|choice)",
        0.55,
        where="body",
        gate=("approximately", "roughly", "about", "≈", "close to", "which matches",
              "which corresponds"),
    ),
    # summaries of what is known
    _r(
        T.CONTEXT_REPETITION,
        r"^(?:so,? )?(?:to (?:recap|summari[sz]e)|in summary|summary|so far|recap|we (?:know|have) "
        r"(?:that|so far)|so,? (?:we have|now we have))",
        0.6,
    ),
    # plans for the next move
    _r(
        T.HEURISTIC_INTUITION,
        r"^(?:(?:so|okay|now|first|next|then|hmm)[ ,]*)*(?:let me|let's|i(?:'ll| will| should| need"
        r" to| can)|we (?:can|need to|should)|maybe|perhaps|it might|it'?s (?:better|easier)"
        r"|the (?:key|idea|strategy|plan|approach)|to (?:find|solve|compute|determine))",
        0.55,
    ),
    # algebra versus arithmetic
    _r(
        T.SYMBOLIC_TRANSFORMATION,
        r"simplif|factor|expand|rewrite|rearrang|substitut|solv(?:e|ing) for|isolat|"
        r"cancel|combine like|multiply both sides|divide both sides|\\frac|\^\{?[a-z]",
        0.5,
        where="body",
        gate=("simplif", "factor", "expand", "rewrite", "rearrang", "substitut", "solv",
              "isolat", "cancel", "combine like", "multiply both", "divide both", "\\frac",
              "^"),
    ),
    _r(T.FORMULA_SUBSTITUTION, r"\d\s*[-+*/×÷^]\s*\d|=\s*-?\d", 0.5, where="body",
       gate=("=", "-", "+", "*", "/", "×", "÷", "^")),
    _r(T.SYMBOLIC_TRANSFORMATION, r"[a-z]\s*[=+\-^]\s*[a-z0-9(]|=", 0.45, where="body",
       gate=("=", "+", "-", "^")),
)


#: Rules at or below this confidence are generic; inside a check they yield to it.
_WEAK = 0.5
#: Only the start of a long step is read (cost stays flat; cues come first).
_BODY_CHARS = 600
_STATEMENT = re.compile(r"^(?:so|therefore|thus|hence|and|then|which|that)\b|^[a-z0-9(]+\s*[=:]")


class RuleTagger:
    """Explainable baseline: ordered regex cues (``RULES``); falls back to context/defaults."""

    name = "rules"

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules

    def tag(self, text: str, context: TagContext = _NO_CONTEXT) -> Tag:
        head = step_head(text)
        body = text[:_BODY_CHARS].lower()
        for rule in self.rules:
            m = rule.matches(head, body, context)
            if m is not None:
                cue = m.group(0).strip() or rule.pattern.pattern[:30]
                if rule.confidence <= _WEAK and context.previous is T.VERIFICATION:
                    # re-computation inside an announced check stays a verification
                    return Tag(T.VERIFICATION, 0.45, f'cue: "{cue[:40]}" after verification')
                return Tag(rule.type, rule.confidence, f'cue: "{cue[:40]}"')
        if context.previous is T.VERIFICATION:
            return Tag(T.VERIFICATION, 0.4, "cue: continues the previous verification")
        if context.previous is T.PROBLEM_RESTATEMENT and context.index <= 8:
            return Tag(T.PROBLEM_RESTATEMENT, 0.4, "cue: continues the problem restatement")
        if context.states_answer:
            return Tag(T.FINAL_CONCLUSION, 0.5, "cue: states an answer")
        if _STATEMENT.match(head):
            return Tag(T.CONTEXT_REPETITION, 0.35, "cue: plain statement of known results")
        if head.endswith(":"):
            return Tag(T.HEURISTIC_INTUITION, 0.4, 'cue: ends with ":"')
        return Tag(T.HEURISTIC_INTUITION, 0.3, "cue: none (default)")

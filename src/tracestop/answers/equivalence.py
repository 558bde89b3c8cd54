"""Whether two answers are the same: a cheap normal form first, then Math-Verify.

Between the two, a fast path (``_fast_verdict``) decides the simplest shapes as Math-Verify
would (numbers in simple syntax, a number against a letter, ``a + bi``, a bracketed pair or
interval, or a polynomial or rational expression that is not constant) without parsing them
with sympy; ``scripts/check_equivalence_fastpath.py`` checks it
against Math-Verify. Math-Verify is imported lazily on first use (it pulls in sympy). Its own timeout is built on
``signal.alarm`` and fails off the main thread, so off the main thread it is called with its
timeouts disabled.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction
from functools import lru_cache

from tracestop.answers.formats import AnswerFormat

__all__ = ["equivalent", "latex_math", "normalize", "warm_up"]

_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def normalize(value: str) -> str:
    """A cheap canonical form: spacing, ``\\left``/``\\right``, ``\\dfrac``, thousands
    separators, a leading ``x =`` and trailing units in ``\\text{}`` removed."""
    v = value.strip().strip("$")
    v = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:|\s)", "", v)
    v = v.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    v = re.sub(r"\^\{?\\circ\}?|°", "", v)
    v = re.sub(r"(?<=\d),(?=\d{3}\b)", "", v)
    v = re.sub(r"^[a-zA-Z]\s*=\s*", "", v)
    v = _TEXT_WRAP.sub(lambda m: m.group(1), v)
    v = re.sub(r"\s+", "", v)
    v = v.rstrip(".")
    v = re.sub(r"^\\\$|\\%$|%$", "", v)
    return v.lower()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=65536)
def _parse(value: str, main: bool) -> object:
    from math_verify import parse  # lazy: pulls in sympy

    text = value if "\\boxed" in value else f"${value}$"
    timeout = 5 if main else None
    return parse(text, parsing_timeout=timeout)


@lru_cache(maxsize=65536)
def _verify(gold: str, pred: str, main: bool) -> bool:
    from math_verify import verify

    g, p = _parse(gold, main), _parse(pred, main)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=5 if main else None))


_UNICODE_MATH = {"π": "\\pi ", "∞": "\\infty ", "×": "\\times ", "·": "\\cdot ", "−": "-", "–": "-",
                 "²": "^2", "³": "^3", "½": "\\frac{1}{2}", "¼": "\\frac{1}{4}", "¾": "\\frac{3}{4}",
                 "≤": "\\le ", "≥": "\\ge ", "°": "^\\circ"}
_UNICODE_ROOT = re.compile(r"([√∛∜])\s*(\([^()]*\)|\{[^{}]*\}|\d+(?:\.\d+)?|[a-zA-Z])")
_ROOT_INDEX = {"√": "", "∛": "[3]", "∜": "[4]"}


def latex_math(value: str) -> str:
    """Unicode math written in prose (``3√13``, ``18 + 2π``, ``√(x+1)``) as LaTeX, so that
    Math-Verify reads it: a model's prose states ``√51`` where the gold answer says
    ``\\sqrt{51}``."""
    if value.isascii():
        return value
    v = _UNICODE_ROOT.sub(
        lambda m: f"\\sqrt{_ROOT_INDEX[m.group(1)]}{{{m.group(2).strip('(){}')}}}", value
    )
    for u, tex in _UNICODE_MATH.items():
        v = v.replace(u, tex)
    return v.strip()


#: a plain integer written one way only (no sign on zero, no leading zeros), short enough that
#: Math-Verify compares it exactly: two different ones are different answers
_PLAIN_INT = re.compile(r"0|-?[1-9]\d{0,11}")


def equivalent(gold: str, pred: str, answer_format: AnswerFormat = "math") -> bool:
    """Whether ``pred`` is the same answer as ``gold`` (Math-Verify for math answers; unicode
    math in either is read as LaTeX first)."""
    if answer_format != "math":
        return gold.strip().strip("()*.").upper() == pred.strip().strip("()*.").upper()
    return _equivalent_math(gold, pred, _main_thread())


@lru_cache(maxsize=65536)
def _equivalent_math(gold: str, pred: str, main: bool) -> bool:
    """``equivalent`` for math answers, memoised: the same pair recurs step after step."""
    gold, pred = latex_math(gold), latex_math(pred)
    g, p = normalize(gold), normalize(pred)
    if g == p:
        return True
    if _PLAIN_INT.fullmatch(g) and _PLAIN_INT.fullmatch(p):
        return False  # two different integers: no need to ask Math-Verify (it parses with sympy)
    fast = _fast_verdict(gold, pred)
    if fast is not None:
        return fast
    try:
        return _verify(gold, pred, main)
    except Exception:  # noqa: BLE001 - Math-Verify can raise on odd LaTeX; treat as different
        return False


#: A number in the simplest syntax: an integer (no leading zeros), a decimal ``12.50``, ``a/b``
#: or ``\\frac{a}{b}`` (``\\dfrac``, ``\\tfrac``), with an optional ``-``; at most 12 digits in
#: all. Math-Verify reads each as the rational number it writes (a decimal as a float).
_SIMPLE_NUMBER = re.compile(
    r"\s*(?P<neg>-)?(?:(?P<int>0|[1-9]\d*)(?:\.(?P<frac>\d+))?|(?P<num>[1-9]\d*)/(?P<den>[1-9]\d*)"
    r"|\\[dt]?frac\{(?P<fnum>[1-9]\d*)\}\{(?P<fden>[1-9]\d*)\})\s*"
)
#: a single letter that Math-Verify reads as a plain symbol (``e`` is Euler's number and ``i``
#: may be the imaginary unit: those are left to it)
_PLAIN_LETTER = re.compile(r"\s*[a-dfghj-zA-DFGHJ-Z]\s*")
_MAX_DIGITS = 12
#: a decimal against another number closer than this (relative to the larger, at least 1) goes to
#: Math-Verify, which rounds floats to 6 places before comparing
_NEAR = Fraction(1, 1000)


def _simple_number(value: str) -> tuple[Fraction, bool] | None:
    """``value`` as an exact fraction, and whether it is written as a decimal; ``None`` when
    it is not a number in the simplest syntax (``_SIMPLE_NUMBER``)."""
    m = _SIMPLE_NUMBER.fullmatch(value)
    if m is None:
        return None
    whole, frac = m["int"], m["frac"]
    if whole is not None:
        if len(whole) + len(frac or "") > _MAX_DIGITS:
            return None
        x = Fraction(int(whole + (frac or "")), 10 ** len(frac or ""))
        decimal = frac is not None
    else:
        num, den = (m["num"], m["den"]) if m["num"] is not None else (m["fnum"], m["fden"])
        if len(num) + len(den) > _MAX_DIGITS:
            return None
        x, decimal = Fraction(int(num), int(den)), False
    return (-x if m["neg"] else x), decimal


#: ``a + bi`` / ``a - bi`` with integer parts (``b`` may be left out: ``4 + i``)
_COMPLEX = re.compile(
    r"\s*(?P<re>-?(?:0|[1-9]\d{0,8}))\s*(?P<op>[+-])\s*(?P<im>0|[1-9]\d{0,8})?\s*i\s*"
)
#: a positive value in simple syntax: a nonzero number, ``\\frac{a}{b}``, ``\\sqrt{n}``, ``k\\sqrt{n}``
_POSITIVE = (r"(?:[1-9]\d{0,8}(?:\.\d{1,8})?|0\.\d{0,7}[1-9]|\\frac\{[1-9]\d{0,8}\}\{[1-9]\d{0,8}\}"
             r"|(?:[1-9]\d{0,8})?\\sqrt\{[1-9]\d{0,8}\})")
#: a pair or an interval symmetric about 0, ``(-\\sqrt{3}, \\sqrt{3})``, ``[-2, 2]``: two different
#: values (or infinitely many), never one number
_SYMMETRIC = re.compile(rf"\s*[(\[]\s*-\s*(?P<a>{_POSITIVE})\s*,\s*(?P<b>{_POSITIVE})\s*[)\]]\s*")


#: a pair, tuple or interval written with brackets: ``(-1, 6)``, ``[2, 5)``, ``(1, 2, 3)``
_BRACKETED = re.compile(r"\s*[(\[](?P<items>[^()\[\]{}]*,[^()\[\]{}]*)[)\]]\s*")


def _several_numbers(value: str) -> bool:
    """A bracketed pair, tuple or interval of two or more numbers in simple syntax, not all
    the same (far enough apart where a decimal is among them: ``_NEAR``): never one number."""
    m = _BRACKETED.fullmatch(value)
    if m is None:
        return False
    parts = m["items"].split(",")
    v = value.strip()
    if len(parts) > 2 and v[0] + v[-1] not in ("()", "[]"):
        return False  # "[a, b, c)": Math-Verify may read one of its numbers alone
    items = [_simple_number(item) for item in parts]
    if any(item is None for item in items):
        return False
    xs = [item[0] for item in items if item is not None]
    lo, hi = min(xs), max(xs)
    if any(item[1] for item in items if item is not None):
        return hi - lo > _NEAR * max(Fraction(1), abs(lo), abs(hi))
    return lo != hi


def _complex(value: str) -> tuple[int, int] | None:
    """``value`` as (real part, imaginary part) when it is ``a ± bi`` with integer parts."""
    m = _COMPLEX.fullmatch(value)
    if m is None:
        return None
    im = int(m["im"]) if m["im"] is not None else 1
    return int(m["re"]), (-im if m["op"] == "-" else im)


def _never_a_number(value: str) -> bool:
    """A plain letter, a non-real ``a ± bi``, a pair or interval symmetric about 0, or a
    bracketed pair, tuple or interval of different simple numbers: no single number is the
    same answer."""
    if _PLAIN_LETTER.fullmatch(value):
        return True
    c = _complex(value)
    if c is not None:
        return c[1] != 0
    m = _SYMMETRIC.fullmatch(value)
    return (m is not None and m["a"] == m["b"]) or _several_numbers(value)


#: the letters Math-Verify reads as a plain variable wherever they stand: not ``e`` (Euler's
#: number), ``i`` (the imaginary unit), nor the ones it strips after a number as units (``2c``,
#: ``2m`` and ``2s`` read as 2: c d g h l m o s t); upper case is read as lower case, so it is
#: left out too
_VARIABLES = frozenset("abfjknpqruvwxyz")
#: a token of a polynomial or rational expression in plain syntax
_EXPR_TOKEN = re.compile(r"\s*(?:(?P<num>\d+)|(?P<var>[a-z])|(?P<op>[-+*/^()]))")
_EXPR_MAX_CHARS = 80
#: at most this many ``^``: nested, the degree multiplies (three: at most 9^3 = 729)
_EXPR_MAX_POWERS = 3
#: the points at which ``_nonconstant`` evaluates an expression: variable k takes the k-th value
_POINTS = tuple({v: Fraction(a + d * k, q) for k, v in enumerate(sorted(_VARIABLES))}
                for a, d, q in ((3, 2, 7), (-11, -3, 5), (17, 5, 3)))


class _NotPlain(Exception):
    """The text is not an expression in the plain syntax ``_nonconstant`` reads."""


def _expr_tokens(value: str) -> list[tuple[str, str]] | None:
    """``value`` as (kind, text) tokens (``num``, ``var``, ``op``), or ``None`` when it holds
    anything else, or a number right after a number or a ``)`` (Math-Verify adds ``2 3`` and
    ``(26)2``, as in a mixed number)."""
    if len(value) > _EXPR_MAX_CHARS:
        return None
    out: list[tuple[str, str]] = []
    pos, end = 0, len(value.rstrip())
    while pos < end:
        m = _EXPR_TOKEN.match(value, pos)
        if m is None or m.lastgroup is None:
            return None
        kind = m.lastgroup
        text = m[kind]
        after = out[-1] if out else ("op", "")
        if kind == "num" and (len(text) > _MAX_DIGITS or after[0] == "num" or after == ("op", ")")
                              or (len(text) > 1 and text[0] == "0")):
            return None  # "2 3" and "(26)2": Math-Verify adds them, as in a mixed number
        power_of_var = len(out) >= 3 and out[-3][0] == "var" and out[-2] == ("op", "^")
        if (kind, text) == ("op", "(") and (after[0] == "var" or power_of_var):
            return None  # "f(x)", "x^2(y)": a function
        if kind == "var" and text not in _VARIABLES:
            return None
        out.append((kind, text))
        pos = m.end()
    if sum(tok == ("op", "^") for tok in out) > _EXPR_MAX_POWERS:
        return None  # ((((x^9)^9)^9)^9)^9: exact values with millions of digits
    return out


class _ExprReader:
    """Reads ``_expr_tokens`` as latex2sympy does, and evaluates it exactly at a point.

    The grammar (anything else raises ``_NotPlain``)::

        expr     := ["-"] product (("+" | "-") product)*
        product  := implicit (("*" | "/") implicit)*          left to right
        implicit := power power*                              juxtaposition: "2x", "x2", ")(", ")x"
        power    := atom ["^" DIGIT]                          one digit, not followed by a digit
        atom     := NUMBER | VARIABLE | "(" expr ")"

    Juxtaposition binds tighter than ``/`` (latex2sympy reads ``26/x2`` as ``26/(2x)``); a
    variable is never followed by another variable (``ln``, ``ab``: words, units), a variable
    or its power never by ``(`` (``f(x)``, ``x^2(y)``: a function), and a bracket multiplied by
    juxtaposition holds a variable (latex2sympy adds ``26(26)``: 52). ``_expr_tokens`` refuses
    the other shapes it reads its own way.
    ``scripts/check_equivalence_fastpath.py`` evaluates Math-Verify's parse of generated
    expressions at the same points."""

    def __init__(self, tokens: list[tuple[str, str]], point: dict[str, Fraction]) -> None:
        self.tokens, self.pos = tokens, 0
        self.values = point
        self.variables = 0  # variables read so far

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, text: str) -> bool:
        tok = self._peek()
        if tok is not None and tok[0] == "op" and tok[1] == text:
            self.pos += 1
            return True
        return False

    def read(self) -> Fraction:
        x = self._expr()
        if self.pos != len(self.tokens):
            raise _NotPlain
        return x

    def _expr(self) -> Fraction:
        neg = self._take("-")
        x = self._product()
        x = -x if neg else x
        while True:
            if self._take("+"):
                x += self._product()
            elif self._take("-"):
                x -= self._product()
            else:
                return x

    def _product(self) -> Fraction:
        x = self._implicit()
        while True:
            if self._take("*"):
                x *= self._implicit()
            elif self._take("/"):
                y = self._implicit()
                if y == 0:
                    raise ZeroDivisionError
                x /= y
            else:
                return x

    def _implicit(self) -> Fraction:
        x = self._power()
        while True:
            tok = self._peek()
            if tok is None or not (tok[0] != "op" or tok[1] == "("):
                return x
            before = self.variables
            x *= self._power()
            if tok[1] == "(" and self.variables == before:
                raise _NotPlain  # "26(26)", "-7(7)": Math-Verify may add a number in brackets

    def _power(self) -> Fraction:
        x = self._atom()
        if self._take("^"):
            tok = self._peek()
            if tok is None or tok[0] != "num" or len(tok[1]) != 1:
                raise _NotPlain
            self.pos += 1
            x = x ** int(tok[1])
        tok = self._peek()
        if tok is not None and tok == ("op", "^"):
            raise _NotPlain  # x^2^3
        return x

    def _atom(self) -> Fraction:
        tok = self._peek()
        if tok is None:
            raise _NotPlain
        self.pos += 1
        kind, text = tok
        if kind == "num":
            return Fraction(int(text))
        if kind == "var":
            nxt = self._peek()  # "f(x)" never gets here: _expr_tokens refuses it
            if nxt is not None and nxt[0] == "var":
                raise _NotPlain
            self.variables += 1
            return self.values[text]
        if text == "(":
            x = self._expr()
            if not self._take(")"):
                raise _NotPlain
            return x
        raise _NotPlain


def _nonconstant(value: str) -> bool:
    """Whether ``value`` is a polynomial or rational expression in plain syntax
    (``_ExprReader``) that takes two different values at two of ``_POINTS``: a function of its
    variables that no simplification makes a constant, so never the same answer as a number."""
    tokens = _expr_tokens(value)
    if tokens is None or not any(kind == "var" for kind, _ in tokens):
        return False
    seen: set[Fraction] = set()
    for point in _POINTS:
        try:
            seen.add(_ExprReader(tokens, point).read())
        except ZeroDivisionError:
            continue  # undefined at this point: try the next
        except _NotPlain:
            return False
        if len(seen) > 1:
            return True
    return False


def _fast_verdict(gold: str, pred: str) -> bool | None:
    """What Math-Verify decides for two answers of the simplest shapes, without asking it
    (it parses each new value with sympy: milliseconds, sometimes a tenth of a second);
    ``None`` for any other pair. Two numbers in simple syntax (``_SIMPLE_NUMBER``) are the
    same when they are the same rational number, and different when neither is a decimal,
    or when they are more than ``_NEAR`` apart (Math-Verify compares a decimal after rounding
    to 6 places: nearer ones are left to it). A number is never a plain letter (an option
    label, a variable), a non-real ``a ± bi``, a pair or interval symmetric about 0, or a
    bracketed pair, tuple or interval of different numbers (``_never_a_number``); two
    ``a ± bi`` with different parts differ. Nor is a number ever a polynomial or rational
    expression that is not constant (``_nonconstant``: ``2`` against ``20 - (x2 + 26/x2)``):
    Math-Verify finds no structure, rounding or simplification that makes a function of a
    variable a number.
    ``scripts/check_equivalence_fastpath.py`` checks every verdict against Math-Verify on the
    dev split's pairs and on generated ones."""
    a, b = _simple_number(gold), _simple_number(pred)
    if a is None or b is None:
        if a is not None:
            return False if _never_a_number(pred) or _nonconstant(pred) else None
        if b is not None:
            return False if _never_a_number(gold) or _nonconstant(gold) else None
        ca, cb = _complex(gold), _complex(pred)
        return False if ca is not None and cb is not None and ca != cb else None
    (x, x_dec), (y, y_dec) = a, b
    if x == y:
        return True
    if not (x_dec or y_dec):
        return False
    if abs(x - y) > _NEAR * max(Fraction(1), abs(x), abs(y)):
        return False
    return None


#: one pair per common shape of a math answer (polynomial, rational function, implicit
#: product, root, pi, interval, tuple, complex number, equation, percent): the first parse of
#: each shape builds the LaTeX parser's prediction tables and loads the sympy modules it needs
_WARM_PAIRS = (
    ("x^2 + 2x + 1", "(x+1)^2"),
    ("\\frac{x^2 - 1}{x + 1}", "x - 1"),
    ("3 + (1/2)(4)", "5"),
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("\\frac{\\pi}{4}", "0.785"),
    ("(-\\infty, 2]", "[0, 1)"),
    ("(1, 2)", "(2, 1)"),
    ("3 - 4i", "4 + 3i"),
    ("y = 2x + 1", "2x + 1"),
    ("50\\%", "0.5"),
)


def warm_up() -> None:
    """Pay Math-Verify's one-time costs now, not in the first request that needs them:
    importing it and sympy, sympy's first symbolic simplification, and the first parse of
    each common answer shape (``_WARM_PAIRS``; about 1 s in all). A server calls this at
    startup; the Monitor never needs it."""
    main = _main_thread()
    for gold, pred in _WARM_PAIRS:
        try:
            _verify(gold, pred, main)
        except Exception:  # noqa: BLE001, S112 - as in equivalent(): odd LaTeX is not an error
            continue

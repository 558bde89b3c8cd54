"""Whether two answers are the same: a cheap normal form first, then Math-Verify.

Math-Verify is imported lazily on first use (it pulls in sympy). Its own timeout is built on
``signal.alarm`` and fails off the main thread, so off the main thread it is called with its
timeouts disabled.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from tracestop.answers.formats import AnswerFormat

__all__ = ["equivalent", "latex_math", "normalize"]

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
    try:
        return _verify(gold, pred, main)
    except Exception:  # noqa: BLE001 - Math-Verify can raise on odd LaTeX; treat as different
        return False

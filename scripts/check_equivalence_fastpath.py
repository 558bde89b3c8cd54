"""Does the equivalence fast path decide every pair exactly as Math-Verify does?

    python scripts/check_equivalence_fastpath.py [--data DIR] [--limit N] [--generated N]

Collects every ``(gold, pred)`` pair that ``equivalent`` is asked for math answers while

* the evaluator prepares each dev-split trace (``tracestop.evaluate.replay.prepare``: the
  Monitor's pass and the recorded final answer graded), and grades every candidate answer the
  Monitor read against the gold answer (``Prepared.is_correct``, as a policy's stop is graded);
* a live ``Monitor("default", question=..., benchmark=...)`` reads each dev trace in
  40-character deltas;

then adds generated pairs (integers, decimals, ``a/b``, ``\\frac{a}{b}``, signs, the same number
written two ways, decimals near a fraction, letters against numbers, ``a + bi``, pairs and
intervals symmetric about 0, bracketed pairs, tuples and intervals of numbers; polynomial and
rational expressions against numbers, with constants in disguise and near misses: ``_expressions``).
Each generated expression the fast path's expression reader reads is also evaluated through
Math-Verify's own parse with sympy at the reader's points. For every pair that
``_fast_verdict`` decides, Math-Verify (``_verify``, an error read as "different", as
``equivalent`` does) is asked too. Prints the counts and each disagreement; exits 1 on any.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from fractions import Fraction


def _generated(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Pairs of numbers in the shapes the fast path reads, and a few it must leave alone."""

    def dec(x: Fraction, places: int) -> str:
        neg = x < 0
        q = round(abs(x) * 10**places)
        s = str(q).rjust(places + 1, "0")
        out = s if places == 0 else f"{s[:-places]}.{s[-places:]}"
        return ("-" if neg else "") + out

    def forms(x: Fraction) -> list[str]:
        sign = "-" if x < 0 else ""
        a, b = abs(x.numerator), x.denominator
        out = [f"{sign}{a}/{b}", f"{sign}\\frac{{{a}}}{{{b}}}", f"{sign}\\dfrac{{{a}}}{{{b}}}",
               f"{sign}{a * 3}/{b * 3}"]
        if b == 1:
            out += [f"{sign}{a}", f"{sign}{a}.0", f"{sign}{a}.00"]
        for places in (1, 2, 3, 4, 6, 7, 9):
            out.append(dec(x, places))  # exact when b divides 10**places, else rounded
        return out

    pairs: list[tuple[str, str]] = []
    specials = ["0", "-0", "0.0", "-0.0", "1", "-1", "0.1", "1/10", "0.333", "1/3", "0.3333333",
                "0.333333", "2/3", "0.666667", "0.6666667", "1e3", "1000", "1,000", "007", "7",
                "+5", "5", ".5", "5.", "0.5", "1/2", "\\frac{1}{2}", "\\tfrac{1}{2}", "-\\frac{1}{2}",
                "\\frac{-1}{2}", "99999999999", "999999999999", "9999999999999", "123456.789012",
                "123456789.012", "0.000001", "0.0000001", "0.0000005", "0.0000015", "1/1000000",
                "e", "E", "i", "I", "x", "B", "π", "2.718282", "3.141593"]
    pairs += [(a, b) for a in specials for b in specials if a != b]
    letters = [c for c in string.ascii_letters]
    nums = ["0", "1", "2", "7", "-3", "0.5", "1/2", "\\frac{3}{4}", "2.718282", "3.141593", "12"]
    pairs += [(a, b) for a in letters for b in nums] + [(b, a) for a in letters for b in nums]

    def cplx(re_: int, im: int) -> str:
        sp = rng.choice(["", " "])
        b = "" if abs(im) == 1 and rng.random() < 0.5 else str(abs(im))
        return f"{re_}{sp}{'-' if im < 0 else '+'}{sp}{b}i"

    def symmetric(a: str) -> str:
        brackets = rng.choice(["()", "[]", "(]", "[)"])
        return f"{brackets[0]}-{a},{rng.choice(['', ' '])}{a}{brackets[1]}"

    for _ in range(n // 4):  # a + bi against a + bi, and against a number
        re_, im = rng.randint(-20, 20), rng.choice([0, 1, -1, rng.randint(-20, 20)])
        z = cplx(re_, im)
        w = rng.choice([cplx(re_, im), cplx(re_ + rng.choice([0, 1]), im + rng.choice([0, -1])),
                        cplx(rng.randint(-20, 20), rng.randint(-20, 20))])
        real = rng.choice([str(re_), f"{re_}.0", str(im), f"{re_}/{rng.randint(1, 9)}", "0"])
        pairs += [(z, w), (z, real), (real, z)]
    for _ in range(n // 4):  # a symmetric pair or interval against a number
        k = rng.randint(1, 50)
        a = rng.choice([str(k), f"{k}.5", f"0.0{k}", f"\\sqrt{{{k}}}", f"{rng.randint(1, 9)}\\sqrt{{{k}}}",
                        f"\\frac{{{k}}}{{{rng.randint(1, 9)}}}", "0", f"-{k}"])
        scalar = rng.choice([str(k), f"-{k}", "0", f"{k}.5", f"{k}/2", f"\\frac{{{k}}}{{2}}"])
        pairs += [(scalar, symmetric(a)), (symmetric(a), scalar)]
    for _ in range(n // 4):  # a bracketed pair, tuple or interval of numbers against a number
        k = rng.randint(1, 60)
        choices = [str(k), str(-k), f"{k}.5", f"{k}.0", "0", "-0", f"{k}/3", f"\\frac{{{k}}}{{2}}", "000",
                   "500", "050", f"{k}.0000001"]
        items = [rng.choice([*choices, str(rng.randint(-60, 60))]) for _ in range(rng.choice([2, 2, 2, 3, 4]))]
        if rng.random() < 0.2:
            items = [items[0]] * len(items)
        brackets = rng.choice(["()", "[]", "(]", "[)"])
        tup = brackets[0] + rng.choice([",", ", "]).join(items) + brackets[1]
        scalar = rng.choice([*items, str(k), "0", f"{k}{items[-1]}", "".join(items).replace("-", "")])
        pairs += [(scalar, tup), (tup, scalar)]
    for _ in range(n):
        shape = rng.random()
        den = rng.choice([1, 1, 2, 3, 4, 5, 7, 8, 10, 16, 25, 100, 1000, rng.randint(1, 10**4)])
        num = rng.choice([rng.randint(-20, 20), rng.randint(-10**4, 10**4), rng.randint(-10**9, 10**9)])
        x = Fraction(num, den)
        if shape < 0.4:  # the same number, two ways
            a, b = rng.sample(forms(x), 2)
        elif shape < 0.7:  # a nearby number (a rounding, an off-by-a-little)
            y = x + Fraction(rng.choice([1, -1]), rng.choice([1, 10, 100, 1000, 10**4, 10**6, 10**7]))
            a, b = rng.choice(forms(x)), rng.choice(forms(y))
        else:  # any two numbers
            y = Fraction(rng.randint(-10**5, 10**5), rng.choice([1, 2, 3, 10, 100, 7]))
            a, b = rng.choice(forms(x)), rng.choice(forms(y))
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    return pairs


def _expressions(n: int, rng: random.Random) -> list[str]:
    """Polynomial and rational expressions in plain syntax (``2x``, ``20 - (x2 +26/x2 )``),
    some constant in disguise (``x - x + 2``, ``x/x*2``, ``x2 - 2x``), and near misses the reader
    must leave alone (functions, words, units, ``e``, ``i``, upper case, relations, intervals,
    sets, exponents it does not read)."""
    letters = ["x", "y", "k", "n", "a", "b", "p", "z", "x", "x"]
    others = ["c", "e", "i", "m", "s", "t", "X", "E", "I", "d", "l", "o"]

    def atom(depth: int) -> str:
        r = rng.random()
        if r < 0.35:
            return str(rng.choice([0, 1, 2, 3, 5, 7, 10, 26, rng.randint(0, 99)]))
        if r < 0.75:
            return rng.choice(letters if rng.random() < 0.9 else others)
        if depth > 2:
            return rng.choice(letters)
        return f"({expr(depth + 1)})"

    def power(depth: int) -> str:
        a = atom(depth)
        if rng.random() < 0.2:
            a += "^" + rng.choice(["2", "3", "0", "1", "2", "23", "x", "-1", "{2}", "2^2"])
        return a

    def implicit(depth: int) -> str:
        out = power(depth)
        while rng.random() < 0.3:
            out += rng.choice(["", "", " "]) + power(depth)
        return out

    def product(depth: int) -> str:
        out = implicit(depth)
        while rng.random() < 0.35:
            out += rng.choice(["*", "/", " / ", "*-"]) + implicit(depth)
        return out

    def expr(depth: int) -> str:
        out = ("-" if rng.random() < 0.15 else "") + product(depth)
        while rng.random() < 0.45:
            out += rng.choice(["+", "-", " + ", " - "]) + product(depth)
        return out

    fixed = ["x - x + 2", "x/x*2", "2^x", "x=2", "k=2", "2x", "x2 - 2x", "(x+1)^2 - x^2 - 2x", "2x/2x",
             "x^2/x - x + 2", "xy - yx + 2", "ab", "f(x)", "x(x+1)", "2c", "2m", "x^23", "x^2^2", "x^-1",
             "2 3", "(x-x)/(x-x)", "x/0", "X - x + 2", "x < 2", "x \\le 2", "(x, 2)", "[x, 2]", "\\{x\\}",
             "2x + 1 = 5", "20 - (x2 +26/x2 )", "e - e + 2", "i^2 + 3", "2x^0", "0x + 2", "(x - 1)(x + 1) - x^2 + 3",
             "x^2(y)", "x^2 (y+1)", "x^1(y+1)", "2(x)(3)", "26(26)x", "(2)x", "1 (0663)x", "x - 07"]
    return fixed + [expr(0) for _ in range(n)]


def _reader_agrees(values: list[str]) -> tuple[int, int, list[str]]:
    """For each value that ``_nonconstant`` reads, evaluate Math-Verify's parse of it with sympy
    at each of ``_POINTS``: (read, points compared, disagreements)."""
    import sympy
    from math_verify import parse

    from tracestop.answers import equivalence

    read = compared = 0
    bad: list[str] = []
    for value in values:
        tokens = equivalence._expr_tokens(value)
        if tokens is None:
            continue
        parsed = parse(f"${value}$")
        expr = next((p for p in parsed if isinstance(p, sympy.Basic)), None)
        for point in equivalence._POINTS:
            try:
                mine = equivalence._ExprReader(tokens, point).read()
            except ZeroDivisionError:
                continue
            except equivalence._NotPlain:
                break
            if expr is None:
                bad.append(f"{value!r}: read as {mine}, Math-Verify parses no expression")
                break
            subs = {}
            for sym in expr.free_symbols:
                if sym.name in point:
                    x = point[sym.name]
                    subs[sym] = sympy.Rational(x.numerator, x.denominator)
            if len(subs) != len(expr.free_symbols):
                bad.append(f"{value!r}: Math-Verify reads other symbols: {expr}")
                break
            theirs = expr.doit().subs(subs)
            compared += 1
            if sympy.simplify(theirs - sympy.Rational(mine.numerator, mine.denominator)) != 0:
                bad.append(f"{value!r}: read as {mine} at a point, Math-Verify's {expr} gives {theirs}")
                break
        else:
            read += 1
    return read, compared, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--limit", type=int, default=0, help="only the first N dev traces (0: all)")
    ap.add_argument("--generated", type=int, default=4000, help="generated number pairs")
    ap.add_argument("--expressions", type=int, default=1500,
                    help="generated expressions, each against a number both ways")
    args = ap.parse_args()

    from tracestop.answers import equivalence
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.replay import prepare
    from tracestop.monitor import Monitor

    asked: dict[tuple[str, str], None] = {}
    inner = equivalence._equivalent_math

    def recording(gold: str, pred: str, main: bool) -> bool:
        asked[gold, pred] = None
        return inner(gold, pred, main)

    equivalence._equivalent_math = recording  # type: ignore[assignment]  # ``equivalent`` reads it per call
    t0 = time.perf_counter()
    traces = sorted(load_traces(data_dir(args.data), split="dev").traces, key=lambda t: t.id)
    if args.limit:
        traces = traces[: args.limit]
    for t in traces:
        prep = prepare(t)
        for rec in prep.records:
            if rec.answer.current is not None:
                prep.is_correct(rec.answer.current)
        m = Monitor("default", question=t.question, benchmark=t.benchmark)
        for i in range(0, len(t.trace), 40):
            m.feed(t.trace[i : i + 40])
        m.end()
    n_dev = len(asked)
    print(f"{len(traces)} dev traces: {n_dev} distinct math pairs asked "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    equivalence._equivalent_math = inner

    exprs = _expressions(args.expressions, random.Random(1))
    n_read, n_points, misread = _reader_agrees(exprs)
    print(f"expressions: {len(exprs)} generated, {n_read} read by the fast path's expression reader, "
          f"{n_points} point evaluations against Math-Verify's parse, {len(misread)} disagreements")
    for line in misread:
        print(f"MISREAD {line}")
    rng = random.Random(2)
    numbers = ["0", "1", "2", "3", "-2", "7", "0.5", "1/2", "\\frac{3}{4}", "26", "2.0"]
    expr_pairs: list[tuple[str, str]] = []
    for e in exprs:
        c = rng.choice(numbers)
        expr_pairs += [(c, e), (e, c)]
    generated = _generated(args.generated, random.Random(0))
    pairs = list(asked) + generated + expr_pairs
    n_gen = n_dev + len(generated)
    decided = {"dev": [0, 0, 0], "generated": [0, 0, 0], "expressions": [0, 0, 0]}  # decided, True, False
    bad = 0
    for k, (gold, pred) in enumerate(pairs):
        origin = "dev" if k < n_dev else "generated" if k < n_gen else "expressions"
        g, p = equivalence.latex_math(gold), equivalence.latex_math(pred)
        fast = equivalence._fast_verdict(g, p)
        if fast is None:
            continue
        try:
            slow = equivalence._verify(g, p, True)
        except Exception:  # noqa: BLE001 - as ``equivalent``: an error reads as different
            slow = False
        c = decided[origin]
        c[0] += 1
        c[1 if fast else 2] += 1
        if fast != slow:
            bad += 1
            print(f"DISAGREE {origin}: {gold!r} vs {pred!r}: fast path {fast}, Math-Verify {slow}")
    for origin, total in (("dev", n_dev), ("generated", len(generated)), ("expressions", len(expr_pairs))):
        n, yes, no = decided[origin]
        print(f"{origin:11s}: {total} pairs, fast path decides {n} ({yes} same, {no} different)")
    print(f"disagreements with Math-Verify: {bad}")
    return 1 if bad or misread else 0


if __name__ == "__main__":
    sys.exit(main())

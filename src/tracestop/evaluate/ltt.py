"""Learn-then-Test on net accuracy loss: which stop configurations are certified.

Risk of a configuration on a trace: ``+1`` if it is a *regret* (right at full length, wrong when
stopped), ``-1`` if it is a *rescue* (wrong at full length, right when stopped), else 0. The net
loss rate is ``R = P(regret) - P(rescue)``. For each configuration we test

    H0: R > alpha    against    H1: R <= alpha

with the p-value ``net_loss_pvalue``: the smallest ``delta`` at which a one-sided
Clopper-Pearson upper bound on the regret rate minus a lower bound on the rescue rate (each
at ``delta / 2``, a union bound) is at most ``alpha``. It is valid (super-uniform under H0)
because the bounds are nested in ``delta``.

Learn-then-Test (Angelopoulos, Bates, Candès, Jordan, Lei 2021) turns the p-values into a
family-wise guarantee: order the configurations once, from the most cautious to the most
aggressive (a fixed sequence chosen *before* looking at the calibration traces' losses, e.g.
a parameter path), test them in that order at level ``delta`` and stop at the first
non-rejection. With probability at least ``1 - delta`` over the calibration traces, every
certified configuration has net loss rate at most ``alpha`` on new traces drawn like them.
Pick the certified one that saves the most tokens.

Ordering by the calibration traces' own losses would void the guarantee; ordering by a
label-free quantity (tokens saved) is safe but puts configurations that fail early in the
sequence, where they end it. ``split_learn_then_test`` orders on one half of the problems and
tests on the other: the order is then fixed before the test half's losses are seen, and the
guarantee is about traces exchangeable with the test half (half the traces, so a larger
``certifiable`` minimum applies to it).

The traces must be exchangeable with the ones the guarantee is about: several samples of the
same problem are not independent, so calibrate on one trace per problem (or per-problem
averages) when a set repeats problems.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tracestop.errors import ConfigError

__all__ = [
    "Certified",
    "LTTConfig",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "fixed_sequence",
    "learn_then_test",
    "net_loss_bound",
    "net_loss_pvalue",
    "order_by_half",
    "split_learn_then_test",
]


def _log_binom_cdf(k: int, n: int, p: float) -> float:
    """log P(X <= k) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 0.0 if k >= n else -math.inf
    lp, lq = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        for i in range(k + 1)
    ]
    m = max(terms)
    return m + math.log(sum(math.exp(t - m) for t in terms))


def clopper_pearson_upper(k: int, n: int, alpha: float = 0.05) -> float:
    """One-sided (1 − alpha) Clopper–Pearson upper bound on a binomial rate: the p with
    P(X <= k; n, p) = alpha.

    This is ``scipy.stats.beta.ppf(1 - alpha, k + 1, n - k)``, computed here by bisection on
    the binomial CDF: scipy is not a dependency, and its answer differs in the last bits (up to
    5e-15), which would change the bytes of ``tracestop calibrate --json``."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    target = math.log(alpha)
    for _ in range(60):
        mid = (lo + hi) / 2
        if _log_binom_cdf(k, n, mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def clopper_pearson_lower(k: int, n: int, alpha: float = 0.05) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial rate."""
    if n == 0 or k <= 0:
        return 0.0
    return 1.0 - clopper_pearson_upper(n - k, n, alpha)


def net_loss_bound(regrets: int, rescues: int, n: int, delta: float) -> float:
    """An upper confidence bound (level ``1 - delta``) on the net loss rate
    ``P(regret) - P(rescue)``: Clopper-Pearson upper on regrets minus lower on rescues, each at
    ``delta / 2``."""
    if n <= 0:
        return 1.0
    if not (0 <= regrets and 0 <= rescues and regrets + rescues <= n):
        raise ConfigError(f"need 0 <= regrets, rescues and regrets + rescues <= n, got "
                          f"{regrets}, {rescues}, {n}")
    return clopper_pearson_upper(regrets, n, delta / 2) - clopper_pearson_lower(rescues, n, delta / 2)


def net_loss_pvalue(regrets: int, rescues: int, n: int, alpha: float) -> float:
    """A valid p-value for H0 "net loss rate > alpha": the smallest ``delta`` with
    ``net_loss_bound(..., delta) <= alpha`` (1.0 when even ``delta = 1`` does not do)."""
    if net_loss_bound(regrets, rescues, n, 1.0) > alpha:
        return 1.0
    lo, hi = 1e-12, 1.0
    if net_loss_bound(regrets, rescues, n, lo) <= alpha:
        return lo
    for _ in range(50):
        mid = math.sqrt(lo * hi)
        if net_loss_bound(regrets, rescues, n, mid) <= alpha:
            hi = mid
        else:
            lo = mid
    return hi


def fixed_sequence(pvalues: Sequence[float], delta: float) -> int:
    """Fixed-sequence testing: how many leading hypotheses are rejected at level ``delta``
    (testing stops at the first p-value above it). Controls the family-wise error at ``delta``
    without a multiplicity correction, when the order is fixed in advance."""
    n = 0
    for p in pvalues:
        if p > delta:
            break
        n += 1
    return n


@dataclass(frozen=True)
class LTTConfig:
    """One configuration's calibration outcome: its regrets, rescues, traces and the share of
    thinking tokens it saves."""

    spec: str
    regrets: int
    rescues: int
    n: int
    saved: float


@dataclass(frozen=True)
class Certified:
    """Learn-then-Test's answer: the configurations certified (a prefix of the path), their
    p-values, and the one that saves the most (``None``: nothing certified; do not stop)."""

    alpha: float
    delta: float
    certified: tuple[LTTConfig, ...]
    pvalues: tuple[float, ...]
    choice: LTTConfig | None
    #: the sequence tested, in order (``pvalues`` are for it)
    path: tuple[LTTConfig, ...] = ()


def learn_then_test(path: Sequence[LTTConfig], alpha: float, delta: float) -> Certified:
    """Certify a prefix of ``path`` (ordered most cautious first, fixed before seeing the
    losses) with net loss rate at most ``alpha`` at family-wise level ``delta``; choose the
    certified configuration that saves the most tokens."""
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"delta must be in (0, 1), got {delta}")
    if not -1.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha is a rate in [-1, 1], got {alpha}")
    ps = tuple(net_loss_pvalue(c.regrets, c.rescues, c.n, alpha) for c in path)
    k = fixed_sequence(ps, delta)
    cert = tuple(path[:k])
    choice = max(cert, key=lambda c: c.saved) if cert else None
    return Certified(alpha, delta, cert, ps, choice, tuple(path))


def order_by_half(order_half: Sequence[LTTConfig], alpha: float, delta: float) -> list[str]:
    """The Learn-then-Test sequence, fixed on the ordering half: first the configurations whose
    p-value there is at most ``delta`` (likely to pass on the other half), by the tokens they
    save there, most cautious first; then the others in the same order (reached only if every
    earlier one is certified)."""
    pv = {c.spec: net_loss_pvalue(c.regrets, c.rescues, c.n, alpha) for c in order_half}
    return [k[2] for k in sorted((pv[c.spec] > delta, c.saved, c.spec) for c in order_half)]


def split_learn_then_test(order_half: Sequence[LTTConfig], test_half: Sequence[LTTConfig], alpha: float,
                          delta: float) -> Certified:
    """Learn-then-Test with the sequence ordered on one half of the calibration traces
    (``order_by_half``) and tested on the other (``test_half``: the same configurations, by
    spec, on disjoint traces; split by problem, so that no problem is in both). With
    probability at least ``1 - delta`` over the test half, every certified configuration has net
    loss rate at most ``alpha`` on new traces exchangeable with the test half's."""
    by_spec = {c.spec: c for c in test_half}
    if set(by_spec) != {c.spec for c in order_half}:
        raise ConfigError("the two halves must hold the same configurations")
    return learn_then_test([by_spec[s] for s in order_by_half(order_half, alpha, delta)], alpha, delta)

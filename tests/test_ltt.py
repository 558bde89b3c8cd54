"""Learn-then-Test on net loss: bounds, p-values (validity by simulation), fixed-sequence."""

from __future__ import annotations

import random

import pytest

from tracestop.errors import ConfigError
from tracestop.evaluate.ltt import (
    LTTConfig,
    clopper_pearson_lower,
    fixed_sequence,
    learn_then_test,
    net_loss_bound,
    net_loss_pvalue,
)


def test_bounds():
    assert clopper_pearson_lower(0, 100, 0.05) == 0.0
    lo = clopper_pearson_lower(10, 100, 0.05)
    assert 0.05 < lo < 0.10
    # 0 regrets in n: the classic 1 - (delta/2)^(1/n) upper bound
    n, d = 300, 0.1
    assert net_loss_bound(0, 0, n, d) == pytest.approx(1 - (d / 2) ** (1 / n), rel=1e-6)
    # rescues lower the bound, regrets raise it
    assert net_loss_bound(2, 10, 200, 0.1) < net_loss_bound(2, 0, 200, 0.1) < net_loss_bound(5, 0, 200, 0.1)
    with pytest.raises(ConfigError):
        net_loss_bound(5, 6, 10, 0.1)


def test_pvalue_is_the_smallest_delta_that_certifies():
    p = net_loss_pvalue(1, 8, 200, 0.01)
    assert 0 < p < 1
    assert net_loss_bound(1, 8, 200, p * 1.01) <= 0.01 < net_loss_bound(1, 8, 200, p * 0.9)
    # 185 traces, 0 regrets, no rescues: 1 point cannot be certified at delta = 0.1
    assert net_loss_pvalue(0, 0, 185, 0.01) > 0.1
    # 300 regret-free traces can (1 - 0.05 ** (1 / 300) < 1 %)
    assert net_loss_pvalue(0, 0, 300, 0.01) <= 0.1


def test_pvalue_is_valid_under_the_null():
    """At the boundary of H0 (net loss rate exactly alpha) P(p <= delta) <= delta."""
    rng = random.Random(0)
    n, q_reg, q_res, alpha, delta = 150, 0.06, 0.04, 0.02, 0.2
    hits = 0
    sims = 200
    for _ in range(sims):
        reg = res = 0
        for _ in range(n):
            u = rng.random()
            reg += u < q_reg
            res += q_reg <= u < q_reg + q_res
        hits += net_loss_bound(reg, res, n, delta) <= alpha
    assert hits / sims <= delta


def test_fixed_sequence_stops_at_the_first_failure():
    assert fixed_sequence([0.01, 0.02, 0.5, 0.01], 0.05) == 2
    assert fixed_sequence([0.5, 0.01], 0.05) == 0
    assert fixed_sequence([], 0.05) == 0


def test_learn_then_test_picks_the_most_saving_certified():
    path = [LTTConfig("cautious", 0, 40, 400, 0.05), LTTConfig("middle", 1, 40, 400, 0.20),
            LTTConfig("aggressive", 30, 0, 400, 0.60), LTTConfig("after-a-failure", 0, 40, 400, 0.9)]
    r = learn_then_test(path, alpha=0.01, delta=0.1)
    assert [c.spec for c in r.certified] == ["cautious", "middle"]
    assert r.choice is not None and r.choice.spec == "middle"
    assert learn_then_test([LTTConfig("x", 5, 0, 50, 0.5)], 0.01, 0.1).choice is None
    with pytest.raises(ConfigError):
        learn_then_test(path, 0.01, 1.5)


def test_split_learn_then_test_orders_on_one_half_and_tests_on_the_other():
    from tracestop.evaluate.ltt import order_by_half, split_learn_then_test

    # on the ordering half "risky" looks bad and saves the most: it goes after the safe ones,
    # so it cannot end the sequence before them (ordering by tokens saved alone would test it
    # second and stop there)
    order = [LTTConfig("a", 0, 0, 800, 0.05), LTTConfig("risky", 40, 0, 800, 0.08), LTTConfig("b", 1, 0, 800, 0.10)]
    assert order_by_half(order, 0.01, 0.1) == ["a", "b", "risky"]
    test = [LTTConfig("a", 0, 0, 800, 0.05), LTTConfig("risky", 40, 0, 800, 0.08), LTTConfig("b", 1, 0, 800, 0.10)]
    r = split_learn_then_test(order, test, 0.01, 0.1)
    assert [c.spec for c in r.certified] == ["a", "b"] and r.choice is not None and r.choice.spec == "b"
    assert [c.spec for c in r.path] == ["a", "b", "risky"]
    # the label-free order (by tokens saved) stops at "risky" and never reaches "b"
    plain = learn_then_test(sorted(test, key=lambda c: c.saved), 0.01, 0.1)
    assert [c.spec for c in plain.certified] == ["a"]
    # what is tested is the test half's outcomes, not the ordering half's
    bad = [LTTConfig("a", 0, 0, 800, 0.05), LTTConfig("risky", 40, 0, 800, 0.08), LTTConfig("b", 30, 0, 800, 0.10)]
    assert [c.spec for c in split_learn_then_test(order, bad, 0.01, 0.1).certified] == ["a"]
    with pytest.raises(ConfigError, match="same configurations"):
        split_learn_then_test(order, test[:2], 0.01, 0.1)


def test_split_learn_then_test_controls_the_family_wise_error():
    # every configuration has a true net loss rate above alpha: the chance that anything is
    # certified must stay at most delta, whatever the ordering half showed
    from tracestop.evaluate.ltt import split_learn_then_test

    rng = random.Random(7)
    alpha, delta, n = 0.02, 0.1, 400
    rates = [0.025, 0.03, 0.04, 0.06]
    errors = 0
    trials = 400
    for _ in range(trials):
        def draw(rate):
            return sum(rng.random() < rate for _ in range(n))
        order = [LTTConfig(f"c{i}", draw(r), 0, n, r) for i, r in enumerate(rates)]
        test = [LTTConfig(f"c{i}", draw(r), 0, n, r) for i, r in enumerate(rates)]
        errors += bool(split_learn_then_test(order, test, alpha, delta).certified)
    assert errors / trials <= delta

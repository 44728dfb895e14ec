"""The pair-selection rule of `select: predicted` (breed/predict.py) on made-up numbers."""
import math

import numpy as np
import pytest

from kinmerge.search.breed.predict import (PairStats, candidate_pairs, choose, fit_gain, predict,
                                    width)

# Five children on a centred design, (kinship, |f(a) - f(b)|) = the four corners of
# {-1, 1} x {0, 0.2} and the centre (0, 0.1), with merge gains y. By hand (least squares on
# an orthogonal design): slope_kin = sum(kin * y) / sum(kin^2) = -0.32 / 4 = -0.08;
# slope_d = sum((d - 0.1) * y) / sum((d - 0.1)^2) = -0.012 / 0.04 = -0.3;
# intercept = mean(y) - slope_d * mean(d) = -0.006 + 0.03 = 0.024.
DESIGN = [(-1.0, 0.0, 0.10), (1.0, 0.0, -0.06), (-1.0, 0.2, 0.04), (1.0, 0.2, -0.12),
          (0.0, 0.1, 0.01)]


def child(kin: float, d: float, gain: float, fa: float = 0.5) -> tuple:
    """(kinship, f(a), f(b), f(child)) of a child with |f(a) - f(b)| = d and this gain."""
    fb = fa + d
    return (kin, fa, fb, (fa + fb) / 2 + gain)


def pair(a, b, fa, fb, kin, order):
    return PairStats(a, b, fa, fb, kin, order)


def test_the_fit_is_the_hand_computed_least_squares():
    coef = fit_gain([child(*c) for c in DESIGN])
    assert coef == pytest.approx([0.024, -0.08, -0.3], abs=1e-5)
    # a new pair: kinship 0.5, f = 0.6 and 0.7: gain 0.024 - 0.04 - 0.03 = -0.046
    p = predict(pair("a", "b", 0.6, 0.7, 0.5, (0, 1)), coef, "pcc")
    assert p.model == "fit"
    assert p.gain == pytest.approx(-0.046, abs=1e-5)
    assert p.fitness == pytest.approx(0.65 - 0.046, abs=1e-5)
    assert p.useless  # 0.604 is below the better parent's 0.7
    # kinship -0.5, equal parents at 0.6: gain 0.024 + 0.04 = 0.064 -> 0.664 > 0.6
    q = predict(pair("a", "c", 0.6, 0.6, -0.5, (0, 2)), coef, "pcc")
    assert q.gain == pytest.approx(0.064, abs=1e-5) and not q.useless


def test_an_exact_linear_law_is_recovered_and_the_order_of_children_does_not_matter():
    law = lambda k, d: 0.02 - 0.1 * k - 0.3 * d  # noqa: E731
    kids = [child(k, d, law(k, d), fa) for k, d, fa in
            [(0.1, 0.0, 0.5), (0.5, 0.1, 0.4), (0.9, 0.05, 0.6), (0.3, 0.2, 0.3), (0.7, 0.15, 0.5)]]
    coef = fit_gain(kids)
    assert coef == pytest.approx([0.02, -0.1, -0.3], abs=1e-4)
    assert fit_gain(kids[::-1]) == pytest.approx(coef, abs=1e-12)


def test_the_prior_holds_until_four_children_with_a_kinship_are_scored():
    kids = [child(*c) for c in DESIGN[:3]]
    assert fit_gain(kids) is None
    assert fit_gain(kids + [child(math.nan, 0.1, 0.0)]) is None  # undefined kinship: left out
    assert fit_gain(kids + [child(*DESIGN[3])]) is not None


def test_the_prior_for_similarities_is_minus_kinship_and_ranks_only():
    cands = [pair("a", "b", 0.5, 0.5, 0.30, (0, 1)),   # 0.5 - 0.30 = 0.20
             pair("a", "c", 0.5, 0.5, 0.10, (0, 2)),   # 0.40
             pair("b", "c", 0.8, 0.6, 0.45, (1, 2)),   # 0.70 - 0.45 = 0.25
             pair("a", "d", 0.5, 0.5, 0.10, (0, 3)),   # 0.40, younger than (a, c)
             pair("b", "d", 0.5, 0.5, math.nan, (1, 3))]  # undefined: last
    chosen, skipped = choose(cands, None, "pcc", m=10)
    assert skipped == 0  # the prior skips nothing, though every gain is negative
    assert [(c.a, c.b) for c, _ in chosen] == [("a", "c"), ("a", "d"), ("b", "c"), ("a", "b"),
                                               ("b", "d")]
    p = chosen[0][1]
    assert (p.model, p.gain, p.fitness) == ("prior", -0.10, 0.40)
    assert [(c.a, c.b) for c, _ in choose(cands, None, "cs", m=2)[0]] == [("a", "c"), ("a", "d")]


def test_the_prior_for_ed_is_zero_gain_ranked_by_larger_distance():
    cands = [pair("a", "b", 0.9, 0.9, 1.0, (0, 1)),
             pair("a", "c", 0.1, 0.1, 3.0, (0, 2)),
             pair("b", "c", 0.5, 0.5, 2.0, (1, 2)),
             pair("a", "d", 0.5, 0.5, 3.0, (0, 3))]
    chosen, skipped = choose(cands, None, "ed", m=3)
    assert skipped == 0
    assert [(c.a, c.b) for c, _ in chosen] == [("a", "c"), ("a", "d"), ("b", "c")]
    assert {(p.model, p.gain) for _, p in chosen} == {("prior", 0.0)}
    assert chosen[0][1].fitness == 0.1  # the mean of the parents


def test_the_fit_skips_pairs_not_predicted_above_their_better_parent():
    coef = np.array([0.0, 0.0, 0.5])  # gain = |f(a) - f(b)| / 2: the child ties the better
    tie = pair("a", "b", 0.25, 0.75, 0.0, (0, 1))
    assert predict(tie, coef, "pcc").fitness == 0.75 and predict(tie, coef, "pcc").useless
    up = np.array([0.01, -0.1, 0.0])  # gain = 0.01 - 0.1 kinship
    cands = [pair("a", "b", 0.5, 0.5, 0.05, (0, 1)),   # +0.005: kept
             pair("a", "c", 0.5, 0.5, 0.2, (0, 2)),    # -0.01: skipped
             pair("b", "c", 0.5, 0.5, -0.1, (1, 2)),   # +0.02: kept, first
             pair("c", "d", 0.5, 0.5, math.nan, (2, 3))]  # undefined: skipped
    chosen, skipped = choose(cands, up, "pcc", m=10)
    assert [(c.a, c.b) for c, _ in chosen] == [("b", "c"), ("a", "b")]
    assert skipped == 2
    assert [p.gain for _, p in chosen] == pytest.approx([0.02, 0.005])
    assert choose(cands[1:2], up, "pcc", m=4) == ([], 1)


def test_the_width_is_greedys_pairs_plus_one_and_caps_the_choice():
    assert [width(k) for k in (2, 3, 4, 5)] == [2, 4, 7, 11]
    cands = [pair(f"m{i}", f"n{i}", 0.5, 0.5, i / 10, (i, i + 1)) for i in range(6)]
    chosen, skipped = choose(cands, None, "pcc", m=width(3))
    assert [c.a for c, _ in chosen] == ["m0", "m1", "m2", "m3"] and skipped == 0


def test_candidates_need_a_top_k_member_and_no_ancestry_and_no_earlier_merge():
    names = ["p1", "p2", "p3", "c"]  # c = p1 + p2
    # generation 1 (top None): every pair not merged before
    assert candidate_pairs(names[:3], None, set(), {}) == [("p1", "p2"), ("p1", "p3"),
                                                           ("p2", "p3")]
    anc = {"p1": set(), "p2": set(), "p3": set(), "c": {"p1", "p2"}}
    found = candidate_pairs(names, {"c", "p3"}, {("p1", "p2")}, anc)
    # (p1, p2) merged before; (p1, c) and (p2, c): ancestors; every other pair has c or p3
    assert found == [("p1", "p3"), ("p2", "p3"), ("p3", "c")]
    assert candidate_pairs(names, {"c"}, {("p1", "p2")}, anc) == [("p3", "c")]


def test_the_fit_waits_for_children_spanning_enough_kinship():
    """Four children of near-equal kinship cannot tell what kinship does: the prior stays."""
    from kinmerge.search.breed.predict import MIN_SPREAD, fit_gain
    narrow = [(0.10, .5, .6, .70), (0.12, .5, .5, .60), (0.11, .4, .6, .55), (0.13, .7, .7, .8)]
    assert MIN_SPREAD == 0.2 and fit_gain(narrow) is None
    wide = narrow + [(0.32, .5, .5, .5)]
    assert fit_gain(wide) is not None
    # ed is a distance without a scale: the spread is relative to the largest value
    eds = [(50.0 + i, *rest) for i, (_, *rest) in enumerate(narrow)]  # span 3 of 53: < 0.2
    assert fit_gain(eds) is None
    assert fit_gain(eds + [(80.0, .5, .5, .4)]) is not None  # span 30 of 80

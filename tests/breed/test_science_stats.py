"""The breeding experiment's statistics (tools/results/science_stats.py) on hand-made data
whose answers are known, worked out by hand here; then fuzzed (hypothesis, each case within
a time limit that counts as a failure)."""
from __future__ import annotations

import math
import os
from datetime import timedelta

import pytest
from hypothesis import given, settings, strategies as st

from tools.results import science as S
from tools.results import science_stats as T

SLOW = os.environ.get("KINMERGE_SLOW") == "1"
FUZZ = settings(max_examples=1000 if SLOW else 60, deadline=timedelta(seconds=3),
                database=None, derandomize=not SLOW)


def test_sign_test_by_hand():
    # 6 wins of 6: p = 2 / 2^6
    assert T.sign_test([0.1] * 6) == {"wins": 6, "losses": 0, "ties": 0, "p": 2 / 64}
    # 8 wins, 2 losses, 1 tie: p = 2 (C(10,0) + C(10,1) + C(10,2)) / 2^10
    got = T.sign_test([1.0] * 8 + [-1.0] * 2 + [0.0])
    assert got == {"wins": 8, "losses": 2, "ties": 1, "p": 2 * 56 / 1024}
    assert T.sign_test([0.0, 0.0])["p"] == 1.0


def test_wilcoxon_exact_by_hand():
    # [1, 2, 3, -4, 5]: W+ = 11 of 15; the 32 sign patterns give W+ >= 11 seven times and
    # W+ <= 4 seven times: p = 14 / 32
    got = T.wilcoxon_exact([1, 2, 3, -4, 5])
    assert got["w_plus"] == 11 and got["p"] == pytest.approx(14 / 32)
    assert T.wilcoxon_exact([0.5] * 6)["p"] == pytest.approx(2 / 64)  # ties, all positive
    # ties in |d|: [2, 2, 2, -1] has ranks 3, 3, 3, 1; W+ = 9 of 10; sums >= 9: {3,3,3},
    # {1,3,3,3}; <= 1: {}, {1}: p = 4 / 16
    got = T.wilcoxon_exact([2, 2, 2, -1])
    assert got["w_plus"] == 9 and got["p"] == pytest.approx(0.25)
    # zeros are dropped (Wilcoxon's convention): the same as without them
    assert T.wilcoxon_exact([0, 1, 2, 3, -4, 5, 0])["p"] == pytest.approx(14 / 32)
    assert T.wilcoxon_exact([0.0, 0.0])["p"] == 1.0


def test_student_t_quantiles_are_the_tables():
    # the printed 97.5% points of Student's t
    for df, want in ((1, 12.7062047), (4, 2.7764451), (9, 2.2621572), (30, 2.0422725)):
        assert T.t_quantile(0.975, df) == pytest.approx(want, abs=1e-6)
    assert T.t_cdf(0.0, 7) == pytest.approx(0.5)
    assert T.t_cdf(-2.2621572, 9) == pytest.approx(0.025, abs=1e-8)


def test_t_and_bootstrap_intervals_by_hand():
    # mean 3, sd sqrt(2.5), se sqrt(0.5); half-width t(.975, 4) sqrt(0.5)
    got = T.t_interval([1, 2, 3, 4, 5])
    half = 2.7764451052 * math.sqrt(0.5)
    assert (got["mean"], got["lo"], got["hi"]) == pytest.approx((3, 3 - half, 3 + half))
    assert math.isnan(T.t_interval([0.3])["lo"])
    flat = T.mean_interval_bootstrap([0.25] * 7)
    assert flat == {"mean": 0.25, "lo": 0.25, "hi": 0.25}
    b = T.mean_interval_bootstrap([0.1, -0.2, 0.3, 0.05, 0.0], seed=3)
    assert b == T.mean_interval_bootstrap([0.1, -0.2, 0.3, 0.05, 0.0], seed=3)
    assert b["lo"] < b["mean"] < b["hi"] and b["lo"] >= -0.2 and b["hi"] <= 0.3


def test_permutation_within_seeds_by_hand():
    # one seed, x = y = 1..4: of the 24 orders only the identity and the reverse reach |r| = 1
    got = T.permutation_r([1, 2, 3, 4], [1, 2, 3, 4], ["s"] * 4)
    assert got == {"r": pytest.approx(1.0), "p": pytest.approx(2 / 24), "n": 4, "exact": True}
    # two seeds of two: 2 x 2 within-seed orders, |r| = 1 for two of them: p = 1/2 ...
    x = y = [1.0, 2.0, 1.0, 2.0]
    assert T.permutation_r(x, y, ["a", "a", "b", "b"])["p"] == pytest.approx(0.5)
    # ... where shuffling across seeds would give 8 of 24 orders: 1/3
    assert T.permutation_r(x, y, ["a"] * 4)["p"] == pytest.approx(1 / 3)
    # Monte Carlo when there are more orders than `perms`: p = (1 + hits) / (1 + perms)
    mc = T.permutation_r(list(range(12)), list(range(12)), [0] * 12, perms=999, seed=1)
    assert not mc["exact"] and mc["p"] == pytest.approx(1 / 1000)


def test_weighted_pearson_is_pearson_of_the_repeated_points():
    x, y, w = [1.0, 2.0, 4.0, 3.0], [2.0, 1.0, 5.0, 3.0], [2, 0, 1, 3]
    rep_x = [v for v, k in zip(x, w) for _ in range(k)]
    rep_y = [v for v, k in zip(y, w) for _ in range(k)]
    assert T.pearson(x, y, w) == pytest.approx(S.pearson(rep_x, rep_y))
    assert T.pearson(x, y) == pytest.approx(S.pearson(x, y))
    assert math.isnan(T.pearson([1.0, 1.0], [2.0, 3.0]))


def _hub_family():
    """One seed, six parents, all 15 pairs; parent f is a hub whose pairs have both high
    kinship and high gain, the other parents' pairs noise: the correlation is one parent's."""
    import itertools
    import random
    rng = random.Random(7)
    names = "abcdef"
    pairs = list(itertools.combinations(names, 2))
    hub = [("f" in p) * 1.0 for p in pairs]
    x = [h + rng.gauss(0, 0.1) for h in hub]
    y = [h + rng.gauss(0, 0.1) for h in hub]
    return x, y, pairs


def test_parent_bootstrap_respects_shared_parents():
    x, y, pairs = _hub_family()
    strata = [0] * len(x)
    par = T.parent_bootstrap(x, y, pairs, strata, boot=1000, seed=0)
    naive = S.correlate(x, y, boot=1000, seed=0)  # pairs resampled as if independent
    assert par["r"] == pytest.approx(naive["r"]) and par["r"] > 0.9
    # one parent in three of six draws is missed ((5/6)^6 = 0.33): then only noise is left,
    # so the parent interval reaches far down where the pair bootstrap stays near r
    assert naive["lo"] > 0.8 and par["lo"] < 0.5
    assert par == T.parent_bootstrap(x, y, pairs, strata, boot=1000, seed=0)
    # a perfect line stays a perfect line whichever parents are drawn
    line = T.parent_bootstrap([1.0, 2, 3, 4, 5, 6], [2.0, 4, 6, 8, 10, 12],
                              [("a", "b"), ("a", "c"), ("b", "c"), ("a", "d"), ("b", "d"),
                               ("c", "d")], [0] * 6, boot=200)
    assert line["lo"] == pytest.approx(1.0) and line["hi"] == pytest.approx(1.0)


def test_per_seed_r_and_its_spread():
    x = [1, 2, 3, 1, 2, 3, 1, 2, 3]
    y = [1, 2, 3, 3, 2, 1, 1, 2, 4]
    got = T.per_stratum_r(x, y, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    r2 = S.pearson([1, 2, 3], [1, 2, 4])
    assert got["each"] == pytest.approx({"0": 1.0, "1": -1.0, "2": r2})
    assert got["mean"] == pytest.approx(r2 / 3) and (got["min"], got["max"]) == (-1.0, 1.0)
    assert got["sd"] == pytest.approx(math.sqrt(((1 - r2 / 3) ** 2 + (-1 - r2 / 3) ** 2
                                                 + (r2 - r2 / 3) ** 2) / 2))


# fuzzing -----------------------------------------------------------------------------------
diffs = st.lists(st.floats(-1, 1, allow_nan=False).map(lambda v: round(v, 3)), min_size=1,
                 max_size=16)


@FUZZ
@given(diffs, st.floats(0.01, 100))
def test_paired_tests_are_probabilities_symmetric_and_scale_free(d, scale):
    for test in (T.sign_test, T.wilcoxon_exact):
        p = test(d)["p"]
        assert 0 < p <= 1
        assert test([-v for v in d])["p"] == pytest.approx(p)
        assert test([v * scale for v in d])["p"] == pytest.approx(p)
    t = T.t_interval(d)
    if len(d) > 1:
        assert t["lo"] <= t["mean"] <= t["hi"]


@FUZZ
@given(st.floats(0.001, 0.999), st.integers(1, 60))
def test_t_quantile_inverts_the_cdf(p, df):
    assert T.t_cdf(T.t_quantile(p, df), df) == pytest.approx(p, abs=1e-7)


@FUZZ
@given(st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.integers(0, 2)),
                min_size=3, max_size=12))
def test_kinship_statistics_stay_in_range(rows):
    x, y, s = ([r[i] for r in rows] for i in range(3))
    got = T.permutation_r(x, y, s, perms=200)
    if not math.isnan(got["r"]):
        assert -1 <= got["r"] <= 1 and 0 < got["p"] <= 1
        flipped = T.permutation_r(x, [-v for v in y], s, perms=200)
        assert flipped["p"] == pytest.approx(got["p"])  # a two-sided test
    pairs = [(f"p{i % 4}", f"q{i % 3}") for i in range(len(rows))]
    b = T.parent_bootstrap(x, y, pairs, s, boot=50)
    if b["boot"]:
        assert -1 <= b["lo"] <= b["hi"] <= 1

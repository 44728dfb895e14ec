"""The statistics of the breeding experiment, written out plainly (no scipy), each checked in
tests/breed/test_science_stats.py on hand-made data with known answers.

Paired comparisons of two strategies over seeds (the pre-registered tests):
  `sign_test`       exact two-sided binomial test on the signs of the differences
  `wilcoxon_exact`  exact two-sided Wilcoxon signed-rank test (zeros dropped, tied |d|
                    given their mean rank; the null distribution enumerated, not approximated)
  `t_interval`      the Student t interval of the mean difference
  `mean_interval_bootstrap`  the percentile bootstrap interval of the mean difference

Kinship against merge gain, over distinct children that share parents:
  `permutation_r`   Pearson r and the permutation p-value of r = 0, kinship shuffled among the
                    parent pairs within each seed (exact enumeration when it is small enough)
  `parent_bootstrap`  Pearson r with an interval from resampling *parents* within each seed
                    (a child weighs the product of its two parents' draw counts: the pigeonhole
                    bootstrap for crossed pairs), so children that share a parent are not
                    treated as independent
"""
from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from typing import Hashable, Sequence

import numpy as np


# paired tests -------------------------------------------------------------------------------
def sign_test(diffs: Sequence[float]) -> dict:
    """Exact two-sided sign test: zeros dropped; p = P(min(wins, losses) or fewer | p = 1/2)."""
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    n = wins + losses
    if n == 0:
        return {"wins": 0, "losses": 0, "ties": len(diffs), "p": 1.0}
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2 ** n
    return {"wins": wins, "losses": losses, "ties": len(diffs) - n, "p": min(1.0, 2 * tail)}


def signed_ranks(diffs: Sequence[float]) -> tuple[list[float], list[float]]:
    """(|d| ranks, signs) of the non-zero differences; tied |d| share their mean rank."""
    nz = [d for d in diffs if d != 0]
    order = sorted(range(len(nz)), key=lambda i: abs(nz[i]))
    ranks = [0.0] * len(nz)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and abs(nz[order[j + 1]]) == abs(nz[order[i]]):
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return ranks, [1.0 if d > 0 else -1.0 for d in nz]


def wilcoxon_exact(diffs: Sequence[float]) -> dict:
    """Exact two-sided Wilcoxon signed-rank test of median difference 0.

    W+ = the sum of the ranks of positive differences. Under the null every sign is + or -
    with probability 1/2 independently; its distribution is counted exactly by dynamic
    programming over the (doubled, so integral) ranks. p = P(|W+ - E W+| >= observed)."""
    ranks, signs = signed_ranks(diffs)
    n = len(ranks)
    if n == 0:
        return {"n": 0, "w_plus": 0.0, "p": 1.0}
    doubled = [round(2 * r) for r in ranks]
    counts = {0: 1}
    for r in doubled:
        nxt: dict[int, int] = {}
        for s, c in counts.items():
            nxt[s] = nxt.get(s, 0) + c
            nxt[s + r] = nxt.get(s + r, 0) + c
        counts = nxt
    w2 = sum(r for r, s in zip(doubled, signs) if s > 0)
    centre = sum(doubled) / 2
    extreme = sum(c for s, c in counts.items() if abs(s - centre) >= abs(w2 - centre) - 1e-9)
    return {"n": n, "w_plus": w2 / 2, "p": min(1.0, extreme / 2 ** n)}


def t_interval(diffs: Sequence[float], level: float = 0.95) -> dict:
    """mean +- t(n-1) * sd / sqrt(n); NaN bounds below two values."""
    n = len(diffs)
    mean = sum(diffs) / n if n else float("nan")
    if n < 2:
        return {"mean": mean, "lo": float("nan"), "hi": float("nan")}
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half}


def mean_interval_bootstrap(diffs: Sequence[float], *, boot: int = 10000, seed: int = 0,
                            level: float = 0.95) -> dict:
    """The percentile bootstrap interval of the mean (seeds resampled with replacement)."""
    n = len(diffs)
    if n == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    rng = np.random.default_rng(seed)
    d = np.asarray(diffs, dtype=float)
    means = np.sort(d[rng.integers(0, n, size=(boot, n))].mean(axis=1))
    return {"mean": float(d.mean()), "lo": float(means[int((1 - level) / 2 * boot)]),
            "hi": float(means[min(boot - 1, int((1 + level) / 2 * boot))])}


def paired(diffs: Sequence[float], *, boot_seed: int = 0) -> dict:
    """Every pre-registered statistic of one paired comparison."""
    return {"n": len(diffs), "diff": list(diffs), "sign": sign_test(diffs),
            "wilcoxon": wilcoxon_exact(diffs), "t": t_interval(diffs),
            "bootstrap": mean_interval_bootstrap(diffs, seed=boot_seed)}


# Student t, from the regularised incomplete beta function ----------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lnbt = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
            + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lnbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lnbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (bisection on t_cdf)."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# correlation with shared parents ------------------------------------------------------------
def pearson(x: Sequence[float], y: Sequence[float], w: Sequence[float] | None = None) -> float:
    """(Weighted) Pearson r; NaN where undefined (fewer than two points, or no spread)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    wa = np.ones_like(xa) if w is None else np.asarray(w, dtype=float)
    if wa.sum() <= 0 or np.count_nonzero(wa) < 2:
        return float("nan")
    mx, my = np.average(xa, weights=wa), np.average(ya, weights=wa)
    sxy = float(np.sum(wa * (xa - mx) * (ya - my)))
    sxx, syy = float(np.sum(wa * (xa - mx) ** 2)), float(np.sum(wa * (ya - my) ** 2))
    if sxx <= 1e-300 or syy <= 1e-300:
        return float("nan")
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def permutation_r(x: Sequence[float], y: Sequence[float], strata: Sequence[Hashable], *,
                  perms: int = 5000, seed: int = 0) -> dict:
    """Pearson r of (x, y) and the two-sided permutation p of r = 0, x shuffled within each
    stratum (a seed: kinship among that seed's parent pairs). Exact (every permutation, the
    identity included) when their number is at most `perms`; else Monte Carlo,
    p = (1 + #{|r*| >= |r|}) / (1 + perms)."""
    r = pearson(x, y)
    if math.isnan(r):
        return {"r": r, "p": float("nan"), "n": len(x), "exact": False}
    groups: dict[Hashable, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    total = math.prod(math.factorial(len(g)) for g in groups.values())
    xs, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    cut = abs(r) - 1e-12

    def r_of(order: list[int]) -> float:
        return pearson(xs[order], ya)

    if total <= perms:
        hits = 0
        for combo in itertools.product(*(itertools.permutations(g) for g in groups.values())):
            order = list(range(len(x)))
            for g, perm in zip(groups.values(), combo):
                for dst, src in zip(g, perm):
                    order[dst] = src
            hits += abs(r_of(order)) >= cut
        return {"r": r, "p": hits / total, "n": len(x), "exact": True}
    rng = random.Random(seed)
    hits = 0
    for _ in range(perms):
        order = list(range(len(x)))
        for g in groups.values():
            shuffled = g[:]
            rng.shuffle(shuffled)
            for dst, src in zip(g, shuffled):
                order[dst] = src
        hits += abs(r_of(order)) >= cut
    return {"r": r, "p": (1 + hits) / (1 + perms), "n": len(x), "exact": False}


def parent_bootstrap(x: Sequence[float], y: Sequence[float],
                     parents: Sequence[tuple[Hashable, Hashable]],
                     strata: Sequence[Hashable], *, boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Pearson r with a percentile interval from resampling parents within each stratum:
    each replicate draws every stratum's parents with replacement, and a child counts
    (draws of its first parent) x (draws of its second) times."""
    r = pearson(x, y)
    rng = np.random.default_rng(seed)
    by_stratum: dict[Hashable, list[Hashable]] = {}
    for (a, b), s in zip(parents, strata):
        for p in (a, b):
            if p not in by_stratum.setdefault(s, []):
                by_stratum[s].append(p)
    rs = []
    for _ in range(boot):
        count: dict[tuple[Hashable, Hashable], int] = {}
        for s, ps in by_stratum.items():
            drawn = Counter(rng.integers(0, len(ps), size=len(ps)).tolist())
            for i, p in enumerate(ps):
                count[(s, p)] = drawn.get(i, 0)
        w = [count[(s, a)] * count[(s, b)] for (a, b), s in zip(parents, strata)]
        rb = pearson(x, y, w)
        if not math.isnan(rb):
            rs.append(rb)
    rs.sort()
    if not rs:
        return {"r": r, "lo": float("nan"), "hi": float("nan"), "n": len(x), "boot": 0}
    return {"r": r, "lo": rs[int((1 - level) / 2 * len(rs))],
            "hi": rs[min(len(rs) - 1, int((1 + level) / 2 * len(rs)))], "n": len(x),
            "boot": len(rs)}


def per_stratum_r(x: Sequence[float], y: Sequence[float], strata: Sequence[Hashable]) -> dict:
    """r within each stratum (seed), and their mean, sd, min and max (NaN r left out)."""
    groups: dict[Hashable, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    each = {s: pearson([x[i] for i in g], [y[i] for i in g]) for s, g in groups.items()}
    vals = [v for v in each.values() if not math.isnan(v)]
    mean = sum(vals) / len(vals) if vals else float("nan")
    sd = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
          if len(vals) > 1 else float("nan"))
    return {"each": {str(s): v for s, v in each.items()}, "mean": mean, "sd": sd,
            "min": min(vals) if vals else float("nan"),
            "max": max(vals) if vals else float("nan")}

"""Choosing pairs by predicted gain (breed.yml `select: predicted`): kinship as a predictor.

The rule, each generation g:

1. **Candidates.** g = 1: every pair of the pool. g > 1: every pair (a, b) of the models so
   far that was not merged before, with a or b in the current top-k, and neither an ancestor
   of the other.
2. **Prediction.** predicted child fitness = mean(f(a), f(b)) + predicted gain, where the gain
   model is a ridge least-squares fit (lambda = 1e-6) over every child scored so far of
   gain = f(child) - mean f(parents) on the features [1, kinship(a, b), |f(a) - f(b)|]
   (model "fit"). With fewer than MIN_CHILDREN children, or while their parents' kinships
   span less than MIN_SPREAD (times the largest |kinship| when that exceeds 1, for ed) -- too
   little for the fit to tell what kinship does, so that it would extrapolate wildly to the
   near relatives it has not seen -- it is a prior (model "prior"):
   gain = -kinship for the similarities pcc and cs (less related parents gain more, as the
   kinship paper found); for the distance ed the prior gain is 0 and the candidates are
   ranked by larger ed first instead (an ed has no scale to add to a fitness).
3. **Skip.** Under the fit, a candidate whose predicted child fitness is not above its better
   parent's (<= max(f(a), f(b))) is predicted useless and skipped. Under the prior nothing is
   skipped (generation 1 only ranks).
4. **Merge** the best `width(k)` = C(k, 2) + 1 candidates (greedy's pairs of the top-k plus
   exploration's one: the same width per generation), best predicted child fitness first;
   ties go to the older pair (the creation order of its two models).

A candidate with an undefined kinship (NaN) ranks last and, under the fit, is skipped; a
child whose parents' kinship is undefined is left out of the fit. Every choice is a pure
function of fitness and kinship values, so a resumed run replays the same choices.

>>> kids = [(0.1, .5, .6, .60), (0.5, .5, .5, .50), (0.9, .4, .6, .45), (0.3, .7, .7, .75)]
>>> coef = fit_gain(kids)                        # 4 children: the fit replaces the prior
>>> predict(PairStats("a", "b", .6, .7, 0.2, (0, 1)), coef, "pcc").model
'fit'
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from kinmerge.search.breed.loop import Breeder

MIN_CHILDREN = 4  # scored children needed before the fit replaces the prior
RIDGE = 1e-6  # lambda of the ridge term (keeps the fit defined when features are collinear)
# the kinship range the fitted children must span. Measured on the kin zoo (seed 2): gen 1's
# four least-related pairs all had pcc 0.10-0.13, and a fit on them predicted no gain for any
# pair, stopping the run at 0.767 where exploration reached 0.847.
MIN_SPREAD = 0.2


@dataclass(frozen=True)
class PairStats:
    """A candidate pair: its models' fitness, their kinship, and its creation order."""

    a: str
    b: str
    fa: float
    fb: float
    kinship: float
    order: tuple[int, int]  # (seq of a, seq of b): the tie-break


@dataclass(frozen=True)
class Prediction:
    gain: float  # predicted f(child) - mean(f(a), f(b))
    fitness: float  # predicted child fitness
    model: str  # "fit" or "prior"
    useless: bool  # not predicted above its better parent (fit only): skipped


def width(k: int) -> int:
    """Pairs merged per generation: C(k, 2) + 1, greedy's plus exploration's."""
    return math.comb(k, 2) + 1


def features(kinship: float, fa: float, fb: float) -> np.ndarray:
    return np.array([1.0, kinship, abs(fa - fb)])


def fit_gain(children: Sequence[tuple[float, float, float, float]]) -> np.ndarray | None:
    """Coefficients w of gain = w . [1, kinship, |f(a) - f(b)|], fitted on the children
    (kinship of the parents, f(a), f(b), f(child)); None while fewer than MIN_CHILDREN
    children have a defined kinship, or while their kinships span less than MIN_SPREAD."""
    rows = [c for c in children if not math.isnan(c[0])]
    if len(rows) < MIN_CHILDREN:
        return None
    kins = [k for k, *_ in rows]
    if max(kins) - min(kins) < MIN_SPREAD * max(1.0, max(abs(k) for k in kins)):
        return None
    x = np.stack([features(k, fa, fb) for k, fa, fb, _ in rows])  # (n, 3)
    y = np.array([fc - (fa + fb) / 2 for _, fa, fb, fc in rows])  # (n,) merge gains
    # ridge as plain least squares: X stacked on sqrt(lambda) I, y on zeros, which solves
    # (X^T X + lambda I) w = X^T y
    xa = np.vstack([x, math.sqrt(RIDGE) * np.eye(3)])
    ya = np.concatenate([y, np.zeros(3)])
    return np.linalg.lstsq(xa, ya, rcond=None)[0]


def predict(c: PairStats, coef: np.ndarray | None, metric: str) -> Prediction:
    """The predicted gain and child fitness of merging c.a with c.b (coef None: the prior)."""
    mean = (c.fa + c.fb) / 2
    if coef is None:
        gain = 0.0 if metric == "ed" else -c.kinship
        return Prediction(gain, mean + gain, "prior", False)
    gain = float(features(c.kinship, c.fa, c.fb) @ coef)
    fitness = mean + gain
    return Prediction(gain, fitness, "fit", not fitness > max(c.fa, c.fb))  # NaN: useless


def rank_key(c: PairStats, p: Prediction, metric: str) -> tuple[bool, float, tuple[int, int]]:
    """Sort key, best first: predicted child fitness (ed's prior: the larger ed), then age."""
    score = c.kinship if p.model == "prior" and metric == "ed" else p.fitness
    undefined = math.isnan(score) or math.isnan(c.kinship)
    return (undefined, 0.0 if undefined else -score, c.order)


def choose(cands: Sequence[PairStats], coef: np.ndarray | None, metric: str,
           m: int) -> tuple[list[tuple[PairStats, Prediction]], int]:
    """The (at most m) pairs to merge, best first, and how many candidates were skipped as
    predicted useless."""
    preds = [(c, predict(c, coef, metric)) for c in cands]
    kept = sorted((cp for cp in preds if not cp[1].useless), key=lambda cp: rank_key(*cp, metric))
    return kept[:m], len(preds) - len(kept)


def candidate_pairs(names: Sequence[str], top: set[str] | None, merged: set[tuple[str, str]],
                    ancestors: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of `names` (in creation order) not merged before; unless `top` is None
    (generation 1), with a member of `top` and neither model an ancestor of the other."""
    out = []
    for a, b in ((a, b) for i, a in enumerate(names) for b in names[i + 1:]):
        if tuple(sorted((a, b))) in merged:
            continue
        if top is not None and (not ({a, b} & top) or a in ancestors[b] or b in ancestors[a]):
            continue
        out.append((a, b))
    return out


def predicted_pairs(b: "Breeder", gen: int,
                    top: list[str]) -> tuple[list[tuple[PairStats, Prediction]], int]:
    """The rule on a run: the pairs generation `gen` merges, best first, and how many
    candidates it skipped, from the fitness and kinship of the models present so far."""
    rows, fit = b.state.models(), {}
    for n in rows:  # creation order
        ev = b.state.evaluation(n) if n in b.present else None
        if ev is not None:
            fit[n] = ev[0]
    names = [n for n in fit if gen > 1 or rows[n].origin == "pool"]
    ancestors = {n: b.ancestors(n) for n in names} if gen > 1 else {}
    found = candidate_pairs(names, set(top) if gen > 1 else None, b.merged_pairs(), ancestors)
    cands = [PairStats(x, y, fit[x], fit[y], b.kinship(x, y, decide=True),
                       (rows[x].seq, rows[y].seq)) for x, y in found]
    kids = [(b.kinship(*r.parents, decide=True), fit[r.parents[0]], fit[r.parents[1]], fit[n])
            for n, r in rows.items() if r.parents and n in fit]
    return choose(cands, fit_gain(kids), b.cfg.kinship.metric, width(b.cfg.k))

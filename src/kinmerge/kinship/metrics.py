"""The kinship metrics (docs/concepts/kinship-metrics.md), from float64 Moments.

- cs:  cosine similarity of the two deltas, sum xy / sqrt(sum x^2 sum y^2) (signed; ModelKinship
       reports |cs|, available with `absolute_cosine=True`)
- pcc: Pearson correlation of the two deltas' coordinates
- ed:  Euclidean distance between the deltas (equivalently between the two models)

An undefined value (a zero-length delta for cs, a constant delta for pcc) is NaN, never a
made-up 0.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Sequence

from kinmerge.errors import KinmergeError

if TYPE_CHECKING:  # torch: the statistics come from the pass over the models
    from kinmerge.kinship.stats import Moments

METRICS: dict[str, str] = {
    "cs": "Cosine Similarity",
    "pcc": "Pearson Correlation Coefficient",
    "ed": "Euclidean Distance",
}
SIMILARITIES = ("cs", "pcc")  # larger = more related; ed is a distance
COMPAT_MODES = ("modelkinship",)  # compat.py: ModelKinship's float32 arithmetic, reproduced


def parse_metrics(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """`"cs,pcc"`, `"cs pcc"` or `["cs", "pcc"]` -> ("cs", "pcc"); unknown names are an error."""
    if spec is None:
        return tuple(METRICS)
    if isinstance(spec, str):
        spec = spec.replace(",", " ").split()
    names = tuple(dict.fromkeys(s.strip().lower() for s in spec if s.strip()))
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise KinmergeError(
            f"unknown kinship metric{'s' if len(bad) > 1 else ''}: {', '.join(bad)}" if bad
            else "no kinship metric given",
            where="metrics", fix=f"choose among {', '.join(METRICS)} (e.g. 'cs,pcc,ed')")
    return names


def _ratio(num: float, den_sq: float) -> float:
    return num / math.sqrt(den_sq) if den_sq > 0 else math.nan


def pair_metric(m: Moments, i: int, j: int, metric: str, absolute_cosine: bool = False) -> float:
    """One metric between vectors i and j of `m`."""
    if metric == "ed":
        return math.sqrt(max(float(m.sqdist[i, j]), 0.0))
    if metric == "pcc":
        c = m.comoment
        return _ratio(float(c[i, j]), float(c[i, i]) * float(c[j, j]))
    if metric == "cs":
        g = m.gram()
        cs = _ratio(float(g[i, j]), float(g[i, i]) * float(g[j, j]))
        return abs(cs) if absolute_cosine else cs
    raise KeyError(metric)


def pair_metrics(m: Moments, i: int, j: int, metrics: Sequence[str],
                 absolute_cosine: bool = False) -> dict[str, float]:
    return {k: pair_metric(m, i, j, k, absolute_cosine) for k in metrics}


def per_tensor_average(parts: Sequence[Moments], i: int, j: int, metric: str,
                       absolute_cosine: bool = False) -> float:
    """ModelKinship's "split calculation": the metric per tensor, averaged weighted by numel.

    Tensors where a similarity is undefined (an all-zero delta: 0/0; for pcc also a constant
    one) are left out of the average for cs and pcc; ed is always defined.
    """
    num = den = 0.0
    for m in parts:
        v = pair_metric(m, i, j, metric, absolute_cosine)
        if math.isnan(v) or m.n == 0:
            continue
        num += v * m.n
        den += m.n
    return num / den if den else math.nan


def norms(m: Moments) -> list[float]:
    """Euclidean norm of each delta vector."""
    g = m.gram()
    return [math.sqrt(max(float(g[i, i]), 0.0)) for i in range(m.k)]

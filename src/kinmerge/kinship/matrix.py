"""The N x N kinship matrix of N fine-tunes of one base, in one pass over the models.

Per tensor the base and every model are read once; the N deltas are stacked (N, m) and their
float64 Gram statistics updated for all pairs at once (stats.chunk_moments). So the matrix
costs about one read of each model, not one per pair.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from kinmerge.errors import KinmergeError
from kinmerge.io.outpath import check_out, input_roots, write_error
from kinmerge.kinship.metrics import norms, pair_metric, parse_metrics, per_tensor_average
from kinmerge.kinship.plan import plan_kinship
from kinmerge.kinship.stats import Moments, total
from kinmerge.kinship.stream import Progress, collect, open_all
from kinmerge.threads import with_threads


@dataclass(frozen=True)
class KinshipMatrix:
    """`m["pcc"]` is the (N, N) array of that metric; `m.models` labels its rows and columns."""

    models: tuple[str, ...]
    base: str
    values: dict[str, np.ndarray]
    n: int
    norms: dict[str, float] = field(default_factory=dict)
    absolute_cosine: bool = False
    per_tensor: bool = False
    notes: tuple[str, ...] = ()

    def __getitem__(self, metric: str) -> np.ndarray:
        return self.values[metric]

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.values)

    def mean_pairwise(self, metric: str) -> float:
        """Kinship of the whole group: the mean over pairs i < j
        (docs/concepts/kinship-metrics.md)."""
        a = self.values[metric]
        iu = np.triu_indices(len(self.models), 1)
        return float(np.mean(a[iu])) if len(iu[0]) else math.nan

    def write_csv(self, path: str | Path, metric: str) -> Path:
        """One metric as a labelled square table: header `model,<m1>,...,<mN>`."""
        path = check_out(path, input_roots(self.models), option="--csv", folder=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["model", *self.models])
                for name, row in zip(self.models, self.values[metric]):
                    w.writerow([name, *(repr(float(v)) for v in row)])
        except OSError as e:
            raise write_error(e, path) from e
        return path

    def to_dict(self) -> dict:
        """JSON-ready (strict JSON: NaN becomes null)."""
        return {"models": list(self.models), "base": self.base, "n": self.n,
                "absolute_cosine": self.absolute_cosine, "per_tensor": self.per_tensor,
                "norms": {k: _finite(v) for k, v in self.norms.items()},
                "notes": list(self.notes),
                **{m: [[_finite(v) for v in row] for row in a] for m, a in self.values.items()},
                "mean_pairwise": {m: _finite(self.mean_pairwise(m)) for m in self.values}}


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


@with_threads("elementwise")
def kinship_matrix(models: Iterable[str], *, base: str,
                   metrics: str | Iterable[str] | None = None, absolute_cosine: bool = False,
                   per_tensor: bool = False, progress: Progress | None = None) -> KinshipMatrix:
    """Pairwise kinship of every two of `models` (fine-tunes of `base`), reading each once.

    >>> m = kinship_matrix(["ft1", "ft2", "ft3"], base="base", metrics="pcc")  # doctest: +SKIP
    >>> m["pcc"][0, 1], m.mean_pairwise("pcc")                                # doctest: +SKIP
    """
    models = [str(m) for m in models]
    names = parse_metrics(metrics)
    if len(models) < 2:
        raise KinmergeError(f"a kinship matrix needs at least two models, got {len(models)}",
                            where="models", fix="list two or more fine-tunes of the base")
    with open_all(models, base, models) as op:
        plan = plan_kinship(op.readers, op.labels)
        parts = [m for _, m in collect(op.readers, plan, progress)]
    k = len(models)
    whole = total(parts) if parts else Moments.zeros(k)
    values = {}
    for metric in names:
        a = np.empty((k, k))
        for i in range(k):
            for j in range(i, k):
                a[i, j] = a[j, i] = (
                    per_tensor_average(parts, i, j, metric, absolute_cosine) if per_tensor
                    else pair_metric(whole, i, j, metric, absolute_cosine))
        values[metric] = a
    return KinshipMatrix(tuple(models), str(base), values, plan.numel,
                         dict(zip(models, norms(whole))), absolute_cosine, per_tensor,
                         plan.notes)

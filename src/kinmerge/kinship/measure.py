"""`kinship(a, b, base=...)`: how related two fine-tunes of one base are.

Exact by default: float64 statistics streamed tensor by tensor (stats.py), one chunk of each
model in memory at a time. `per_tensor=True` is ModelKinship's split calculation;
`compat="modelkinship"` reproduces its float32 arithmetic and quirks for cross-checks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Iterable, Iterator, Mapping, Sequence

from kinmerge.errors import KinmergeError
from kinmerge.kinship import compat as mk
from kinmerge.kinship import nonfinite
from kinmerge.kinship.metrics import (COMPAT_MODES, norms, pair_metrics, parse_metrics,
                                      per_tensor_average)
from kinmerge.kinship.plan import plan_kinship
from kinmerge.kinship.report import breakdown
from kinmerge.kinship.stats import Moments, total
from kinmerge.kinship.stream import Progress, collect, open_all
from kinmerge.threads import with_threads



@dataclass(frozen=True)
class KinshipResult(Mapping[str, float]):
    """Metric name -> value (`result["pcc"]`, `result.pcc`), plus what they were computed on.

    `metrics` holds only the metrics asked for; NaN marks an undefined value (a zero delta).
    """

    metrics: dict[str, float]
    models: tuple[str, ...]
    base: str
    n: int  # elements in each delta vector
    norms: dict[str, float] = field(default_factory=dict)  # model -> ||delta|| (exact modes)
    mode: str = "exact"  # "exact", "per-tensor", or "modelkinship[-per-tensor]"
    absolute_cosine: bool = False
    per_layer: dict | None = None  # {"layers": [...], "kinds": [...]}, see report.breakdown
    notes: tuple[str, ...] = ()

    def __getitem__(self, metric: str) -> float:
        return self.metrics[metric]

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def __getattr__(self, name: str) -> float:
        # cs / pcc / ed as attributes; dataclass fields are found before this is called
        metrics = object.__getattribute__(self, "metrics")
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)

    def to_dict(self) -> dict:
        """JSON-ready: metric names at the top level (null for NaN), details under other keys."""
        d: dict = {k: _json_float(v) for k, v in self.metrics.items()}
        d.update(models=list(self.models), base=self.base, n=self.n, mode=self.mode,
                 absolute_cosine=self.absolute_cosine,
                 norms={k: _json_float(v) for k, v in self.norms.items()},
                 notes=list(self.notes))
        if self.per_layer is not None:
            d["per_layer"] = {k: [{c: _json_float(v) for c, v in row.items()} for row in rows]
                              for k, rows in self.per_layer.items()}
        return d


def _json_float(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


@with_threads("elementwise")
def kinship(a: str, b: str, *more: str, base: str, metrics: str | Iterable[str] | None = None,
            absolute_cosine: bool = False, per_tensor: bool = False,
            per_layer: bool = False, compat: str | None = None,
            progress: Progress | None = None) -> KinshipResult:
    """Model kinship of fine-tunes `a`, `b` (and `more`) of `base`; with more than two models,
    the mean of the pairwise values. Models are directories or hub ids (`org/name@rev`).

    >>> k = kinship("ft-math", "ft-code", base="llama-base", metrics="cs,pcc")  # doctest: +SKIP
    >>> k["pcc"], k.cs                                                        # doctest: +SKIP
    (0.0123, 0.0131)
    """
    names = parse_metrics(metrics)
    if compat is not None and compat not in COMPAT_MODES:
        raise KinmergeError(f"unknown compatibility mode {compat!r}", where="compat",
                            fix=f"use one of: {', '.join(COMPAT_MODES)}")
    if compat and per_layer:
        raise KinmergeError("the per-layer breakdown is computed exactly only",
                            where="per_layer with compat", fix="drop one of the two options")
    models = [str(m) for m in (a, b, *more)]
    if per_layer and more:
        raise KinmergeError("the per-layer breakdown is for two models",
                            where=", ".join(models), fix="use kinship-matrix for more models")
    with open_all(models, base, models) as op:
        plan = plan_kinship(op.readers, op.labels, compat=compat is not None)
        common = dict(models=tuple(models), base=str(base), n=plan.numel, notes=plan.notes)
        if compat:
            return _compat(op.readers, plan, names, per_tensor, progress, common)
        parts = collect(op.readers, plan, progress)
        config = op.readers[0].config
    whole = total([m for _, m in parts]) if parts else Moments.zeros(len(models))
    values = {}
    for metric in names:
        pairs = [_pair_value(whole, parts, i, j, metric, absolute_cosine, per_tensor)
                 for i, j in combinations(range(len(models)), 2)]
        values[metric] = sum(pairs) / len(pairs)
    layers = breakdown(parts, names, config, absolute_cosine) if per_layer else None
    return KinshipResult(values, norms=dict(zip(models, norms(whole))),
                         mode="per-tensor" if per_tensor else "exact",
                         absolute_cosine=absolute_cosine, per_layer=layers, **common)


def _pair_value(whole: Moments, parts: Sequence[tuple[str, Moments]], i: int, j: int,
                metric: str, absolute_cosine: bool, per_tensor: bool) -> float:
    if per_tensor:
        return per_tensor_average([m for _, m in parts], i, j, metric, absolute_cosine)
    return pair_metrics(whole, i, j, [metric], absolute_cosine)[metric]


def _compat(readers, plan, names, per_tensor, progress, common) -> KinshipResult:
    """ModelKinship's float32 numbers (always |cos|, as it reports)."""
    if per_tensor:
        values = mk.per_tensor_values(readers, plan, names, progress)
    else:
        values = mk.pair_values(mk.whole_vectors(readers, plan, progress), names)
    if not all(math.isfinite(v) for v in values.values()):  # NaN weights, or a zero delta
        found = nonfinite.culprits(readers, plan.jobs)
        if found:
            raise nonfinite.refuse(found, readers[0].ref)
    mode = mk.MODE + ("-per-tensor" if per_tensor else "")
    return KinshipResult(values, mode=mode, absolute_cosine=True, **common)

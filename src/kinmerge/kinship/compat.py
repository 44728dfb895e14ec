"""ModelKinship's arithmetic, reproduced for cross-checks (`--compat modelkinship`).

ModelKinship (zjunlp, the paper's tool) concatenates the float32 deltas of both models and
computes, all in float32: |cos| with numpy dot products, Pearson with `torch.corrcoef`, and the
distance with `torch.dist`. Over hundreds of millions of elements float32 accumulation drifts
(several percent on pcc for a 322M model); we reproduce that on purpose here, and nowhere else.
Its other quirks come from the plan (`plan_kinship(..., compat=True)`): every tensor cut to the
base's vocabulary rows along dim 0, and a tied embedding counted twice.

Memory: the k float32 delta vectors are held whole, 4 bytes per parameter per model (plus the
centred copy corrcoef makes) -- still below ModelKinship's three float32 models, and the
price of the same rounding. Use the exact mode for anything but a cross-check.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from kinmerge.io.reader import ModelReader
from kinmerge.kinship.metrics import COMPAT_MODES
from kinmerge.kinship.plan import KinshipPlan, TensorJob
from kinmerge.kinship.stream import Progress, ordered

MODE = COMPAT_MODES[0]


def _float32_deltas(readers: list[ModelReader], job: TensorJob) -> torch.Tensor:
    """(k, numel) float32 deltas of one tensor, as ModelKinship forms them."""
    base = readers[0].read_flat(job.sources[0], 0, job.numel).float()
    return torch.stack([r.read_flat(s, 0, job.numel).float() - base
                        for r, s in zip(readers[1:], job.sources[1:])])


def _metric(x: torch.Tensor, y: torch.Tensor, metric: str,
            stacked: torch.Tensor | None = None) -> float:
    """One metric on two float32 vectors, the way ModelKinship computes it; `stacked` is
    (x, y) already stacked, when the caller has it (saves a copy of both vectors)."""
    if metric == "cs":
        a, b = x.numpy(), y.numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.sqrt(np.dot(a, b) ** 2 / (np.dot(a, a) * np.dot(b, b))))
    if metric == "pcc":
        return float(torch.corrcoef(torch.stack((x, y)) if stacked is None else stacked)[0, 1])
    if metric == "ed":
        return float(torch.dist(x, y))
    raise KeyError(metric)


def whole_vectors(readers: list[ModelReader], plan: KinshipPlan,
                  progress: Progress | None = None) -> torch.Tensor:
    """The concatenated float32 deltas (k, n), filled tensor by tensor (no torch.cat copy)."""
    k = len(readers) - 1
    out = torch.empty((k, plan.numel), dtype=torch.float32)
    at = 0
    # ModelKinship concatenates in state-dict (module) order, we in shard-then-name order:
    # float32 sums depend on order, so agreement is to float32 rounding, not bit for bit
    for job in ordered(plan, readers[0]):
        out[:, at:at + job.numel] = _float32_deltas(readers, job)
        at += job.numel
        if progress:
            progress(at, plan.numel)
    return out


def pair_values(vectors: torch.Tensor, metrics: Sequence[str]) -> dict[str, float]:
    """Mean over pairs of each metric (a pair gives just its value)."""
    k = vectors.shape[0]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    whole = vectors if k == 2 else None
    return {m: sum(_metric(vectors[i], vectors[j], m, whole) for i, j in pairs) / len(pairs)
            for m in metrics}


def per_tensor_values(readers: list[ModelReader], plan: KinshipPlan, metrics: Sequence[str],
                      progress: Progress | None = None) -> dict[str, float]:
    """ModelKinship's split calculation in float32: per-tensor metric, numel-weighted mean.

    Tensors where a metric is NaN (0/0 on an all-zero delta) are left out of its average.
    """
    num = {m: 0.0 for m in metrics}
    den = {m: 0 for m in metrics}
    done = 0
    for job in ordered(plan, readers[0]):
        d = _float32_deltas(readers, job)
        k = d.shape[0]
        for m in metrics:
            vals = [_metric(d[i], d[j], m) for i in range(k) for j in range(i + 1, k)]
            v = sum(vals) / len(vals)
            if not math.isnan(v):
                num[m] += v * job.numel
                den[m] += job.numel
        done += job.numel
        if progress:
            progress(done, plan.numel)
    return {m: num[m] / den[m] if den[m] else math.nan for m in metrics}

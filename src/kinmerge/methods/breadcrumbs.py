"""Model Breadcrumbs (Davari & Belilovsky 2024, "Model Breadcrumbs: Scaling Multi-Task Model
Merging with Sparse Masks"): drop a task vector's largest outliers and its small noise."""
from __future__ import annotations

import torch

from kinmerge.methods.registry import Method, Param, register
from kinmerge.methods.sparsify import combine, topk_count_mask
from kinmerge.methods.task_arithmetic import task_vectors


def breadcrumb_mask(x: torch.Tensor, density: float, gamma: float) -> torch.Tensor:
    """Keep int(density·n) entries ranked just below the int(gamma·n) largest magnitudes."""
    n = x.numel()
    keep, top = int(density * n), int(gamma * n)
    top = min(top, n - keep)
    return topk_count_mask(x, top + keep) & ~topk_count_mask(x, top)


def _sparsify(tensors, base, density, gamma) -> torch.Tensor:
    deltas = task_vectors(tensors, base)  # (n_models, *shape)
    for k, (d, g) in enumerate(zip(density, gamma)):
        if d < 1 or g > 0:
            deltas[k] = deltas[k] * breadcrumb_mask(deltas[k], d, g).to(deltas.dtype)
    return deltas


def breadcrumbs(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
                density: list[float], gamma: list[float], normalize: bool = False,
                lambda_: float = 1.0, generator=None) -> torch.Tensor:
    """Breadcrumb masks, then task arithmetic.

    >>> breadcrumbs([torch.tensor([9., 1., 3., 2.])], torch.zeros(4), weight=[1],
    ...             density=[0.5], gamma=[0.25])
    tensor([0., 0., 3., 2.])
    """
    deltas = _sparsify(tensors, base, density, gamma)
    return combine(deltas, weight, base, elect=False, normalize=normalize, lambda_=lambda_)


def breadcrumbs_ties(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
                     density: list[float], gamma: list[float], normalize: bool = True,
                     lambda_: float = 1.0, generator=None) -> torch.Tensor:
    """Breadcrumb masks, then TIES sign election and disjoint mean."""
    deltas = _sparsify(tensors, base, density, gamma)
    return combine(deltas, weight, base, elect=True, normalize=normalize, lambda_=lambda_)


_PAPER = "Davari & Belilovsky 2024, Model Breadcrumbs (arXiv:2312.06795)"
_P = (Param("weight", "model"), Param("density", "model", 0.9), Param("gamma", "model", 0.01))
register(Method(work="select", name="breadcrumbs", fn=breadcrumbs, needs_base=True, paper=_PAPER,
                params=_P + (Param("normalize", "global", False, bool),
                             Param("lambda", "global", 1.0)),
                summary="Drop each task vector's largest (gamma) and smallest entries, "
                        "then task arithmetic."))
register(Method(work="select", name="breadcrumbs_ties", fn=breadcrumbs_ties, needs_base=True,
                paper=_PAPER + "; with TIES sign election",
                params=_P + (Param("normalize", "global", True, bool),
                             Param("lambda", "global", 1.0)),
                summary="Breadcrumb masks, then TIES election and disjoint mean."))
